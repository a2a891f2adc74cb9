"""PSNR and SSIM as restoration papers report them.

* Inputs are torch tensors (N,C,H,W) or (C,H,W); results are the **mean of
  per-image values** (what papers average), computed in float64.
* ``y_channel=True`` converts RGB to the BT.601 "studio" luma used by the SR
  literature (BasicSR, SwinIR, DiffIR): Y = 16 + 65.481 R + 128.553 G +
  24.966 B for RGB in [0, 1], in units of 1/255 — float, not rounded.
* ``crop_border`` removes that many pixels on each side before scoring (SR
  convention: crop = scale).
* SSIM ``variant="gaussian"`` (default) is Wang et al. 2004 as in BasicSR and
  MATLAB's ``ssim_index``: 11x11 Gaussian window, sigma 1.5, population
  covariances, "valid" filtering (no padding), K1 = 0.01, K2 = 0.03, averaged
  over channels. It equals ``skimage.metrics.structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.
  ``variant="skimage_default"`` is scikit-image's default (7x7 uniform window,
  sample covariance), which PromptIR's own evaluation uses.

GoPro numbers in the deblurring literature come from MATLAB's ``ssim`` on an
RGB image treated as a 3-D volume, which no Python implementation reproduces
exactly; we report the per-channel Gaussian SSIM above and say so.
"""
from __future__ import annotations

import dataclasses
import numbers

import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim", "ssim_per_image", "rgb_to_y", "quantize", "MetricSpec", "SSIM_VARIANTS"]

SSIM_VARIANTS = ("gaussian", "skimage_default")

_Y_WEIGHTS = (65.481, 128.553, 24.966)


def _as_batch(x: torch.Tensor, name: str, data_range: float = 1.0) -> torch.Tensor:
    """``x`` as a float64 (N,C,H,W) batch, refusing what would be scored on the wrong scale."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (N,C,H,W) or (C,H,W), got {tuple(x.shape)}")
    _check_scale(x, name, data_range)
    return x.to(torch.float64)


def _check_data_range(data_range) -> float:
    if isinstance(data_range, bool) or not isinstance(data_range, numbers.Real) or not data_range > 0 \
            or data_range == float("inf"):
        raise ValueError(f"data_range must be a positive number (1.0 for images in [0, 1], 255 for [0, 255]), "
                         f"got {data_range!r}")
    return float(data_range)


def _check_scale(x: torch.Tensor, name: str, data_range: float) -> None:
    """Refuse inputs whose values cannot be on the scale ``data_range`` says: integer
    images scored as [0, 1] floats, 0-255 floats with ``data_range=1``, NaN/inf."""
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{name} has dtype {x.dtype}: images must be real numbers")
    if not x.is_floating_point():
        top = torch.iinfo(x.dtype).max if x.dtype != torch.uint8 else 255
        if x.dtype == torch.uint8 and data_range != 255:
            raise ValueError(f"{name} is uint8 (values 0-255) but data_range is {data_range:g}: pass data_range=255, "
                             "or convert to float in [0, 1] (x.float() / 255)")
        if x.dtype != torch.uint8 and data_range < top and x.numel() and int(x.max()) > data_range:
            raise ValueError(f"{name} is {x.dtype} with values up to {int(x.max())} but data_range is "
                             f"{data_range:g}: pass the range its values use")
        return
    if x.numel() == 0:
        return
    if not torch.isfinite(x).all():
        bad = "NaN" if torch.isnan(x).any() else "inf"
        raise ValueError(f"{name} contains {bad} values")
    lo, hi = float(x.min()), float(x.max())
    # restored outputs may overshoot a little before clipping; a factor of 2 means another scale
    if hi > 2 * data_range or lo < -data_range:
        hint = " (it looks like 0-255: pass data_range=255 or divide by 255)" if data_range == 1 and hi > 2 else ""
        raise ValueError(f"{name} has values in [{lo:.4g}, {hi:.4g}], far outside [0, {data_range:g}] "
                         f"given by data_range{hint}")


def _check_crop_border(crop_border) -> int:
    if isinstance(crop_border, bool) or not isinstance(crop_border, numbers.Real) \
            or crop_border != int(crop_border) or crop_border < 0:
        raise ValueError(f"crop_border must be a whole number of pixels >= 0, got {crop_border!r}")
    return int(crop_border)


def rgb_to_y(x: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """BT.601 luma of an RGB tensor (..., 3, H, W) in [0, data_range]; the result
    keeps the same units (Y in [16, 235]/255 * data_range)."""
    if x.shape[-3] != 3:
        raise ValueError(f"rgb_to_y needs 3 channels, got shape {tuple(x.shape)}")
    w = torch.tensor(_Y_WEIGHTS, dtype=x.dtype, device=x.device).view(3, 1, 1) / 255.0
    return (x * w).sum(dim=-3, keepdim=True) + 16.0 / 255.0 * data_range


def quantize(x: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Clip to [0, data_range] and round to 8-bit levels (what saving a PNG does).
    Integer images are already quantized: they are refused, not clamped."""
    if not x.is_floating_point():
        raise TypeError(f"quantize needs a float image in [0, {data_range:g}], got dtype {x.dtype} "
                        "(integer images are already quantized: convert with x.float() / 255)")
    return torch.round(x.clamp(0, data_range) / data_range * 255.0) / 255.0 * data_range


def _prepare(pred, target, data_range, crop_border, y_channel):
    data_range = _check_data_range(data_range)
    c = _check_crop_border(crop_border)
    p, t = _as_batch(pred, "pred", data_range), _as_batch(target, "target", data_range)
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
    if y_channel:
        p, t = rgb_to_y(p, data_range), rgb_to_y(t, data_range)
    if c:
        if 2 * c >= p.shape[-1] or 2 * c >= p.shape[-2]:
            raise ValueError(f"crop_border={c} leaves nothing of a {tuple(p.shape[-2:])} image")
        p, t = p[..., c:-c, c:-c], t[..., c:-c, c:-c]
    return p, t


