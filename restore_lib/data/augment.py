"""Paired augmentation: identical geometry for degraded and clean images.

A restoration pair ``(lq, gt)`` must stay pixel-aligned, so every geometric
transform (flips, 90-degree rotations, scale-rotate) is drawn once and applied
to both images, while photometric transforms (brightness/contrast, Gaussian
blur) change the degraded image only by default: they are part of the
degradation the model should learn to undo, not of the scene.

Built on ``torchvision.transforms.v2.functional``; randomness comes only from
the generator passed to each call (``aug(lq, gt, rng)``), a ``torch.Generator``
or a ``numpy.random.Generator``, so datasets stay deterministic under any
number of workers.

Super-resolution (``scale > 1``)
--------------------------------
``gt`` is ``scale`` times larger than ``lq``. Flips and ``rot90`` map the
pixel grid onto itself and commute with any block-wise down-sampling, so they
keep the pair aligned exactly. Scale-rotate is an affine map about the image
centre; torchvision places that centre at the continuous centre ``(W/2, H/2)``
of the pixel area, which is the same physical point in both images, so the
same angle and zoom keep the geometry aligned (translations are multiplied by
``scale`` for ``gt``); only the bilinear resampling differs between the two
grids. Corners uncovered by a rotation are filled with ``fill`` in both images.

Presets
-------
* :meth:`PairedAugment.report_a` - Report A (000): horizontal flip 50 %,
  rot90 50 %, scale-rotate 50 %, brightness/contrast 30 %, Gaussian blur 20 %.
  The report gives no ranges; the defaults follow albumentations'
  ``ShiftScaleRotate`` / ``RandomBrightnessContrast`` / ``GaussianBlur``
  defaults (rotation +-45 deg, zoom +-10 %, brightness/contrast +-0.2,
  odd blur kernel 3..7 with OpenCV's sigma for that kernel) - an assumption.
* :meth:`PairedAugment.report_b` - Report B (001): independent synchronised
  horizontal and vertical flips, 50 % each; nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

__all__ = ["PairedAugment", "AugmentParams"]

_PHOTOMETRIC_TARGETS = ("lq", "gt", "both", "none")

#: uniform draws of one call, in order: which transforms fire, then their parameters
_DRAWS = ("hflip", "vflip", "rot90", "k", "scale_rotate", "angle", "zoom", "tx", "ty",
          "brightness_contrast", "brightness", "contrast", "gaussian_blur", "kernel")


def _uniform(rng, n: int) -> list[float]:
    """``n`` uniform draws in [0, 1) from a torch or numpy generator."""
    if isinstance(rng, torch.Generator):
        return torch.rand(n, generator=rng, dtype=torch.float64).tolist()
    if isinstance(rng, np.random.Generator):
        return rng.random(n).tolist()
    raise TypeError(f"rng must be a torch.Generator or numpy.random.Generator, got {type(rng).__name__}")


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the random parameters (what was applied to a pair)."""

    hflip: bool = False
    vflip: bool = False
    rot90_k: int = 0            # counter-clockwise quarter turns
    angle: float = 0.0          # degrees, 0 = no scale-rotate
    zoom: float = 1.0
    translate: tuple[float, float] = (0.0, 0.0)   # fraction of the image size
    brightness: float = 1.0     # multiplicative factors, 1 = unchanged
    contrast: float = 1.0
    blur_kernel: int = 0        # 0 = no blur
    blur_sigma: float = 0.0
    affine: bool = False


