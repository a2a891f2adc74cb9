"""Reading and writing images with errors that name the file and the problem.

Images are float32 numpy arrays (H, W, 3) in [0, 1], RGB.

Policy for unusual files:

* grayscale (L, I;16, ...): replicated to three channels when ``gray="rgb"``
  (the default), rejected when ``gray="error"``;
* RGBA / LA: rejected, unless the alpha channel is fully opaque or
  ``alpha="drop"`` is passed (transparent pixels would otherwise carry
  arbitrary colours into the metrics);
* 16-bit: scaled by 1/65535, never truncated to 8 bits. Pillow decodes
  16-bit RGB, RGBA and gray+alpha PNGs as 8-bit, so those are rejected with a
  message (16-bit grayscale PNGs and 16-bit RGB TIFFs, read with tifffile,
  are fine);
* float images (TIFF, Pillow mode F) are taken as they are and must lie in
  [0, 1]: values outside are refused, never clipped (a float TIFF in 0-255
  would otherwise become almost all white);
* CMYK images (JPEG, TIFF): rejected, since turning ink into RGB needs the
  file's colour profile; convert them with a colour-managed tool;
* palette images: converted to RGB;
* EXIF orientation: pixels are read as stored, never rotated (a degraded
  image and its clean pair must share one pixel grid). A file whose EXIF
  orientation tag asks for a rotation or flip is refused unless
  ``orientation="stored"`` says to use the stored grid anyway;
* images larger than Pillow's decompression-bomb limit, and anything Pillow
  cannot decode: :class:`ImageReadError` naming the file.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..utils import atomic_path

__all__ = ["ImageReadError", "read_image", "write_image", "to_uint8", "to_tensor", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    """An image file that cannot be used; the message names the file."""


#: EXIF tag 0x0112: 1 = stored as displayed; 2-8 = mirror and/or rotate for display
_EXIF_ORIENTATION = 0x0112


def read_image(path: str | os.PathLike, *, gray: str = "rgb", alpha: str = "error",
               orientation: str = "error") -> np.ndarray:
    """Read an image file as float32 RGB in [0, 1], shape (H, W, 3)."""
    path = Path(path)
    if orientation not in ("error", "stored"):
        raise ValueError(f"orientation must be 'error' or 'stored', got {orientation!r}")
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    if path.suffix.lower() in (".tif", ".tiff"):
        return _finish(path, _read_tiff(path), "TIFF", gray, alpha)
    _reject_16bit_color_png(path)
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode == "CMYK":
                raise ImageReadError(f"{path}: CMYK image; convert it to RGB with its colour profile first")
            turn = im.getexif().get(_EXIF_ORIENTATION, 1)
            if orientation == "error" and turn not in (1, None):
                raise ImageReadError(f"{path}: EXIF orientation {turn} asks viewers to rotate or mirror it; pixels "
                                     f"are read as stored. Rotate the file itself, or pass orientation='stored'")
            im.load()
            arr = np.asarray(im)
            palette_rgb = np.asarray(im.convert("RGBA")) if mode == "P" else None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path}: too many pixels to decode safely ({e})") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: corrupt or unreadable image ({e})") from e

    if palette_rgb is not None:
        arr, mode = palette_rgb, "RGBA"
    if arr.dtype == np.uint8:
        img = arr.astype(np.float32) / 255.0
    elif arr.dtype in (np.uint16, np.int32) or mode.startswith("I;16") or mode == "I":
        img = arr.astype(np.float32) / 65535.0
    elif arr.dtype == bool:
        img = arr.astype(np.float32)
    elif arr.dtype == np.float32 and mode == "F":
        img = _check_float_range(path, arr)
    else:
        raise ImageReadError(f"{path}: unsupported pixel type {arr.dtype} (mode {mode})")
    return _finish(path, img, mode, gray, alpha)


def _reject_16bit_color_png(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(26)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 26 and head[12:16] == b"IHDR":
        bit_depth, color_type = head[24], head[25]
        if bit_depth == 16 and color_type in (2, 4, 6):
            kind = {2: "RGB", 4: "gray+alpha", 6: "RGBA"}[color_type]
            raise ImageReadError(
                f"{path}: 16-bit {kind} PNG; Pillow would silently truncate it to 8 bits. Convert it to 8-bit "
                f"PNG or to a 16-bit TIFF (read at full precision).")


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            photometric = tif.pages[0].photometric
            arr = tif.asarray()
    except (ValueError, OSError, KeyError, IndexError) as e:
        raise ImageReadError(f"{path}: corrupt or unreadable TIFF ({e})") from e
    if photometric == tifffile.PHOTOMETRIC.SEPARATED:
        raise ImageReadError(f"{path}: CMYK (separated) TIFF; convert it to RGB with its colour profile first")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype in (np.float32, np.float64):
        return _check_float_range(path, arr.astype(np.float32))
    raise ImageReadError(f"{path}: unsupported TIFF pixel type {arr.dtype}")


def _check_float_range(path: Path, arr: np.ndarray) -> np.ndarray:
    """A float image must already be in [0, 1]: refuse, rather than clip, anything else."""
    if arr.size == 0:
        return arr
    if not np.isfinite(arr).all():
        raise ImageReadError(f"{path}: float image with NaN or infinite pixels")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ImageReadError(f"{path}: float image with values in [{lo:.4g}, {hi:.4g}]; expected [0, 1] (scale it "
                             f"first: clipping would lose {100 * float(((arr < 0) | (arr > 1)).mean()):.1f} % of "
                             f"the pixels)")
    return arr


def _finish(path: Path, img: np.ndarray, mode: str, gray: str, alpha: str) -> np.ndarray:
    """Channel policy shared by every reader (see the module docstring)."""
    if img.ndim == 2:
        if gray != "rgb":
            raise ImageReadError(f"{path}: grayscale image (mode {mode}); expected RGB")
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] in (2, 4):
        a = img[:, :, -1]
        if alpha != "drop" and a.min() < 1.0:
            raise ImageReadError(
                f"{path}: image has a transparent alpha channel (mode {mode}); "
                f"flatten it first or pass alpha='drop'")
        img = img[:, :, :-1]
        if img.shape[2] == 1:
            if gray != "rgb":
                raise ImageReadError(f"{path}: grayscale image (mode {mode}); expected RGB")
            img = np.repeat(img, 3, axis=2)
    elif img.ndim != 3 or img.shape[2] != 3:
        raise ImageReadError(f"{path}: unsupported channel layout {img.shape} (mode {mode})")
    return np.ascontiguousarray(np.clip(img, 0.0, 1.0), dtype=np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Round a [0,1] float image to uint8 (clipping first)."""
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_image(path: str | os.PathLike, img: np.ndarray) -> Path:
    """Write a [0,1] float or uint8 image as PNG (or by extension), atomically:
    the file appears complete or not at all."""
    path = Path(path)
    data = img if img.dtype == np.uint8 else to_uint8(img)
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    with atomic_path(path, suffix=path.suffix or ".png") as tmp:
        Image.fromarray(data).save(tmp, format=None if path.suffix else "PNG")
    return path


def to_tensor(img) -> torch.Tensor:
    """An image as a (3, H, W) float32 CPU tensor in [0, 1]: an (H, W, 3) float
    or uint8 array (uint8 divided by 255), or a (3, H, W) / (1, 3, H, W)
    tensor (detached, cast to float). The one HWC -> CHW conversion of the library."""
    if isinstance(img, torch.Tensor):
        t = img.detach().float().cpu()
        return t[0] if t.ndim == 4 and t.shape[0] == 1 else t
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(2, 0, 1)
