"""Overlapping patches, weighted stitching and tiled inference.

Patch grid
----------
Along an axis of length ``L`` a patch of size ``p`` moves with step ``s``:
starts ``0, s, 2s, ...`` while the patch fits, and one more start ``L - p``
when the last regular patch does not reach the border ("snapped" last
patch). The grid therefore always covers the whole image, e.g. 256 px,
patch 128, stride 64 -> starts 0, 64, 128: the 3 x 3 grid of Report A.

Weighted stitching
------------------
Every patch ``k`` carries a separable window ``w_k(y, x) = u(y) v(x)``;
overlapping patches are blended as

    out(y, x) = sum_k w_k(y - top_k, x - left_k) P_k(...) / sum_k w_k(...)

Because the weights are normalised, a constant image, and more generally any
set of unmodified patches, is reproduced exactly (up to float rounding)
whatever the window. The 1-D profiles (``i = 0 .. p-1``, ``t = (i+0.5)/p``):

* ``"uniform"``: 1 (plain averaging; seams stay visible when patches differ);
* ``"triangle"``: ``1 - |2t - 1|``, smallest value ``1/p`` at the edges;
* ``"hann"``: ``sin^2(pi t)``, smallest value ``sin^2(pi / 2p)`` at the edges.

Tapered windows never reach 0 inside a patch, so every covered pixel has a
positive total weight. On a side where a patch touches the image border
there is no neighbour to blend with, so that half of the profile is raised
to its peak value 1 ("border-aware" windows): pixels near the image border
keep full weight instead of being divided by a tiny number. A patch edge
inside the image thus has a weight near 0 and the blend changes smoothly
from one patch to the next: no visible seams.

Tiled inference
---------------
:func:`tiled_inference` runs a model tile by tile: tiles (in low-resolution
coordinates for super-resolution) are sent to the model's device one batch
at a time and the outputs are blended with the windows above into a float32
buffer on the CPU. Peak device memory depends on ``tile`` and
``batch_size``, not on the image size.
"""
from __future__ import annotations

import math
import sys
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["grid_starts", "extract_patches", "stitch_patches", "make_window", "tiled_inference", "WINDOWS"]

WINDOWS = ("hann", "uniform", "triangle")


def _pair(v, name: str) -> tuple[int, int]:
    """An int or a pair of ints as ``(h, w)``, each >= 1."""
    if isinstance(v, int):
        v = (v, v)
    v = tuple(int(a) for a in v)
    if len(v) != 2 or min(v) < 1:
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {v}")
    return v


