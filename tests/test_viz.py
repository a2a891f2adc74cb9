"""Figures for the notebooks. The before/after slider: a static PNG on disk, and a display that falls back to
that picture where widgets do not render (a saved notebook on GitHub or nbviewer would otherwise show the text
'VBox(...)'). The automatic zoom crop (most detail / largest error, always inside the image), the comparison
figure's zoom row, and readable training curves (labelled axes, raw + moving average, PSNR ranges of at least
1 dB so a 0.3 dB wiggle is not drawn as a cliff)."""
import base64
import io

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from restore_lib import viz

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def test_slider_display_carries_the_static_view(tmp_path):
    pytest.importorskip("ipywidgets")
    rng = np.random.default_rng(0)
    before, after = rng.random((24, 40, 3)), rng.random((24, 40, 3))
    slider = viz.before_after_slider(before, after, save_path=tmp_path / "s.png", position=0.25)
    bundle = slider._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle       # the live widget where widgets work
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(bundle["image/png"]))))
    expected = viz.split_view(before, after, 0.25)
    assert np.array_equal(shown, expected) and np.array_equal(np.asarray(Image.open(tmp_path / "s.png")), expected)
    assert "VBox" not in bundle["text/plain"] and "25%" in bundle["text/plain"]


# ---------------------------------------------------------------------------------------------- automatic zoom crop
def _overlap(a, b):
    """Overlapping area of two (y, x, size) squares."""
    (ya, xa, sa), (yb, xb, sb) = a, b
    dy = min(ya + sa, yb + sb) - max(ya, yb)
    dx = min(xa + sa, xb + sb) - max(xa, xb)
    return max(0, dy) * max(0, dx)


def _inside(crop, h, w):
    y, x, s = crop
    return 0 <= y and 0 <= x and s >= 1 and y + s <= h and x + s <= w


@pytest.mark.parametrize("where", [(10, 150), (120, 20), (200, 220)])
def test_pick_crop_finds_a_textured_square_in_a_flat_image(where):
    rng = np.random.default_rng(1)
    img = np.full((280, 320, 3), 0.5)
    y0, x0 = where
    img[y0:y0 + 48, x0:x0 + 48] = rng.random((48, 48, 3))
    crop = viz.pick_crop(img, 48)
    assert _inside(crop, 280, 320) and crop[2] == 48
    assert _overlap(crop, (y0, x0, 48)) >= 0.9 * 48 * 48     # on the texture, not merely touching it


def test_pick_crop_prefers_texture_to_noise_free_flat_regions_with_a_tensor_input():
    img = torch.full((3, 96, 128), 0.2)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    img[:, 50:82, 8:40] = ((yy + xx) % 2).float()               # a one-pixel checkerboard
    y, x, s = viz.pick_crop(img, 32)
    assert (y, x, s) == (50, 8, 32)


def test_pick_crop_error_mode_finds_where_two_images_differ():
    rng = np.random.default_rng(2)
    clean = rng.random((200, 240, 3))                           # detail everywhere: detail mode cannot tell
    restored = clean.copy()
    restored[130:170, 30:70] += 0.3
    restored = np.clip(restored, 0, 1)
    crop = viz.pick_crop(clean, 40, error_of=restored)
    assert _inside(crop, 200, 240)
    assert _overlap(crop, (130, 30, 40)) >= 0.9 * 40 * 40
    assert viz.pick_crop(restored, 40, error_of=clean) == crop  # symmetric


def test_pick_crop_error_mode_accepts_a_smaller_input():
    hr = np.full((128, 128, 3), 0.5)
    lr = np.full((32, 32, 3), 0.5)
    lr[2:8, 22:30] = 1.0                                        # differs at HR rows 8..32, cols 88..120
    y, x, s = viz.pick_crop(hr, 32, error_of=lr)
    assert _overlap((y, x, s), (8, 88, 24)) >= 0.9 * 24 * 24


def test_pick_crop_flat_image_gives_the_centre():
    y, x, s = viz.pick_crop(np.zeros((100, 60)), 20)
    assert (y, x, s) == (40, 20, 20)


