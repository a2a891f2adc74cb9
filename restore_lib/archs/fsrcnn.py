"""FSRCNN (Dong, Loy, Tang, "Accelerating the Super-Resolution Convolutional
Neural Network", ECCV 2016), with the parameter names of the popular PyTorch
port yjn870/FSRCNN-pytorch (``models.py``), so that its released ``.pth``
files (raw state_dicts) load strictly.

Upstream: the paper; key names follow yjn870/FSRCNN-pytorch @3eaab297f4b7,
which has **no LICENSE file** (all rights reserved). This module is written
from the paper; only the parameter names are shared with the port.

Network, written FSRCNN(d, s, m) in the paper, on one channel (luminance Y)::

    Conv(5, d) -> PReLU                       feature extraction   (first_part)
    Conv(1, s) -> PReLU                       shrinking            (mid_part)
    m x [Conv(3, s) -> PReLU]                 non-linear mapping   (mid_part)
    Conv(1, d) -> PReLU                       expanding            (mid_part)
    DeConv(9, 1), stride = scale              upsampling           (last_part)

All convolutions are zero-padded "same", and the deconvolution uses
``padding=4, output_padding=scale-1`` (as in the port; the original Caffe model
does not pad), so an (h, w) input gives exactly (scale*h, scale*w).

Counting. FSRCNN(56, 12, 4) has 12,809 parameters in PyTorch; the paper's
12,464 counts convolution/deconvolution weights only (no biases, no PReLU
slopes): 25d + sd + 9ms^2 + sd + 81d. See :func:`paper_param_count`. The
paper's cost per LR pixel is the same sum, O((9ms^2 + 2sd + 106d) S_LR); see
:func:`fsrcnn_complexity`.

Colour. FSRCNN is trained and evaluated on Y only. :func:`upscale_rgb` runs the
network on the Y of an RGB image and takes Cb/Cr from a bicubic upsampling.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["FSRCNN", "paper_param_count", "fsrcnn_complexity", "rgb_to_ycbcr", "ycbcr_to_rgb", "upscale_rgb"]


class FSRCNN(nn.Module):
    """FSRCNN(d, s, m) at ``scale_factor``. Input (N, num_channels, h, w) in
    [0, 1] (for the standard model: Y/255, BT.601 studio range); output
    (N, num_channels, scale*h, scale*w), not clamped (clamp when saving).

    Weight initialisation follows the paper and the port: He-normal
    (std = sqrt(2 / (out_channels * k * k))) for the convolutions, N(0, 0.001)
    for the deconvolution, zero biases. The tiny deconvolution weights make the
    first output almost constant, which keeps early training stable with Adam.
    """

    scale = 4
    size_multiple = 1
    PRESETS = {
        "default": {},
        "x2": {"scale_factor": 2},
        "x3": {"scale_factor": 3},
        # FSRCNN-s of the paper (3,937 weights; runs in real time on a CPU)
        "small": {"d": 32, "s": 5, "m": 1},
    }

    def __init__(self, scale_factor: int = 4, num_channels: int = 1, d: int = 56, s: int = 12, m: int = 4):
        super().__init__()
        for name, value, low in (("scale_factor", scale_factor, 1), ("num_channels", num_channels, 1),
                                 ("d", d, 1), ("s", s, 1), ("m", m, 0)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"FSRCNN: {name} must be an integer >= {low}, got {value!r}")
        self.scale = scale_factor
        self.first_part = nn.Sequential(nn.Conv2d(num_channels, d, 5, padding=2), nn.PReLU(d))
        mid: list[nn.Module] = [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            mid += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        mid += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.mid_part = nn.Sequential(*mid)
        self.last_part = nn.ConvTranspose2d(d, num_channels, 9, stride=scale_factor, padding=4,
                                            output_padding=scale_factor - 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.last_part.weight, 0.0, 0.001)
        nn.init.zeros_(self.last_part.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_part(self.mid_part(self.first_part(x)))


def paper_param_count(model: FSRCNN) -> int:
    """Weights of the convolutions and the deconvolution only, the paper's
    convention (biases and PReLU slopes left out): 12,464 for FSRCNN(56,12,4)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def fsrcnn_complexity(d: int, s: int, m: int, scale: int, lr_pixels: int) -> int:
    """The paper's computational complexity (multiplications) of FSRCNN(d, s, m)
    on an LR image of ``lr_pixels`` pixels:

        (25d + sd + 9ms^2 + ds + 81d) * S_LR = (9ms^2 + 2sd + 106d) * S_LR

    The terms are the 5x5 extraction, 1x1 shrink, m 3x3 mappings, 1x1 expand
    and the 9x9 deconvolution. Every LR pixel scatters one 9x9 kernel per
    feature map whatever the stride, so ``scale`` does not enter the formula
    (the paper's point: the cost is set by the LR size). It is checked only.
    """
    for name, value, low in (("d", d, 1), ("s", s, 1), ("m", m, 0), ("scale", scale, 1), ("lr_pixels", lr_pixels, 0)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"fsrcnn_complexity: {name} must be an integer >= {low}, got {value!r}")
    return (9 * m * s * s + 2 * s * d + 106 * d) * lr_pixels