class PairedAugment:
    """Random paired augmentation with explicit probabilities.

    Args:
        hflip, vflip, rot90, scale_rotate, brightness_contrast, gaussian_blur:
            probability of each transform (independent draws).
        photometric_on: images that get the photometric transforms:
            ``"lq"`` (default), ``"gt"``, ``"both"`` (same parameters) or ``"none"``.
        scale: size ratio gt/lq (1 for restoration, e.g. 4 for x4 SR).
        rotate_limit: scale-rotate angle drawn from U(-limit, limit) degrees.
        zoom_limit: zoom drawn from U(1 - limit, 1 + limit).
        shift_limit: translation drawn from U(-limit, limit) x image size.
        brightness_limit, contrast_limit: factors drawn from U(1 - l, 1 + l).
        blur_kernels: odd kernel sizes to choose from; sigma = OpenCV's default
            for the kernel, ``0.3 * ((k - 1) / 2 - 1) + 0.8``.
        fill: value of pixels uncovered by scale-rotate.

    Call: ``lq2, gt2 = aug(lq, gt, rng)`` with ``(C, H, W)`` or ``(N, C, H, W)``
    float tensors in [0, 1]; ``gt`` may be ``None`` (e.g. unpaired test input).
    """

    def __init__(self, hflip: float = 0.5, vflip: float = 0.0, rot90: float = 0.5,
                 scale_rotate: float = 0.0, brightness_contrast: float = 0.0,
                 gaussian_blur: float = 0.0, photometric_on: str = "lq", *, scale: int = 1,
                 rotate_limit: float = 45.0, zoom_limit: float = 0.1, shift_limit: float = 0.0,
                 brightness_limit: float = 0.2, contrast_limit: float = 0.2,
                 blur_kernels: tuple[int, ...] = (3, 5, 7), fill: float = 0.0):
        probs = dict(hflip=hflip, vflip=vflip, rot90=rot90, scale_rotate=scale_rotate,
                     brightness_contrast=brightness_contrast, gaussian_blur=gaussian_blur)
        for name, p in probs.items():
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"PairedAugment: probability {name}={p} is not in [0, 1]")
        if photometric_on not in _PHOTOMETRIC_TARGETS:
            raise ValueError(f"PairedAugment: photometric_on={photometric_on!r}; choose one of {_PHOTOMETRIC_TARGETS}")
        if int(scale) != scale or scale < 1:
            raise ValueError(f"PairedAugment: scale must be a positive integer, got {scale}")
        if not blur_kernels or any(k < 1 or k % 2 == 0 for k in blur_kernels):
            raise ValueError(f"PairedAugment: blur_kernels must be odd positive sizes, got {blur_kernels}")
        if not (0 <= zoom_limit < 1 and brightness_limit >= 0 and 0 <= contrast_limit and shift_limit >= 0):
            raise ValueError("PairedAugment: limits must be >= 0 (and zoom_limit < 1)")
        self.probs = {k: float(v) for k, v in probs.items()}
        self.photometric_on = photometric_on
        self.scale = int(scale)
        self.rotate_limit, self.zoom_limit = float(rotate_limit), float(zoom_limit)
        self.shift_limit = float(shift_limit)
        self.brightness_limit, self.contrast_limit = float(brightness_limit), float(contrast_limit)
        self.blur_kernels = tuple(int(k) for k in blur_kernels)
        self.fill = float(fill)

    # ------------------------------------------------------------------ presets
    @classmethod
    def report_a(cls, **overrides) -> "PairedAugment":
        """Report A (000): hflip 0.5, rot90 0.5, scale-rotate 0.5, brightness/contrast 0.3, blur 0.2."""
        kw = dict(hflip=0.5, vflip=0.0, rot90=0.5, scale_rotate=0.5, brightness_contrast=0.3, gaussian_blur=0.2)
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def report_b(cls, **overrides) -> "PairedAugment":
        """Report B (001): synchronised horizontal and vertical flips, 0.5 each."""
        kw = dict(hflip=0.5, vflip=0.5, rot90=0.0, scale_rotate=0.0, brightness_contrast=0.0, gaussian_blur=0.0)
        kw.update(overrides)
        return cls(**kw)

    def __repr__(self) -> str:
        probs = ", ".join(f"{k}={v:g}" for k, v in self.probs.items())
        return f"PairedAugment({probs}, photometric_on={self.photometric_on!r}, scale={self.scale})"

    # ------------------------------------------------------------------ sampling
    def sample(self, rng) -> AugmentParams:
        """Draw the parameters of one call. Always consumes the same number of
        random values (one per entry of ``_DRAWS``), so the stream does not
        depend on which transforms fire."""
        u = dict(zip(_DRAWS, _uniform(rng, len(_DRAWS))))
        p = self.probs

        def sym(key, limit):  # U(-limit, limit)
            return (2.0 * u[key] - 1.0) * limit

        affine = u["scale_rotate"] < p["scale_rotate"]
        bc = u["brightness_contrast"] < p["brightness_contrast"]
        blur = u["gaussian_blur"] < p["gaussian_blur"]
        n_k = len(self.blur_kernels)
        ksize = self.blur_kernels[min(int(u["kernel"] * n_k), n_k - 1)]
        return AugmentParams(
            hflip=u["hflip"] < p["hflip"],
            vflip=u["vflip"] < p["vflip"],
            rot90_k=1 + min(int(u["k"] * 3), 2) if u["rot90"] < p["rot90"] else 0,
            affine=affine,
            angle=sym("angle", self.rotate_limit) if affine else 0.0,
            zoom=1.0 + sym("zoom", self.zoom_limit) if affine else 1.0,
            translate=(sym("tx", self.shift_limit), sym("ty", self.shift_limit)) if affine else (0.0, 0.0),
            brightness=1.0 + sym("brightness", self.brightness_limit) if bc else 1.0,
            contrast=1.0 + sym("contrast", self.contrast_limit) if bc else 1.0,
            blur_kernel=ksize if blur else 0,
            blur_sigma=0.3 * ((ksize - 1) / 2 - 1) + 0.8 if blur else 0.0,
        )

    # ------------------------------------------------------------------ applying
    def geometric(self, img: torch.Tensor, prm: AugmentParams) -> torch.Tensor:
        """Apply the geometric part of ``prm``. Translations are fractions of the
        image size, so lq and gt (any ``scale``) move by the same physical amount."""
        if prm.hflip:
            img = TF.horizontal_flip(img)
        if prm.vflip:
            img = TF.vertical_flip(img)
        if prm.rot90_k:
            img = torch.rot90(img, prm.rot90_k, dims=(-2, -1))
        if prm.affine:
            h, w = img.shape[-2:]
            shift = [prm.translate[0] * w, prm.translate[1] * h]
            img = TF.affine(img, angle=prm.angle, translate=shift, scale=prm.zoom, shear=[0.0, 0.0],
                            interpolation=TF.InterpolationMode.BILINEAR, fill=self.fill)
        return img

    def photometric(self, img: torch.Tensor, prm: AugmentParams) -> torch.Tensor:
        """Apply the photometric part of ``prm`` (brightness, contrast, blur)."""
        if prm.brightness != 1.0:
            img = TF.adjust_brightness(img, prm.brightness)
        if prm.contrast != 1.0:
            img = TF.adjust_contrast(img, prm.contrast)
        if prm.blur_kernel:
            k = prm.blur_kernel
            img = TF.gaussian_blur(img, kernel_size=[k, k], sigma=[prm.blur_sigma, prm.blur_sigma])
        return img

    def check_pair(self, lq: torch.Tensor, gt: torch.Tensor | None) -> None:
        """Raise ``ValueError`` unless ``gt`` is ``scale`` x ``lq`` in size."""
        if not isinstance(lq, torch.Tensor) or lq.dim() not in (3, 4):
            got = getattr(lq, "shape", type(lq).__name__)
            raise ValueError(f"PairedAugment expects (C,H,W) or (N,C,H,W) tensors, got lq {got}")
        if gt is None:
            return
        h, w = lq.shape[-2:]
        if tuple(gt.shape[-2:]) != (h * self.scale, w * self.scale) or gt.shape[:-2] != lq.shape[:-2]:
            raise ValueError(f"PairedAugment(scale={self.scale}): gt shape {tuple(gt.shape)} does not match "
                             f"lq shape {tuple(lq.shape)} x {self.scale}")

    def __call__(self, lq: torch.Tensor, gt: torch.Tensor | None, rng) -> tuple[torch.Tensor, torch.Tensor | None]:
        self.check_pair(lq, gt)
        prm = self.sample(rng)
        lq = self.geometric(lq, prm)
        if gt is not None:
            gt = self.geometric(gt, prm)
        if self.photometric_on in ("lq", "both"):
            lq = self.photometric(lq, prm)
        if gt is not None and self.photometric_on in ("gt", "both"):
            gt = self.photometric(gt, prm)
        return lq, gt

    def to_dict(self) -> dict:
        """Settings as plain data (for metrics.json / configs)."""
        return dict(self.probs, photometric_on=self.photometric_on, scale=self.scale,
                    rotate_limit=self.rotate_limit, zoom_limit=self.zoom_limit, shift_limit=self.shift_limit,
                    brightness_limit=self.brightness_limit, contrast_limit=self.contrast_limit,
                    blur_kernels=list(self.blur_kernels), fill=self.fill)