@pytest.mark.parametrize("h,w,size", [(33, 47, 9), (47, 33, 16), (17, 101, 17), (31, 31, 30), (21, 19, 50)])
def test_pick_crop_windows_stay_inside_for_odd_sizes(h, w, size):
    rng = np.random.default_rng(h * w)
    img = rng.random((h, w, 3))
    img[-5:, -5:] = rng.random((5, 5, 3)) * 4 - 2               # strong detail in the bottom-right corner
    for crop in (viz.pick_crop(img, size), viz.pick_crop(img, size, error_of=rng.random((h, w, 3)))):
        assert _inside(crop, h, w)
        assert crop[2] == min(size, h, w)
        assert all(isinstance(v, int) for v in crop)


@pytest.mark.parametrize("h,w,expected", [(320, 480, 80), (480, 321, 80), (40, 64, 16), (10, 30, 10)])
def test_pick_crop_default_size(h, w, expected):
    y, x, s = viz.pick_crop(np.random.default_rng(0).random((h, w, 3)))
    assert s == expected and _inside((y, x, s), h, w)


def _zoom_box(fig, col=0):
    """The yellow outline drawn on the top-row image in column ``col``: (y, x, size)."""
    (rect,) = fig.axes[col].patches
    x, y = rect.get_xy()
    return int(y), int(x), int(rect.get_width())


@pytest.mark.parametrize("crop", ["auto", "error", (10, 20, 30)])
def test_compare_figure_zoom_row(crop):
    rng = np.random.default_rng(3)
    clean = np.full((96, 128, 3), 0.5)
    clean[50:82, 80:112] = rng.random((32, 32, 3))
    degraded = clean.copy()
    degraded[4:36, 8:40] = 0.9
    fig = viz.compare_figure({"degraded": degraded, "restored": clean, "clean": clean}, crop=crop)
    try:
        assert len(fig.axes) == 6                               # 2 rows x 3 columns
        assert {ax.get_subplotspec().rowspan.start for ax in fig.axes} == {0, 1}
        box = _zoom_box(fig)
        assert _inside(box, 96, 128) and box[2] == (30 if crop == (10, 20, 30) else 24)
        if crop == "auto":
            assert _overlap(box, (50, 80, 32)) == 24 * 24        # on the texture of the clean image
        elif crop == "error":
            assert _overlap(box, (4, 8, 32)) == 24 * 24          # where the input is wrong
    finally:
        plt.close(fig)


def test_compare_figure_without_crop_has_one_row_and_rejects_unknown_modes():
    img = np.zeros((32, 32, 3))
    fig = viz.compare_figure({"a": img, "b": img})
    try:
        assert len(fig.axes) == 2
    finally:
        plt.close(fig)
    with pytest.raises(ValueError):
        viz.compare_figure({"a": img, "b": img}, crop="best")
    plt.close("all")


