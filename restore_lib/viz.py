"""Figures for the notebooks: comparison panels with zoomed crops (placed by
hand or automatically on the most detailed / worst-restored region), readable
training curves (raw + moving average, labelled axes, honest PSNR ranges),
image grids and an ipywidgets before/after slider (which also saves a
static PNG, because widgets do not render in headless runs)."""
from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .utils import atomic_path

__all__ = ["to_uint8_image", "pick_crop", "compare_figure", "history_figure", "readable_key", "grid_figure",
           "before_after_slider", "split_view"]


def to_uint8_image(x) -> np.ndarray:
    """(C,H,W)/(1,C,H,W) tensor or (H,W,C) array in [0,1] -> (H,W,3) uint8 (RGB
    ``imshow`` clips floats with a warning, so we convert first)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu()
        if x.dim() == 4:
            x = x[0]
        x = x.permute(1, 2, 0).numpy()
    x = np.asarray(x)
    if x.dtype != np.uint8:
        x = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
    if x.ndim == 2:
        x = np.repeat(x[:, :, None], 3, axis=2)
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return x


def _float_image(x) -> np.ndarray:
    """(C,H,W)/(1,C,H,W) tensor, or (H,W[,C]) array (uint8, or float in [0,1]) -> (H,W,C) float64."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu()
        if x.dim() == 4:
            x = x[0]
        if x.dim() == 3:
            x = x.permute(1, 2, 0)
        x = x.numpy()
    x = np.asarray(x)
    x = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise ValueError(f"expected an image, got shape {x.shape}")
    return x


def _luminance(x: np.ndarray) -> np.ndarray:
    """(H,W,C) -> (H,W): Rec.601 luma for RGB(A), the channel mean otherwise."""
    if x.shape[2] >= 3:
        return x[:, :, 0] * 0.299 + x[:, :, 1] * 0.587 + x[:, :, 2] * 0.114
    return x.mean(axis=2)


def _resize_nearest(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour resampling of (H,W,C) to (h,w,C) (pixel centres aligned)."""
    ys = np.minimum(((np.arange(h) + 0.5) * x.shape[0] / h).astype(int), x.shape[0] - 1)
    xs = np.minimum(((np.arange(w) + 0.5) * x.shape[1] / w).astype(int), x.shape[1] - 1)
    return x[ys][:, xs]


def _window_sums(m: np.ndarray, s: int) -> np.ndarray:
    """Sum of ``m`` over every s x s window that lies inside it, via an integral
    image: result[y, x] = m[y:y+s, x:x+s].sum(), shape (H-s+1, W-s+1)."""
    ii = np.zeros((m.shape[0] + 1, m.shape[1] + 1))
    ii[1:, 1:] = m.cumsum(0).cumsum(1)
    return ii[s:, s:] - ii[:-s, s:] - ii[s:, :-s] + ii[:-s, :-s]


def pick_crop(reference, size: int | None = None, *, error_of=None) -> tuple[int, int, int]:
    """Where to zoom: the square window ``(y, x, size)``, in ``reference``'s
    pixel coordinates and always inside it, that shows the most.

    * default: the window with the most detail in ``reference`` -- the largest
      sum of gradient magnitude of its luminance (edges and texture; flat sky
      or walls score zero);
    * ``error_of=other``: the window with the largest sum of absolute error
      between ``reference`` and ``other`` (mean over channels), i.e. where a
      method fails most. An ``other`` of a different size (an SR LR input) is
      resampled to ``reference``'s size by nearest neighbour first.

    ``size`` defaults to ``min(h, w) // 4`` (at least 16), and is capped at
    ``min(h, w)``. Ties (e.g. a flat image) go to the window nearest the
    centre. Images are (C,H,W) tensors or (H,W[,C]) arrays; numpy only, a few
    milliseconds on a 320 px image."""
    ref = _float_image(reference)
    h, w = ref.shape[:2]
    s = max(16, min(h, w) // 4) if size is None else int(size)
    if s < 1:
        raise ValueError(f"crop size must be >= 1, got {size}")
    s = min(s, h, w)
    if error_of is not None:
        other = _float_image(error_of)
        if other.shape[:2] != (h, w):
            other = _resize_nearest(other, h, w)
        c = min(ref.shape[2], other.shape[2])
        score_map = np.abs(ref[:, :, :c] - other[:, :, :c]).mean(axis=2)
    else:
        lum = _luminance(ref)
        gx = np.zeros_like(lum)
        gy = np.zeros_like(lum)
        gx[:, :-1] = np.diff(lum, axis=1)
        gy[:-1, :] = np.diff(lum, axis=0)
        score_map = np.hypot(gx, gy)
    score = _window_sums(score_map, s)
    best = np.isclose(score, score.max(), rtol=1e-9, atol=1e-12)
    ys, xs = np.nonzero(best)
    cy, cx = (h - s) / 2, (w - s) / 2
    i = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return int(ys[i]), int(xs[i]), int(s)


def _resolve_crop(crop, arrs: Sequence[np.ndarray]) -> tuple[int, int, int] | None:
    """``crop`` of :func:`compare_figure` -> (y, x, size) in the largest image's coordinates, or None."""
    if crop is None or crop is False:
        return None
    if isinstance(crop, str):
        if crop not in ("auto", "error"):
            raise ValueError(f"crop must be (y, x, size), 'auto', 'error' or None, got {crop!r}")
        last = arrs[-1]
        y, x, s = pick_crop(last, error_of=arrs[0] if crop == "error" else None)
        f = max(a.shape[0] for a in arrs) / last.shape[0]       # last image -> largest image coordinates
        return int(round(y * f)), int(round(x * f)), max(1, int(round(s * f)))
    y, x, s = crop
    return int(y), int(x), int(s)


def compare_figure(images: Mapping[str, object], crop: tuple[int, int, int] | str | None = None,
                   scores: Mapping[str, str] | None = None, title: str | None = None, width: float = 3.0):
    """One column per image (e.g. degraded | restored | clean). With a ``crop``
    a second row shows a region enlarged (outlined in yellow above):

    * ``crop=(y, x, size)``: that square, in the coordinates of the largest image;
    * ``crop="auto"``: the most detailed square of the *last* image (by
      convention the clean / ground-truth one), see :func:`pick_crop`;
    * ``crop="error"``: the square where the first image (the degraded input)
      differs most from the last one;
    * ``crop=None``: no zoom row.

    Smaller images (SR inputs) are shown at their own size with the crop
    scaled to them. ``scores`` adds a subtitle per image (e.g. "27.1 dB")."""
    import matplotlib.pyplot as plt

    names = list(images)
    arrs = [to_uint8_image(images[n]) for n in names]
    box = _resolve_crop(crop, arrs)
    rows = 2 if box else 1
    fig, axes = plt.subplots(rows, len(names), figsize=(width * len(names), width * rows), squeeze=False)
    ref_h = max(a.shape[0] for a in arrs)
    for j, (n, a) in enumerate(zip(names, arrs)):
        ax = axes[0, j]
        ax.imshow(a)
        ax.set_title(n + (f"\n{scores[n]}" if scores and n in scores else ""))
        ax.axis("off")
        if box:
            y, x, s = box
            f = a.shape[0] / ref_h
            yy, xx, ss = int(y * f), int(x * f), max(1, int(s * f))
            ax.add_patch(plt.Rectangle((xx, yy), ss, ss, fill=False, edgecolor="yellow", linewidth=1))
            axes[1, j].imshow(a[yy:yy + ss, xx:xx + ss])
            axes[1, j].axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


_PREFIXES = {"val": "validation", "valid": "validation", "train": "training", "test": "test", "eval": "evaluation"}
_METRICS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS", "loss": "loss", "lr": "learning rate",
            "mse": "MSE", "l1": "L1", "niqe": "NIQE"}


