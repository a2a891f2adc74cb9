"""MATLAB-bicubic imresize against piq.functional.imresize (the same MATLAB
routine, equal to BasicSR's matlab_functions.imresize), pinned values and an
explicit slow formula."""
import numpy as np
import pytest
import torch

from restore_lib.data.imresize import bicubic_downsample, contributions, cubic, imresize, modcrop
from restore_lib.weights import package_file

piq_resize = pytest.importorskip("piq.functional").imresize


def _piq(img: np.ndarray, **kw) -> np.ndarray:
    """piq on an (H, W, C) numpy image (piq computes in float32)."""
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    return piq_resize(t, **kw)[0].permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo, non-square crop, float32 in [0, 1]."""
    import skimage.data
    return skimage.data.astronaut()[40:236, 100:401].astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def monarch_u8() -> np.ndarray:
    path = package_file("sporco", "data", "monarch.png")
    if path is None:
        pytest.skip("sporco (monarch.png) not installed")
    from PIL import Image
    return np.asarray(Image.open(path).convert("RGB"))


SCALES = [1 / 2, 1 / 3, 1 / 4, 4]


def _to_u8(x: np.ndarray) -> np.ndarray:
    """MATLAB's float -> uint8 rule: clip, round half away from zero."""
    return np.floor(np.clip(x, 0, 255) + 0.5).astype(np.uint8)


@pytest.mark.parametrize("scale", SCALES)
def test_matches_piq_on_random_non_square(scale):
    x = np.random.default_rng(0).random((37, 53, 3), dtype=np.float32)
    ours, ref = imresize(x, scale=scale), _piq(x, scale=scale)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    assert np.abs(ours - ref).max() <= 1e-5


@pytest.mark.parametrize("scale", SCALES)
def test_matches_piq_on_photo(photo, scale):
    ours, ref = imresize(photo, scale=scale), _piq(photo, scale=scale)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 1e-5


@pytest.mark.parametrize("shape", [(50, 31), (97, 211), (400, 120)])
def test_output_shape_non_square_matches_piq(photo, shape):
    ours, ref = imresize(photo, output_shape=shape), _piq(photo, sizes=shape)
    assert ours.shape[:2] == shape
    assert np.abs(ours - ref).max() <= 1e-5


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_uint8_downscale_identical_to_piq(monarch_u8, factor):
    """The SR-benchmark protocol: MATLAB bicubic of the mod-cropped HR, rounded."""
    ours = bicubic_downsample(monarch_u8, factor)
    hr = modcrop(monarch_u8, factor).astype(np.float32)
    ref = _to_u8(_piq(hr, scale=1 / factor))
    assert ours.dtype == np.uint8 and ours.shape == ref.shape
    assert np.array_equal(ours, ref)  # 100 % identical pixels


def test_uint8_upscale_identical_to_piq(photo):
    """x4 up hits exact .5 ties (dyadic weights): both sides round them up."""
    u8 = np.round(photo[:64, :96] * 255).astype(np.uint8)
    ours = imresize(u8, scale=4)
    ref = _to_u8(_piq(u8.astype(np.float32), scale=4))
    assert np.array_equal(ours, ref)


@pytest.mark.parametrize("kw", [dict(scale=0.25), dict(scale=1 / 3), dict(scale=0.7), dict(scale=3),
                                dict(output_shape=(13, 40))])
def test_constant_image_stays_constant(kw):
    x = np.full((29, 31, 3), 0.3125, dtype=np.float64)
    y = imresize(x, **kw)
    assert np.abs(y - 0.3125).max() < 1e-12


# Reference values computed once with piq 0.8.0 (`piq.functional.imresize`,
# float32) on the input below and pasted here as literals.
PINNED_X = ((np.arange(84, dtype=np.float64) * 0.37) % 1.0).reshape(6, 7, 2)
PINNED_HALF_CH0 = np.array([[0.39375, 0.5117719, 0.6065369, 0.577992],
                            [0.3624695, 0.5291058, 0.3761749, 0.7209058],
                            [0.6652649, 0.4131848, 0.6168976, 0.3207898]])
PINNED_X4_CH1 = np.array([0.379375, 0.1575486, 0.8497657, 0.700625])  # at (0,0), (5,7), (13,17), (23,27)


