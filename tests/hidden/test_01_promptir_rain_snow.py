"""Hidden tests for notebook 01 (PromptIR rain/snow): the students' PSNR and
weighted patch stitching, against restore_lib's implementations."""
import pytest
import torch

from restore_lib import metrics
from restore_lib.course.assignments import run_student_cells, student_notebook
from restore_lib.data.patches import extract_patches, stitch_patches

NOTEBOOK = "01_promptir_rain_snow"


@pytest.fixture(scope="module")
def student_psnr():
    return run_student_cells(student_notebook(NOTEBOOK), "psnr")["psnr"]


@pytest.fixture(scope="module")
def student_stitch():
    return run_student_cells(student_notebook(NOTEBOOK), "stitch")["stitch"]


def _pair(shape, seed=0, noise=0.05):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g)
    return a, (a + noise * torch.randn(shape, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("shape, data_range", [((1, 3, 32, 32), 1.0), ((3, 17, 9), 1.0), ((1, 3, 8, 8), 255.0)])
def test_psnr_matches_library(student_psnr, shape, data_range):
    a, b = _pair(shape)
    a, b = a * data_range, b * data_range
    assert student_psnr(a, b, data_range=data_range) == pytest.approx(
        metrics.psnr(a, b, data_range=data_range), rel=1e-6)


def test_psnr_known_value(student_psnr):
    a = torch.zeros(1, 3, 4, 4)
    b = torch.full((1, 3, 4, 4), 0.1)  # MSE 0.01 -> 20 dB
    assert student_psnr(b, a) == pytest.approx(20.0, abs=1e-5)  # float32 0.1 is not exact
    assert isinstance(student_psnr(b, a), float)


@pytest.mark.parametrize("window", ["hann", "triangle", "uniform"])
@pytest.mark.parametrize("size, patch, stride", [(64, 32, 16), ((40, 56), (16, 24), (8, 12)), (30, 12, 7)])
def test_stitch_matches_library(student_stitch, window, size, patch, stride):
    img = torch.rand(3, *((size, size) if isinstance(size, int) else size))
    patches, coords = extract_patches(img, patch, stride)
    patches = patches + 0.1 * torch.randn_like(patches)  # patches that disagree where they overlap
    out_size = img.shape[-2:]
    mine = student_stitch(patches, coords, tuple(out_size), window)
    torch.testing.assert_close(mine.float(), stitch_patches(patches, coords, tuple(out_size), window),
                               rtol=1e-5, atol=1e-5)


def test_stitch_reproduces_unmodified_patches(student_stitch):
    img = torch.rand(3, 256, 256)
    patches, coords = extract_patches(img, 128, 64)  # Report A's 3x3 grid
    assert len(coords) == 9
    torch.testing.assert_close(student_stitch(patches, coords, (256, 256), "hann").float(), img,
                               rtol=1e-5, atol=1e-5)


def test_stitch_weights_taper_inside_only(student_stitch):
    """Two patches side by side: the seam must be blended smoothly, the borders kept at full weight."""
    left, right = torch.zeros(1, 8, 8), torch.ones(1, 8, 8)
    out = student_stitch(torch.stack([left, right]), [(0, 0), (0, 4)], (8, 12), "hann")
    ref = stitch_patches(torch.stack([left, right]), [(0, 0), (0, 4)], (8, 12), "hann")
    torch.testing.assert_close(out.float(), ref, rtol=1e-5, atol=1e-6)
    assert float(out[0, 0, 0]) == 0.0 and float(out[0, 0, -1]) == 1.0
    row = out[0, 0]
    assert bool((row[1:] >= row[:-1] - 1e-7).all()), "the blend across the overlap must be monotone"
    assert bool(((row[4:8] > 0) & (row[4:8] < 1)).all()), "overlapping columns must mix both patches"


def test_stitch_rejects_uncovered_pixels(student_stitch):
    patches = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError):
        student_stitch(patches, [(0, 0), (0, 6)], (4, 10), "hann")
