"""Small pieces shared by several architectures: padding to a size multiple
and an attention kernel that can be switched between PyTorch's fused
``scaled_dot_product_attention`` and the explicit softmax(QK^T)V reference.
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

__all__ = ["pad_to_multiple", "crop_to", "attention", "sdpa_enabled", "use_sdpa"]

_USE_SDPA = True


def use_sdpa() -> bool:
    """Whether :func:`attention` currently dispatches to the fused kernel."""
    return _USE_SDPA


@contextlib.contextmanager
def sdpa_enabled(enabled: bool):
    """Temporarily switch :func:`attention` between the fused kernel and the
    explicit reference path (used by the equality tests and the benchmarks)."""
    global _USE_SDPA
    previous, _USE_SDPA = _USE_SDPA, bool(enabled)
    try:
        yield
    finally:
        _USE_SDPA = previous


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
              scale: float | None = None, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v over the last two dimensions.

    ``attn_mask`` is additive (float) and broadcast against the score matrix.
    ``scale`` defaults to ``1/sqrt(q.shape[-1])`` as in the usual definition.
    """
    if _USE_SDPA:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)
    s = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    scores = (q @ k.transpose(-2, -1)) * s
    if attn_mask is not None:
        scores = scores + attn_mask
    return scores.softmax(dim=-1) @ v


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect") -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom/right of an (N,C,H,W) tensor so H and W are multiples of
    ``multiple``. Returns the padded tensor and the original (H, W).

    Reflect padding needs the pad to be smaller than the image side; for tiny
    inputs we fall back to replicate padding instead of raising.
    """
    h, w = x.shape[-2:]
    ph = (-h) % multiple
    pw = (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int], scale: int = 1) -> torch.Tensor:
    """Crop the bottom/right padding added by :func:`pad_to_multiple` (times the
    model's upscaling factor)."""
    h, w = size
    return x[..., : h * scale, : w * scale]