def psnr(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0, crop_border: int = 0,
         y_channel: bool = False, reduction: str = "mean"):
    """Peak signal-to-noise ratio in dB, per image then averaged.

    Identical images give ``inf``. ``reduction="none"`` returns the per-image
    values as a float64 tensor.
    """
    p, t = _prepare(pred, target, data_range, crop_border, y_channel)
    mse = ((p - t) ** 2).flatten(1).mean(dim=1)
    values = 10.0 * torch.log10(data_range ** 2 / mse)
    return _reduce(values, reduction)


def _window_1d(variant: str, dtype, device) -> torch.Tensor:
    """The separable 1-D profile of the SSIM window (its outer product is the 2-D window)."""
    if variant == "gaussian":
        ax = torch.arange(11, dtype=dtype, device=device) - 5.0
        g = torch.exp(-(ax ** 2) / (2.0 * 1.5 ** 2))
        return g / g.sum()
    return torch.full((7,), 1.0 / 7.0, dtype=dtype, device=device)


def ssim_per_image(p: torch.Tensor, t: torch.Tensor, *, data_range: float = 1.0,
                   variant: str = "gaussian") -> torch.Tensor:
    """Differentiable SSIM of each image in an (N,C,H,W) batch, in the inputs'
    dtype (the SSIM loss uses this; :func:`ssim` calls it in float64)."""
    if variant not in SSIM_VARIANTS:
        raise ValueError(f"unknown SSIM variant {variant!r}; choose from {SSIM_VARIANTS}")
    n, c, h, w = p.shape
    g = _window_1d(variant, p.dtype, p.device)
    k = g.numel()
    cov_norm = 1.0 if variant == "gaussian" else k * k / (k * k - 1.0)  # skimage: sample covariance
    if h < k or w < k:
        raise ValueError(f"SSIM ({variant}) needs images of at least {k}x{k}, got {h}x{w}")
    # filter the five maps in one go with the separable window ("valid": no padding)
    stack = torch.cat([p, t, p * p, t * t, p * t], dim=1)
    groups = stack.shape[1]
    stack = F.conv2d(stack, g.view(1, 1, 1, k).expand(groups, 1, 1, k), groups=groups)
    stack = F.conv2d(stack, g.view(1, 1, k, 1).expand(groups, 1, k, 1), groups=groups)
    mu_p, mu_t, e_pp, e_tt, e_pt = stack.split(c, dim=1)
    var_p = cov_norm * (e_pp - mu_p ** 2)
    var_t = cov_norm * (e_tt - mu_t ** 2)
    cov = cov_norm * (e_pt - mu_p * mu_t)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    smap = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    return smap.flatten(2).mean(dim=2).mean(dim=1)


def ssim(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0, crop_border: int = 0,
         y_channel: bool = False, variant: str = "gaussian", reduction: str = "mean"):
    """Structural similarity, per image (mean over channels and valid positions),
    then averaged over the batch. See the module docstring for ``variant``."""
    if variant not in SSIM_VARIANTS:
        raise ValueError(f"unknown SSIM variant {variant!r}; choose from {SSIM_VARIANTS}")
    p, t = _prepare(pred, target, data_range, crop_border, y_channel)
    return _reduce(ssim_per_image(p, t, data_range=data_range, variant=variant), reduction)


def _reduce(values: torch.Tensor, reduction: str):
    if reduction == "none":
        return values
    if reduction == "mean":
        return float(values.mean())
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """A metric protocol, recorded next to every number so that results made
    under different protocols are never compared by accident."""

    color_space: str = "rgb"          # "rgb" or "y"
    crop_border: int = 0
    data_range: float = 1.0
    ssim_variant: str = "gaussian"
    quantize: bool = True             # outputs rounded to 8 bits before scoring
    clip: bool = True

    def __post_init__(self):
        if self.color_space not in ("rgb", "y"):
            raise ValueError(f"color_space must be 'rgb' or 'y', got {self.color_space!r}")
        if self.ssim_variant not in SSIM_VARIANTS:
            raise ValueError(f"unknown SSIM variant {self.ssim_variant!r}; choose from {SSIM_VARIANTS}")
        _check_crop_border(self.crop_border)
        _check_data_range(self.data_range)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.quantize:
            return quantize(x, self.data_range)
        return x.clamp(0, self.data_range) if self.clip else x

    def evaluate(self, pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> dict:
        """``{"psnr": ..., "ssim": ...}`` under this protocol."""
        p, t = self.prepare(pred), self.prepare(target)
        kw = dict(data_range=self.data_range, crop_border=self.crop_border, y_channel=self.color_space == "y",
                  reduction=reduction)
        return {"psnr": psnr(p, t, **kw), "ssim": ssim(p, t, variant=self.ssim_variant, **kw)}

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        space = "Y (BT.601)" if self.color_space == "y" else "RGB"
        ssim_txt = "Gaussian 11x11 sigma 1.5, valid" if self.ssim_variant == "gaussian" else \
            "scikit-image default (7x7 uniform, sample covariance)"
        q = "outputs clipped and rounded to 8 bits" if self.quantize else "float outputs, clipped"
        return (f"PSNR/SSIM on {space}, crop border {self.crop_border}, data range {self.data_range:g}; "
                f"SSIM {ssim_txt}; {q}")


#: protocols used by the notebooks
RGB = MetricSpec()
SR_Y = lambda scale: MetricSpec(color_space="y", crop_border=int(scale))  # noqa: E731
PROMPTIR = MetricSpec(ssim_variant="skimage_default", quantize=False)
