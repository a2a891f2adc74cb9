"""Figures for the notebooks: comparison panels with zoomed crops, training
curves, image grids and an ipywidgets before/after slider (which also saves a
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

__all__ = ["to_uint8_image", "compare_figure", "history_figure", "grid_figure", "before_after_slider",
           "split_view"]


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


def compare_figure(images: Mapping[str, object], crop: tuple[int, int, int] | None = None,
                   scores: Mapping[str, str] | None = None, title: str | None = None, width: float = 3.0):
    """One column per image (e.g. degraded | restored | clean). With
    ``crop=(y, x, size)`` (in the coordinates of the largest image) a second
    row shows that region enlarged; SR inputs are shown at their own size.
    ``scores`` adds a subtitle per image (e.g. "27.1 dB")."""
    import matplotlib.pyplot as plt

    names = list(images)
    arrs = [to_uint8_image(images[n]) for n in names]
    rows = 2 if crop else 1
    fig, axes = plt.subplots(rows, len(names), figsize=(width * len(names), width * rows), squeeze=False)
    ref_h = max(a.shape[0] for a in arrs)
    for j, (n, a) in enumerate(zip(names, arrs)):
        ax = axes[0, j]
        ax.imshow(a)
        ax.set_title(n + (f"\n{scores[n]}" if scores and n in scores else ""))
        ax.axis("off")
        if crop:
            y, x, s = crop
            f = a.shape[0] / ref_h
            yy, xx, ss = int(y * f), int(x * f), max(1, int(s * f))
            ax.add_patch(plt.Rectangle((xx, yy), ss, ss, fill=False, edgecolor="yellow", linewidth=1))
            axes[1, j].imshow(a[yy:yy + ss, xx:xx + ss])
            axes[1, j].axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def history_figure(history, keys: Sequence[str] = ("loss", "val_psnr"), title: str | None = None,
                   labels: Sequence[str] | None = None):
    """Training curves from a Trainer history (a DataFrame or list of dicts):
    one panel per key, x = step. Pass several histories as a dict
    ``{label: history}`` to overlay runs."""
    import matplotlib.pyplot as plt
    import pandas as pd

    runs = history if isinstance(history, Mapping) else {"": history}
    keys = [k for k in keys if any(k in pd.DataFrame(h).columns for h in runs.values())]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(4 * max(1, len(keys)), 2.8), squeeze=False)
    for ax, k in zip(axes[0], keys):
        for label, h in runs.items():
            df = pd.DataFrame(h)
            if k in df.columns:
                d = df[["step", k]].dropna()
                ax.plot(d["step"], d[k], marker="." if len(d) < 30 else None, label=label or None)
        ax.set_xlabel("step")
        ax.set_title(k)
        if len(runs) > 1:
            ax.legend(fontsize=7)
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