def grid_starts(length: int, patch: int, stride: int) -> list[int]:
    """Start offsets of patches of size ``patch`` covering ``[0, length)``.

    Regular steps of ``stride``, plus a last start snapped to ``length - patch``
    when the regular grid stops short of the border.
    """
    if patch > length:
        raise ValueError(f"patch size {patch} is larger than the image side {length}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def extract_patches(img: torch.Tensor, patch_size, stride) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Cut ``img`` into overlapping patches that cover it completely.

    Args:
        img: ``(C, H, W)`` or ``(N, C, H, W)`` tensor.
        patch_size, stride: int or ``(h, w)``.

    Returns:
        ``patches``: ``(P, C, ph, pw)`` for a 3-D input, ``(N, P, C, ph, pw)``
        for a 4-D input (the same grid for every image);
        ``coords``: list of ``(top, left)`` of each patch, row-major.
    """
    if img.dim() not in (3, 4):
        raise ValueError(f"extract_patches expects (C,H,W) or (N,C,H,W), got shape {tuple(img.shape)}")
    ph, pw = _pair(patch_size, "patch_size")
    sh, sw = _pair(stride, "stride")
    H, W = img.shape[-2:]
    if ph > H or pw > W:
        raise ValueError(f"patch size {(ph, pw)} is larger than the image {(H, W)}")
    coords = [(y, x) for y in grid_starts(H, ph, sh) for x in grid_starts(W, pw, sw)]
    patches = torch.stack([img[..., y:y + ph, x:x + pw] for y, x in coords], dim=-4)
    return patches, coords


def _profile(n: int, window: str, taper_start: bool, taper_end: bool) -> torch.Tensor:
    """1-D window of length ``n`` (float64), flattened to 1 on untapered sides."""
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    if window == "uniform":
        return torch.ones(n, dtype=torch.float64)
    if window == "hann":
        w = torch.sin(math.pi * t) ** 2
    elif window == "triangle":
        w = 1.0 - (2.0 * t - 1.0).abs()
    else:
        raise ValueError(f"unknown window {window!r}; choose one of {WINDOWS}")
    w = w / w.max()
    half = (n + 1) // 2
    if not taper_start:
        w[:half] = 1.0
    if not taper_end:
        w[n - half:] = 1.0
    return w


def make_window(size, window: str = "hann", *, taper=(True, True, True, True)) -> torch.Tensor:
    """2-D separable window ``(h, w)`` in float32.

    ``taper`` = (top, bottom, left, right): False keeps that side at full weight
    (used where a patch touches the image border).
    """
    h, w = _pair(size, "size")
    top, bottom, left, right = taper
    wy = _profile(h, window, top, bottom)
    wx = _profile(w, window, left, right)
    return (wy[:, None] * wx[None, :]).float()


class _Windows:
    """Border-aware windows of patches of one size in an image of ``out_size``.

    A patch is tapered on the sides that lie inside the image; there are at most
    nine distinct windows (corners, edges, interior), so they are cached.
    """

    def __init__(self, psize, out_size, window: str):
        self.psize, self.out_size, self.window = psize, out_size, window
        self._cache: dict[tuple[bool, ...], torch.Tensor] = {}

    def __call__(self, y: int, x: int) -> torch.Tensor:
        (ph, pw), (H, W) = self.psize, self.out_size
        taper = (y > 0, y + ph < H, x > 0, x + pw < W)
        if taper not in self._cache:
            self._cache[taper] = make_window(self.psize, self.window, taper=taper)
        return self._cache[taper]


def stitch_patches(patches: torch.Tensor, coords: Sequence[tuple[int, int]], out_size,
                   window: str = "hann") -> torch.Tensor:
    """Blend patches back into an image by normalised weighted averaging.

    Args:
        patches: ``(P, C, ph, pw)`` or ``(N, P, C, ph, pw)`` (as returned by
            :func:`extract_patches`, possibly processed).
        coords: ``(top, left)`` of each patch, in output pixels.
        out_size: ``(H, W)`` of the output.
        window: ``"hann"`` (default), ``"triangle"`` or ``"uniform"``.

    Returns:
        ``(C, H, W)`` or ``(N, C, H, W)`` float32 tensor. Raises ``ValueError``
        when a pixel is not covered by any patch.
    """
    if patches.dim() not in (4, 5):
        raise ValueError(f"stitch_patches expects (P,C,h,w) or (N,P,C,h,w), got {tuple(patches.shape)}")
    if patches.shape[-4] != len(coords):
        raise ValueError(f"{patches.shape[-4]} patches but {len(coords)} coordinates")
    H, W = _pair(out_size, "out_size")
    ph, pw = patches.shape[-2:]
    lead = patches.shape[:-4]
    C = patches.shape[-3]
    acc = torch.zeros(*lead, C, H, W, dtype=torch.float32)
    wsum = torch.zeros(H, W, dtype=torch.float32)
    windows = _Windows((ph, pw), (H, W), window)
    for k, (y, x) in enumerate(coords):
        if y < 0 or x < 0 or y + ph > H or x + pw > W:
            raise ValueError(f"patch {k} at {(y, x)} of size {(ph, pw)} falls outside the output {(H, W)}")
        w = windows(y, x)
        acc[..., y:y + ph, x:x + pw] += w * patches[..., k, :, :, :].float().cpu()
        wsum[y:y + ph, x:x + pw] += w
    if bool((wsum <= 0).any()):
        raise ValueError(f"the patches do not cover the whole {H}x{W} output")
    return acc / wsum


# --------------------------------------------------------------------------- tiled inference

def _model_device(model) -> torch.device:
    """Device of the model's first parameter or buffer, CPU for plain functions."""
    if isinstance(model, torch.nn.Module):
        for t in model.parameters():
            return t.device
        for t in model.buffers():
            return t.device
    return torch.device("cpu")


def _pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pad a (N,C,h0,w0) batch at the bottom/right to (h, w): reflect where possible."""
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _tile_size(tile: int, side: int, multiple: int) -> int:
    """Tile side: ``tile`` rounded down to ``multiple``, or the whole side if smaller."""
    t = max(multiple, tile - tile % multiple)
    return min(t, side)


def _report(progress, done: int, total: int) -> None:
    if callable(progress):
        progress(done, total)
    elif progress:
        print(f"tiled_inference: {done}/{total} tiles", file=sys.stderr, flush=True)


def tiled_inference(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, tile=256,
                    overlap=32, scale: int = 1, multiple: int = 1, batch_size: int = 4,
                    window: str = "hann", device=None, progress=False) -> torch.Tensor:
    """Restore an image of any size tile by tile with bounded memory.

    Args:
        model: callable mapping ``(B, C, h, w)`` to ``(B, C', h*scale, w*scale)``.
            Its train/eval mode is left as is (call ``model.eval()`` first).
        x: ``(C, H, W)`` or ``(N, C, H, W)`` input (any device, any size).
        tile: tile side (int or ``(h, w)``) in input pixels; rounded down to a
            multiple of ``multiple``; an image side smaller than a tile is
            processed whole, padded (reflect) up to ``multiple`` and cropped back.
        overlap: overlap between neighbouring tiles in input pixels
            (``0 <= overlap < tile``); the blend uses ``window``.
        scale: output/input size ratio of the model (4 for x4 SR).
        multiple: size multiple the model requires.
        batch_size: tiles per model call (the output does not depend on it).
        device: where the model runs; default: the model's parameter device.
        progress: True to print progress to stderr, or a callable ``(done, total)``.

    Returns:
        ``(C', H*scale, W*scale)`` or ``(N, C', H*scale, W*scale)`` float32 on the CPU.
    """
    if x.dim() not in (3, 4):
        raise ValueError(f"tiled_inference expects (C,H,W) or (N,C,H,W), got {tuple(x.shape)}")
    if scale < 1 or multiple < 1 or batch_size < 1:
        raise ValueError(f"scale, multiple and batch_size must be >= 1 (got {scale}, {multiple}, {batch_size})")
    squeeze = x.dim() == 3
    xb = x[None] if squeeze else x
    tile_h, tile_w = _pair(tile, "tile")
    ov_h, ov_w = (overlap, overlap) if isinstance(overlap, int) else tuple(overlap)
    N, _, H, W = xb.shape
    th, tw = _tile_size(tile_h, H, multiple), _tile_size(tile_w, W, multiple)
    if min(ov_h, ov_w) < 0 or (th < H and ov_h >= th) or (tw < W and ov_w >= tw):
        raise ValueError(f"overlap {(ov_h, ov_w)} must be >= 0 and smaller than the tile {(th, tw)}")
    ys = grid_starts(H, th, max(1, th - ov_h))
    xs = grid_starts(W, tw, max(1, tw - ov_w))
    coords = [(y, x0) for y in ys for x0 in xs]
    ph, pw = math.ceil(th / multiple) * multiple, math.ceil(tw / multiple) * multiple
    device = torch.device(device) if device is not None else _model_device(model)
    out_tile = (th * scale, tw * scale)
    out_size = (H * scale, W * scale)
    windows = _Windows(out_tile, out_size, window)
    wsum = torch.zeros(out_size, dtype=torch.float32)
    for y, x0 in coords:
        wsum[y * scale:y * scale + out_tile[0], x0 * scale:x0 * scale + out_tile[1]] += windows(y * scale, x0 * scale)

    outputs = []
    total, done = N * len(coords), 0
    with torch.no_grad():
        for n in range(N):
            acc = None
            for b in range(0, len(coords), batch_size):
                chunk = coords[b:b + batch_size]
                batch = torch.stack([xb[n, :, y:y + th, x0:x0 + tw] for y, x0 in chunk])
                batch = _pad_to(batch.to(device), ph, pw)
                out = model(batch)
                expected = (len(chunk), ph * scale, pw * scale)
                if out.dim() != 4 or (out.shape[0], *out.shape[-2:]) != expected:
                    raise ValueError(
                        f"model output shape {tuple(out.shape)} does not match input tiles "
                        f"{tuple(batch.shape)} with scale={scale}; pass the model's scale")
                out = out[..., :out_tile[0], :out_tile[1]].float().cpu()
                if acc is None:
                    acc = torch.zeros(out.shape[1], *out_size, dtype=torch.float32)
                for k, (y, x0) in enumerate(chunk):
                    oy, ox = y * scale, x0 * scale
                    acc[:, oy:oy + out_tile[0], ox:ox + out_tile[1]] += windows(oy, ox) * out[k]
                done += len(chunk)
                _report(progress, done, total)
            outputs.append(acc.div_(wsum))
    result = torch.stack(outputs)
    return result[0] if squeeze else result