def test_pinned_reference_values():
    half = imresize(PINNED_X, scale=0.5)
    assert half.shape == (3, 4, 2)
    np.testing.assert_allclose(half[:, :, 0], PINNED_HALF_CH0, atol=2e-6)
    up = imresize(PINNED_X, scale=4)
    assert up.shape == (24, 28, 2)
    np.testing.assert_allclose(up[[0, 5, 13, 23], [0, 7, 17, 27], 1], PINNED_X4_CH1, atol=2e-6)


def test_pinned_4x4_to_3x3():
    """The 4x4 ramp resized to 3x3 (values printed by piq 0.8.0)."""
    x = np.arange(16, dtype=np.float64).reshape(4, 4)
    expected = [[0.7506, 2.1004, 3.4503], [6.1501, 7.5000, 8.8499], [11.5497, 12.8996, 14.2494]]
    np.testing.assert_allclose(imresize(x, output_shape=(3, 3)), expected, atol=1e-4)


def _slow_1d(x: np.ndarray, n_out: int, scale: float) -> np.ndarray:
    """MATLAB's definition written out: sum over every input sample in the
    (symmetrically extended) signal of h(u - j), normalised."""
    n = len(x)
    ext = np.pad(x, 64, mode="symmetric")  # np's 'symmetric' repeats the edge
    j = np.arange(-64, n + 64)
    aa = scale if scale < 1 else 1.0
    out = []
    for i in range(n_out):
        u = (i + 0.5) / scale - 0.5
        w = aa * cubic(aa * (u - j))
        out.append((w * ext).sum() / w.sum())
    return np.array(out)


@pytest.mark.parametrize("n_in,n_out", [(3, 12), (5, 2), (2, 1), (7, 3), (11, 44), (9, 4)])
def test_contributions_against_slow_formula(n_in, n_out):
    """Tiny signals, where the padding is wider than the input (piq fails here)."""
    x = np.random.default_rng(n_in * 100 + n_out).random(n_in)
    scale = n_out / n_in
    w, idx = contributions(n_in, n_out, scale)
    assert np.allclose(w.sum(axis=1), 1.0) and idx.min() >= 0 and idx.max() < n_in
    ours = imresize(x[:, None], output_shape=(n_out, 1))[:, 0]
    np.testing.assert_allclose(ours, _slow_1d(x, n_out, scale), atol=1e-12)


def test_torch_and_numpy_paths_agree(photo):
    crop = photo[:90, :130]
    batch = np.stack([crop, crop[::-1, ::-1].copy()])  # (N, H, W, C)
    t = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
    for kw in (dict(scale=0.25), dict(scale=4), dict(output_shape=(77, 50))):
        out = imresize(t, **kw)
        assert out.dtype == torch.float32 and out.dim() == 4
        for k in range(2):
            ref = imresize(batch[k], **kw)
            assert np.abs(out[k].permute(1, 2, 0).numpy() - ref).max() <= 1e-5
    u8 = torch.from_numpy(np.round(batch[0] * 255).astype(np.uint8)).permute(2, 0, 1)  # (C, H, W)
    out_u8 = imresize(u8, scale=1 / 3)
    assert out_u8.dtype == torch.uint8
    ref_u8 = imresize(np.round(batch[0] * 255).astype(np.uint8), scale=1 / 3)
    assert np.abs(out_u8.permute(1, 2, 0).numpy().astype(int) - ref_u8.astype(int)).max() <= 1


def test_torch_gradient_flows():
    x = torch.rand(1, 3, 16, 12, requires_grad=True)
    imresize(x, scale=0.5).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_modcrop_and_downsample_shapes():
    x = np.zeros((37, 53, 3), dtype=np.float32)
    assert modcrop(x, 4).shape == (36, 52, 3)
    assert bicubic_downsample(x, 4).shape == (9, 13, 3)
    t = torch.zeros(2, 3, 37, 53)
    assert tuple(modcrop(t, 3).shape) == (2, 3, 36, 51)
    assert tuple(bicubic_downsample(t, 3).shape) == (2, 3, 12, 17)


def test_bad_arguments():
    x = np.zeros((8, 8, 3))
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x, scale=0.5, output_shape=(4, 4))
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x)
    with pytest.raises(ValueError, match="scale"):
        imresize(x, scale=-1)
    with pytest.raises(ValueError, match="output_shape"):
        imresize(x, output_shape=(4, 0))
    with pytest.raises(ValueError, match="smaller than the factor"):
        modcrop(np.zeros((3, 3, 3)), 4)
    with pytest.raises(TypeError, match="dtype"):
        imresize(np.zeros((4, 4), dtype=np.int32), scale=2)