# --------------------------------------------------------------------------- colour

# YCbCr from RGB in [0, 1]: ycbcr = A @ rgb + b, with Y in [16, 235] / 255 and
# Cb, Cr in [16, 240] / 255 (studio swing).
_YCBCR = {
    # ITU-R BT.601 as MATLAB's rgb2ycbcr and BasicSR (the SR evaluation convention)
    "bt601": [[65.481, 128.553, 24.966],
              [-37.797, -74.203, 112.0],
              [112.0, -93.786, -18.214]],
    # the FSRCNN port's utils.py: (coefficients / 256) on 0..255 RGB
    "port": [[64.738 * 255 / 256, 129.057 * 255 / 256, 25.064 * 255 / 256],
             [-37.945 * 255 / 256, -74.494 * 255 / 256, 112.439 * 255 / 256],
             [112.439 * 255 / 256, -94.154 * 255 / 256, -18.285 * 255 / 256]],
}
_OFFSET = (16.0, 128.0, 128.0)


def _matrix(variant: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, b) in float64 for RGB in [0,1] -> YCbCr in [0,1]."""
    if variant not in _YCBCR:
        raise ValueError(f"unknown YCbCr variant {variant!r}; choose from {', '.join(_YCBCR)}")
    a = torch.tensor(_YCBCR[variant], dtype=torch.float64) / 255.0
    b = torch.tensor(_OFFSET, dtype=torch.float64) / 255.0
    return a, b


def _check_image(x: torch.Tensor, what: str) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{what}: expected an (N, 3, H, W) tensor, got shape {tuple(x.shape)}")


def rgb_to_ycbcr(rgb: torch.Tensor, variant: str = "bt601") -> torch.Tensor:
    """(N,3,H,W) RGB in [0,1] -> YCbCr in [0,1] (Y in [16,235]/255).
    ``variant``: ``"bt601"`` (MATLAB/BasicSR) or ``"port"`` (yjn870)."""
    _check_image(rgb, "rgb_to_ycbcr")
    a, b = _matrix(variant)
    a, b = a.to(rgb), b.to(rgb)
    return torch.einsum("ij,njhw->nihw", a, rgb) + b.view(1, 3, 1, 1)


def ycbcr_to_rgb(ycbcr: torch.Tensor, variant: str = "bt601") -> torch.Tensor:
    """Exact inverse of :func:`rgb_to_ycbcr` (no clamping)."""
    _check_image(ycbcr, "ycbcr_to_rgb")
    a, b = _matrix(variant)
    inv = torch.linalg.inv(a)
    return torch.einsum("ij,njhw->nihw", inv.to(ycbcr), ycbcr - b.to(ycbcr).view(1, 3, 1, 1))


def upscale_rgb(model: nn.Module, lr_rgb: torch.Tensor, variant: str = "bt601") -> torch.Tensor:
    """Super-resolve an RGB image with a one-channel (Y) model such as FSRCNN.

    ``lr_rgb``: (N, 3, h, w) in [0, 1]. The model gets the BT.601 luminance
    Y/255 of the LR image, (N, 1, h, w), and must return (N, 1, s*h, s*w).
    Chroma: Cb and Cr are taken from a bicubic upsampling of the LR image
    (torch's bicubic, a = -0.75; the port uses PIL's, a = -0.5, which changes
    only the colour channels slightly). The result is converted back to RGB and
    clamped to [0, 1]; Y-PSNR is unaffected by the chroma choice.
    ``variant`` picks the YCbCr coefficients (see :func:`rgb_to_ycbcr`).
    """
    _check_image(lr_rgb, "upscale_rgb")
    scale = int(getattr(model, "scale", 0) or 0)
    if scale < 1:
        raise ValueError(f"upscale_rgb: the model ({type(model).__name__}) has no positive integer 'scale' attribute")
    ycbcr = rgb_to_ycbcr(lr_rgb, variant)
    y_sr = model(ycbcr[:, :1])
    h, w = lr_rgb.shape[-2:]
    if y_sr.shape != (lr_rgb.shape[0], 1, h * scale, w * scale):
        raise ValueError(f"upscale_rgb: the model returned shape {tuple(y_sr.shape)}, expected "
                         f"{(lr_rgb.shape[0], 1, h * scale, w * scale)} (a one-channel x{scale} model)")
    chroma = F.interpolate(ycbcr[:, 1:], scale_factor=scale, mode="bicubic", align_corners=False)
    out = torch.cat([y_sr.clamp(0.0, 1.0), chroma], dim=1)
    return ycbcr_to_rgb(out, variant).clamp(0.0, 1.0)
