"""Patches, weighted stitching and tiled inference (restore_lib.data.patches)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from restore_lib.data.patches import (WINDOWS, extract_patches, grid_starts, make_window, stitch_patches,
                                      tiled_inference)


def _psnr(a, b):
    return 10 * math.log10(1.0 / float(((a - b) ** 2).mean()))


# --------------------------------------------------------------------------- grid and extraction

def test_report_a_grid_is_3x3():
    img = torch.rand(3, 256, 256)
    patches, coords = extract_patches(img, 128, 64)
    assert patches.shape == (9, 3, 128, 128)
    assert coords == [(y, x) for y in (0, 64, 128) for x in (0, 64, 128)]
    for p, (y, x) in zip(patches, coords):
        assert torch.equal(p, img[:, y:y + 128, x:x + 128])


@pytest.mark.parametrize("length, patch, stride, expected", [
    (100, 32, 30, [0, 30, 60, 68]),    # last patch snapped to the border
    (96, 32, 32, [0, 32, 64]),         # exact tiling, no extra patch
    (32, 32, 8, [0]),
    (33, 32, 100, [0, 1]),
])
def test_grid_starts_cover_the_axis(length, patch, stride, expected):
    starts = grid_starts(length, patch, stride)
    assert starts == expected
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + patch] = True
    assert covered.all()


def test_extract_batched_and_rectangular():
    img = torch.rand(2, 3, 50, 70)
    patches, coords = extract_patches(img, (20, 30), (15, 25))
    assert patches.shape[:3] == (2, len(coords), 3) and patches.shape[-2:] == (20, 30)
    ys = sorted({y for y, _ in coords})
    xs = sorted({x for _, x in coords})
    assert ys == [0, 15, 30] and xs == [0, 25, 40]
    k = coords.index((30, 40))
    assert torch.equal(patches[1, k], img[1, :, 30:50, 40:70])


def test_extract_errors():
    with pytest.raises(ValueError, match="larger than the image"):
        extract_patches(torch.rand(3, 20, 20), 32, 16)
    with pytest.raises(ValueError, match=r"\(C,H,W\)"):
        extract_patches(torch.rand(20, 20), 8, 4)


# --------------------------------------------------------------------------- stitching

@pytest.mark.parametrize("window", WINDOWS)
def test_stitch_unmodified_patches_is_exact(window):
    img = torch.rand(2, 3, 67, 93)
    patches, coords = extract_patches(img, 32, 20)
    out = stitch_patches(patches, coords, (67, 93), window=window)
    assert out.dtype == torch.float32 and out.shape == img.shape
    torch.testing.assert_close(out, img, atol=1e-6, rtol=0)


@pytest.mark.parametrize("window", WINDOWS)
def test_stitch_constant_image(window):
    img = torch.full((3, 256, 256), 0.7)
    patches, coords = extract_patches(img, 128, 64)
    out = stitch_patches(patches, coords, (256, 256), window=window)
    torch.testing.assert_close(out, img, atol=1e-6, rtol=0)


def _hann_blend_1d(width, p, starts, values):
    """Independent oracle: 1-D border-aware Hann blend of constant patches."""
    num = np.zeros(width)
    den = np.zeros(width)
    for s, v in zip(starts, values):
        i = np.arange(p)
        w = np.sin(np.pi * (i + 0.5) / p) ** 2
        w /= w.max()
        half = (p + 1) // 2
        if s == 0:
            w[:half] = 1.0
        if s + p == width:
            w[p - half:] = 1.0
        num[s:s + p] += w * v
        den[s:s + p] += w
    return num / den


def test_stitch_hann_matches_formula_and_is_seamless():
    # three constant patches with different values along a 1 x 160 strip
    p, starts, values = 64, [0, 48, 96], [0.0, 1.0, 0.25]
    patches = torch.stack([torch.full((1, 1, p), v) for v in values])
    coords = [(0, s) for s in starts]
    out = stitch_patches(patches, coords, (1, 160), window="hann")[0, 0].double().numpy()
    np.testing.assert_allclose(out, _hann_blend_1d(160, p, starts, values), atol=1e-6)
    # seamless: no jump between neighbouring pixels bigger than the smooth ramp
    assert np.abs(np.diff(out)).max() < 0.12
    # plain averaging has hard seams (jump of 0.5 where a patch starts)
    uni = stitch_patches(patches, coords, (1, 160), window="uniform")[0, 0].numpy()
    assert np.abs(np.diff(uni)).max() >= 0.5 - 1e-6


@pytest.mark.parametrize("window", ["hann", "triangle"])
def test_windows_positive_and_full_weight_at_image_border(window):
    w = make_window((16, 12), window)
    assert float(w.min()) > 0 and float(w.max()) == pytest.approx(1.0)
    edge = make_window((16, 12), window, taper=(False, True, True, True))
    assert torch.all(edge[:8] == edge[7:8])       # untapered top half: constant rows
    assert float(edge[0].min()) > float(w[0].max())


def test_stitch_errors():
    patches = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="do not cover"):
        stitch_patches(patches, [(0, 0), (0, 8)], (20, 16))
    with pytest.raises(ValueError, match="outside"):
        stitch_patches(patches, [(0, 0), (0, 12)], (8, 16))
    with pytest.raises(ValueError, match="2 patches but 3"):
        stitch_patches(patches, [(0, 0)] * 3, (8, 8))
    with pytest.raises(ValueError, match="unknown window"):
        stitch_patches(patches, [(0, 0), (0, 8)], (8, 16), window="gauss")


# --------------------------------------------------------------------------- tiled inference

class _Recorder(torch.nn.Module):
    """Wraps a function; records input shapes; optionally requires a size multiple."""

    def __init__(self, fn, multiple=1):
        super().__init__()
        self.fn, self.multiple, self.shapes = fn, multiple, []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        assert x.shape[-2] % self.multiple == 0 and x.shape[-1] % self.multiple == 0
        assert not torch.is_grad_enabled()
        return self.fn(x)


def test_tiled_identity_exact_and_bounded_batches():
    x = torch.rand(3, 67, 93)
    model = _Recorder(lambda t: t.clone())
    out = tiled_inference(model, x, tile=32, overlap=8, batch_size=3)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)
    assert all(s[0] <= 3 and s[-2:] == (32, 32) for s in model.shapes)
    # grid of 32-px tiles at stride 24: rows 0,24,35; cols 0,24,48,61
    assert sum(s[0] for s in model.shapes) == 3 * 4


@pytest.fixture(scope="module")
def conv():
    torch.manual_seed(0)
    m = torch.nn.Conv2d(3, 3, 3, padding=1).eval()
    return m


def test_tiled_local_conv_matches_untiled(conv):
    x = torch.rand(1, 3, 101, 77)
    with torch.no_grad():
        ref = conv(x)
    out = tiled_inference(conv, x, tile=32, overlap=8)
    assert out.shape == ref.shape
    assert _psnr(out, ref) > 50
    # away from tile edges the conv sees the same pixels: exact there
    interior = (slice(None), slice(None), slice(2, 22), slice(2, 22))
    torch.testing.assert_close(out[interior], ref[interior], atol=1e-6, rtol=0)


def test_tiled_batch_size_does_not_change_output(conv):
    x = torch.rand(2, 3, 70, 45)
    # a per-pixel model is batch-independent bit for bit: so must the stitching be
    outs = [tiled_inference(lambda t: torch.sin(3 * t) * t, x, tile=24, overlap=6, batch_size=b)
            for b in (1, 3, 50)]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    # a conv may pick batch-size-dependent kernels: equal to float rounding
    outs = [tiled_inference(conv, x, tile=24, overlap=6, batch_size=b) for b in (1, 3, 50)]
    torch.testing.assert_close(outs[1], outs[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(outs[2], outs[0], atol=1e-6, rtol=0)


def test_tiled_sr_nearest_upsample():
    x = torch.rand(3, 37, 29)

    def up(t):
        return F.interpolate(t, scale_factor=4, mode="nearest")

    out = tiled_inference(up, x, tile=16, overlap=4, scale=4)
    assert out.shape == (3, 148, 116)
    torch.testing.assert_close(out, up(x[None])[0], atol=1e-6, rtol=0)


def test_tiled_multiple_padding_and_small_image():
    model = _Recorder(lambda t: t * 2, multiple=8)
    x = torch.rand(3, 45, 37)
    out = tiled_inference(model, x, tile=20, overlap=4, multiple=8)   # tile rounded to 16
    torch.testing.assert_close(out, 2 * x, atol=1e-6, rtol=0)
    small = torch.rand(3, 13, 10)                                       # smaller than a tile
    model.shapes.clear()
    out = tiled_inference(model, small, tile=64, overlap=16, multiple=8)
    assert model.shapes == [(1, 3, 16, 16)]
    torch.testing.assert_close(out, 2 * small, atol=1e-6, rtol=0)


def test_tiled_progress_and_errors():
    calls = []
    x = torch.rand(3, 40, 40)
    tiled_inference(lambda t: t, x, tile=16, overlap=4, batch_size=4, progress=lambda d, n: calls.append((d, n)))
    assert calls[-1] == (9, 9) and len(calls) == 3   # 3 x 3 tiles, 4 per batch
    with pytest.raises(ValueError, match="scale"):
        tiled_inference(lambda t: t, x, tile=16, overlap=4, scale=2)
    with pytest.raises(ValueError, match="overlap"):
        tiled_inference(lambda t: t, x, tile=16, overlap=16)


@pytest.mark.gpu
def test_tiled_on_cuda_accumulates_on_cpu(conv):
    model = torch.nn.Conv2d(3, 3, 3, padding=1).eval()
    model.load_state_dict(conv.state_dict())
    x = torch.rand(3, 90, 70)
    ref = tiled_inference(model, x, tile=32, overlap=8)
    out = tiled_inference(model.cuda(), x, tile=32, overlap=8)
    assert out.device.type == "cpu" and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