def test_compare_figure_error_crop_with_a_smaller_sr_input():
    hr = np.full((128, 128, 3), 0.5)
    lr = np.full((32, 32, 3), 0.5)
    lr[24:30, 2:8] = 1.0
    fig = viz.compare_figure({"LR": torch.from_numpy(lr).permute(2, 0, 1), "SR": hr, "HR": hr}, crop="error")
    try:
        assert len(fig.axes) == 6
        y, x, s = _zoom_box(fig, col=2)                         # HR coordinates
        assert s == 32 and _overlap((y, x, s), (96, 8, 24)) >= 0.9 * 24 * 24
        ly, lx, ls = _zoom_box(fig, col=0)                      # scaled onto the LR image
        assert (ly, lx, ls) == (y // 4, x // 4, 8)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------------------- training curves
def _history(steps=200, val_every=50, psnr0=28.0, psnr_span=0.3, seed=0):
    rng = np.random.default_rng(seed)
    rows = [{"step": s, "epoch": 0, "loss": 0.05 + 0.2 * np.exp(-s / 40) + 0.03 * rng.standard_normal()}
            for s in range(1, steps + 1)]
    vals = np.linspace(psnr0, psnr0 + psnr_span, steps // val_every)
    rows += [{"step": (i + 1) * val_every, "epoch": 0, "val_psnr": v} for i, v in enumerate(vals)]
    return pd.DataFrame(rows).sort_values("step", kind="stable")


def _total_variation(line):
    return float(np.abs(np.diff(np.asarray(line.get_ydata(), dtype=float))).sum())


def test_history_figure_small_psnr_changes_are_not_drawn_as_cliffs():
    fig = viz.history_figure(_history(psnr_span=0.3), keys=("loss", "val_psnr"), title="t")
    try:
        loss_ax, psnr_ax = fig.axes
        lo, hi = psnr_ax.get_ylim()
        assert hi - lo >= 1.0 and lo <= 28.0 and hi >= 28.3
        assert hi - lo < 2.0                                    # widened, not blown up
        fig.canvas.draw()
        lo2, hi2 = psnr_ax.get_ylim()                           # still so after a draw
        assert hi2 - lo2 >= 1.0
    finally:
        plt.close(fig)


def test_history_figure_large_psnr_changes_keep_the_data_range():
    fig = viz.history_figure(_history(psnr0=20.0, psnr_span=6.0), keys=("val_psnr",))
    try:
        lo, hi = fig.axes[0].get_ylim()
        assert 19.0 < lo <= 20.0 and 26.0 <= hi < 27.0
    finally:
        plt.close(fig)


def test_history_figure_axes_are_labelled_and_noisy_curves_smoothed():
    fig = viz.history_figure(_history(), keys=("loss", "val_psnr", "missing"))
    try:
        assert len(fig.axes) == 2                               # one panel per present key
        loss_ax, psnr_ax = fig.axes
        for ax in fig.axes:
            assert ax.get_xlabel() == "step"
        assert loss_ax.get_ylabel() == "training loss"
        assert psnr_ax.get_ylabel() == "validation PSNR (dB)"
        lines = loss_ax.get_lines()
        assert len(lines) == 2                                  # raw (faint) + moving average
        raw, smooth = sorted(lines, key=_total_variation, reverse=True)
        assert len(smooth.get_xdata()) == len(raw.get_xdata()) == 200
        assert _total_variation(smooth) < 0.4 * _total_variation(raw)
        assert (raw.get_alpha() or 1.0) < (smooth.get_alpha() or 1.0)
        (val,) = psnr_ax.get_lines()                            # 4 validation points: unsmoothed, markers
        assert len(val.get_xdata()) == 4 and val.get_marker() not in (None, "", "None", " ")
        assert np.allclose(val.get_ydata(), np.linspace(28.0, 28.3, 4))
    finally:
        plt.close(fig)


def test_history_figure_overlays_runs_with_a_legend_and_accepts_lists_of_dicts():
    runs = {"A": _history(seed=1).to_dict("records"), "B": _history(seed=2, psnr0=29.0)}
    fig = viz.history_figure(runs, keys=("loss", "val_psnr"), labels=("L1 loss", "PSNR (dB)"))
    try:
        loss_ax, psnr_ax = fig.axes
        assert loss_ax.get_ylabel() == "L1 loss" and psnr_ax.get_ylabel() == "PSNR (dB)"
        for ax in fig.axes:
            legend = ax.get_legend()
            assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["A", "B"]
        assert len(loss_ax.get_lines()) == 4 and len(psnr_ax.get_lines()) == 2
        w, h = fig.get_size_inches()
        assert w >= 8.5 and h >= 3.0
    finally:
        plt.close(fig)


def test_readable_key():
    assert viz.readable_key("loss") == "training loss"
    assert viz.readable_key("val_psnr") == "validation PSNR (dB)"
    assert viz.readable_key("train_ssim") == "training SSIM"
    assert viz.readable_key("lr") == "learning rate"
    assert viz.readable_key("loss_R / loss_F") == "loss_R / loss_F"