def readable_key(key: str) -> str:
    """History column -> axis label: ``loss`` -> "training loss", ``val_psnr``
    -> "validation PSNR (dB)", ``train_ssim`` -> "training SSIM", ``lr`` ->
    "learning rate"; anything else is returned unchanged."""
    if key == "loss":
        return "training loss"
    parts = key.split("_")
    if len(parts) == 2 and parts[0].lower() in _PREFIXES and parts[1].lower() in _METRICS:
        return f"{_PREFIXES[parts[0].lower()]} {_METRICS[parts[1].lower()]}"
    return _METRICS.get(key.lower(), key)


def _psnr_like(key: str) -> bool:
    return "psnr" in key.lower()


def history_figure(history, keys: Sequence[str] = ("loss", "val_psnr"), title: str | None = None,
                   labels: Sequence[str] | None = None, *, ema_alpha: float | None = 0.15,
                   smooth_min_points: int = 30, min_psnr_span: float = 1.0):
    """Training curves from a Trainer history (a DataFrame or list of dicts):
    one panel (axis) per key, x = "step" (the row index if there is none).
    Pass several histories as a dict ``{label: history}`` to overlay runs
    (one colour per run in every panel, with a legend).

    * Noisy series (at least ``smooth_min_points`` points, e.g. the training
      loss) are drawn faint as logged, with an exponential moving average
      (``ema_alpha``; None or 0 turns smoothing off) on top.
    * Short series (validation curves) are drawn unsmoothed with markers.
    * Axes are labelled: x "step", y a readable name of the key
      (:func:`readable_key`, or ``labels[i]`` for ``keys[i]``).
    * Honest PSNR ranges: for PSNR-like keys whose data span less than
      ``min_psnr_span`` dB (default 1 dB) the y-range is widened to at least
      that span around the data, so that a 0.3 dB wiggle is not drawn as a
      cliff. Autoscaling stays on, so lines added later (``ax.axhline``) are
      still included."""
    import matplotlib.pyplot as plt
    import pandas as pd

    runs = history if isinstance(history, Mapping) else {"": history}
    frames = {label: pd.DataFrame(h) for label, h in runs.items()}
    names = dict(zip(keys, labels)) if labels is not None else {}
    keys = [k for k in keys if any(k in df.columns for df in frames.values())]
    n = max(1, len(keys))
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.2), squeeze=False)
    smoothing = bool(ema_alpha) and ema_alpha < 1
    for ax, k in zip(axes[0], keys):
        smoothed_any, lo, hi, x0 = False, np.inf, -np.inf, None
        for i, (label, df) in enumerate(frames.items()):
            if k not in df.columns:
                continue
            steps = df["step"] if "step" in df.columns else pd.Series(np.arange(len(df)), index=df.index)
            d = pd.DataFrame({"step": steps, "y": pd.to_numeric(df[k], errors="coerce")}).dropna()
            if d.empty:
                continue
            color = f"C{i % 10}"
            if smoothing and len(d) >= smooth_min_points:
                smoothed_any = True
                ax.plot(d["step"], d["y"], color=color, alpha=0.25, linewidth=0.8,
                        label=None if label else "as logged")
                ema = d["y"].ewm(alpha=ema_alpha, adjust=True).mean()
                ax.plot(d["step"], ema, color=color, linewidth=1.6,
                        label=label or f"moving average (EMA, α={ema_alpha:g})")
            else:
                ax.plot(d["step"], d["y"], color=color, marker="o", markersize=3.5, linewidth=1.2,
                        label=label or None)
            lo, hi = min(lo, float(d["y"].min())), max(hi, float(d["y"].max()))
            x0 = float(d["step"].iloc[0]) if x0 is None else x0
        if _psnr_like(k) and np.isfinite(lo) and hi - lo < min_psnr_span:
            mid = (lo + hi) / 2
            ax.update_datalim([(x0, mid - min_psnr_span / 2), (x0, mid + min_psnr_span / 2)], updatex=False)
            ax.autoscale_view()
        ax.set_xlabel("step")
        ax.set_ylabel(names.get(k, readable_key(k)))
        ax.grid(True, alpha=0.3)
        if len(frames) > 1:
            ax.legend(fontsize=8, title="faint: as logged; solid: EMA" if smoothed_any else None,
                      title_fontsize=7)
        elif smoothed_any:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def grid_figure(images: Sequence[object], titles: Sequence[str] | None = None, cols: int = 4,
                width: float = 2.4):
    """A grid of images with optional titles."""
    import matplotlib.pyplot as plt

    n = len(images)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, min(cols, n), figsize=(width * min(cols, n), width * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(to_uint8_image(images[i]))
            if titles:
                ax.set_title(titles[i])
    fig.tight_layout()
    return fig


def split_view(before, after, position: float = 0.5) -> np.ndarray:
    """Left part from ``before``, right part from ``after``, with a white divider."""
    a, b = to_uint8_image(before), to_uint8_image(after)
    if a.shape != b.shape:
        raise ValueError(f"before/after shapes differ: {a.shape} vs {b.shape}")
    x = int(round(position * a.shape[1]))
    out = b.copy()
    out[:, :x] = a[:, :x]
    out[:, max(0, x - 1):x + 1] = 255
    return out


def before_after_slider(before, after, save_path: str | os.PathLike | None = None, position: float = 0.5):
    """An ipywidgets slider that moves the divider between ``before`` and
    ``after``. Always writes a static PNG at ``position`` to ``save_path``
    (headless runs show no widgets). Returns the widget, or None without
    ipywidgets."""
    from PIL import Image

    static = split_view(before, after, position)
    if save_path is not None:
        with atomic_path(save_path, suffix=".png") as tmp:
            Image.fromarray(static).save(tmp, format="PNG")
    try:
        import ipywidgets as widgets
    except ImportError:
        return None

    def png(arr):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        return buf.getvalue()

    class Slider(widgets.VBox):
        """The widget, whose display also carries the static view as image/png: a saved notebook shows the
        picture wherever widgets do not render (GitHub, nbviewer, a kernel-less reopen), not 'VBox(...)'."""

        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs) or {}
            bundle["image/png"] = base64.b64encode(static_png).decode("ascii")
            bundle["text/plain"] = (f"before/after slider (static view: before left of the divider at "
                                    f"{position:.0%}, after right of it)")
            return bundle

    steps = 20
    frames = [png(split_view(before, after, i / steps)) for i in range(steps + 1)]  # precomputed
    static_png = png(static)
    image = widgets.Image(value=frames[int(round(position * steps))], format="png")
    slider = widgets.IntSlider(value=int(round(position * steps)), min=0, max=steps, description="divider",
                               continuous_update=False, readout=False)
    slider.observe(lambda ch: setattr(image, "value", frames[ch["new"]]), names="value")
    return Slider([slider, image])
