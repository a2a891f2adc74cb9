"""Seeded degradations: determinism, ranges, kernels, and physical checks
against independent oracles (scipy convolution, noise statistics)."""
import numpy as np
import pytest
from scipy import ndimage

from restore_lib.data import degradations as D
from restore_lib.data.imresize import bicubic_downsample


@pytest.fixture(scope="module")
def img() -> np.ndarray:
    import skimage.data
    return np.ascontiguousarray(skimage.data.astronaut()[::4, ::4][:120]).astype(np.float32) / 255.0  # 120x128


RANDOM_TASKS = [t for t in D.TASKS if t not in D.DETERMINISTIC_TASKS]


def test_task_table_names():
    assert set(D.TASKS) == {"rain_light", "rain_heavy", "snow", "motion_blur", "gopro_blur", "defocus",
                            "noise15", "noise25", "noise50", "lowlight", "sr_x4"}
    assert list(D.DEGRADATIONS) == list(D.TASKS)


@pytest.mark.parametrize("task", D.TASKS)
def test_deterministic_per_seed_and_valid_output(img, task):
    a = D.degrade(task, img, 7)
    b = D.degrade(task, img, np.random.SeedSequence(7))
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0 and np.isfinite(a).all()
    expected = (30, 32, 3) if task == "sr_x4" else img.shape
    assert a.shape == expected
    assert not np.array_equal(img, D.degrade(task, img.copy(), 7)) or task == "sr_x4"
    np.testing.assert_array_equal(img, img.copy())  # input not modified


@pytest.mark.parametrize("task", RANDOM_TASKS)
def test_different_seeds_differ(img, task):
    assert not np.array_equal(D.degrade(task, img, 1), D.degrade(task, img, 2))


def test_sr_x4_is_mod_cropped_matlab_bicubic():
    x = np.random.default_rng(0).random((37, 53, 3), dtype=np.float32)
    y = D.degrade("sr_x4", x, 0)
    assert y.shape == (9, 13, 3)  # (36, 52) / 4
    np.testing.assert_array_equal(y, np.clip(bicubic_downsample(x, 4), 0, 1))
    assert np.array_equal(y, D.degrade("sr_x4", x, 123))


def test_unknown_task_lists_tasks(img):
    with pytest.raises(D.UnknownTaskError) as e:
        D.degrade("derain", img, 0)
    assert "derain" in str(e.value) and "rain_light" in str(e.value) and "sr_x4" in str(e.value)


def test_bad_inputs(img):
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        D.snow(img[:, :, 0], 0)
    with pytest.raises(TypeError, match="float"):
        D.snow((img * 255).astype(np.uint8), 0)
    with pytest.raises(TypeError, match="rng"):
        D.degrade("snow", img, "seed")
    with pytest.raises(ValueError, match="odd"):
        D.gopro_blur(img, 0, n_frames=8)
    with pytest.raises(ValueError, match="quantize"):
        D.gaussian_noise(img, 0, quantize=True)


# ------------------------------------------------------------------ kernels
def _kernels():
    rng = np.random.default_rng(3)
    x = np.zeros((40, 40, 3), dtype=np.float32)
    yield "line", D.line_kernel(17.3, 33.0)
    yield "disk", D.disk_kernel(4.6)
    yield "trajectory", D.trajectory_kernel(D.random_trajectory(rng, max_len=25.0), 0.5)
    yield "motion_traj", D.motion_blur(x, rng, max_len=20.0)[1]
    yield "motion_linear", D.motion_blur(x, rng, kind="linear")[1]
    yield "gopro", D.gopro_blur(x, rng)[1]
    yield "defocus_gauss", D.defocus(x, rng, gaussian_sigma=0.5)[1]


@pytest.mark.parametrize("name,k", list(_kernels()), ids=[n for n, _ in _kernels()])
def test_kernels_sum_to_one_non_negative_odd(name, k):
    assert k.ndim == 2 and k.shape[0] % 2 == 1 and k.shape[1] % 2 == 1
    assert k.min() >= 0.0
    assert abs(k.sum() - 1.0) < 1e-9


def test_line_kernel_geometry():
    h = D.line_kernel(21, 0.0)
    c = h.shape[0] // 2
    assert np.allclose(h.sum(axis=1)[c], 1.0)  # horizontal: all mass on the centre row
    v = D.line_kernel(21, 90.0)
    assert np.allclose(v.sum(axis=0)[c], 1.0)  # vertical: on the centre column
    # spread along the line: a uniform segment of length L has variance L^2/12;
    # bilinear splatting adds E[u(1-u)] = 1/6 for uniformly distributed offsets
    xs = np.arange(h.shape[1]) - c
    var = (h.sum(axis=0) * xs ** 2).sum()
    assert abs(var / (21 ** 2 / 12 + 1 / 6) - 1) < 0.03


def test_disk_kernel_geometry():
    k = D.disk_kernel(5.0)
    assert k.shape == (11, 11)
    assert np.allclose(k, k.T) and np.allclose(k, k[::-1]) and np.allclose(k, k[:, ::-1])
    assert k[5, 5] == k.max() and k[0, 0] == 0.0
    # the unnormalised kernel integrates to the disk area pi r^2 (up to supersampling)
    area = 1.0 / k[5, 5]
    assert abs(area - np.pi * 25) / (np.pi * 25) < 0.02


def test_trajectory_steps_have_fixed_length():
    traj = D.random_trajectory(0, iters=500, max_len=30.0)
    steps = np.abs(np.diff(traj))
    assert traj[0] == 0 and np.allclose(steps, 30.0 / 499)


def test_convolve_image_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.random((30, 41, 3)).astype(np.float32)
    k = rng.random((7, 5))
    k /= k.sum()
    ours = D.convolve_image(x, k)
    # scipy 'reflect' = symmetric padding with the edge repeated, like ours
    ref = np.stack([ndimage.convolve(x[:, :, c].astype(np.float64), k, mode="reflect") for c in range(3)], -1)
    assert np.abs(ours - ref).max() < 1e-5


def test_gopro_without_rotation_equals_its_kernel(img):
    """Averaging bilinearly shifted copies is convolution with the splatted
    shifts (away from the borders)."""
    y, k = D.gopro_blur(img, 5, rotation=0.0, length=9.0, n_frames=9)
    ref = np.clip(D.convolve_image(img, k), 0, 1)
    m = k.shape[0] // 2 + 2
    assert np.abs(y[m:-m, m:-m] - ref[m:-m, m:-m]).max() < 1e-5


def test_gopro_gamma_is_power_mean(img):
    plain, _ = D.gopro_blur(img, 11, gamma=False)
    gam, _ = D.gopro_blur(img, 11, gamma=True)
    assert (gam >= plain - 1e-5).all() and gam.mean() > plain.mean()  # power-mean inequality


# ------------------------------------------------------------ statistics
@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_noise_std_unclipped_convention(sigma):
    grey = np.full((256, 256, 3), 0.5, dtype=np.float32)
    y = D.gaussian_noise(grey, 0, sigma=sigma)  # default: unclipped float
    n = (y - grey).astype(np.float64)
    assert abs(n.std() - sigma / 255) < 0.01 * sigma / 255
    assert abs(n.mean()) < 0.02 * sigma / 255
    if sigma == 50:
        assert y.min() < 0 or y.max() > 1  # values are not clipped


def test_noise_tasks_are_clipped_8bit(img):
    y = D.degrade("noise50", img, 0)
    assert y.min() >= 0 and y.max() <= 1
    assert np.allclose(y * 255, np.round(y * 255), atol=1e-4)


def test_low_light_darker_and_quantised(img):
    y = D.degrade("lowlight", img, 0)
    assert y.mean() < 0.6 * img.mean()
    assert np.allclose(y * 255, np.round(y * 255), atol=1e-4)


@pytest.mark.parametrize("task", ["rain_light", "rain_heavy", "snow"])
def test_rain_and_snow_brighten(img, task):
    for seed in range(3):
        assert D.degrade(task, img, seed).mean() > img.mean() + 0.005


def test_heavy_rain_heavier_than_light(img):
    assert D.degrade("rain_heavy", img, 0).mean() > D.degrade("rain_light", img, 0).mean()


def _high_freq_energy(x: np.ndarray) -> float:
    g = x.mean(axis=2).astype(np.float64)
    return float((ndimage.laplace(g, mode="reflect")[4:-4, 4:-4] ** 2).mean())


@pytest.mark.parametrize("task", ["motion_blur", "gopro_blur", "defocus"])
def test_blur_reduces_high_frequencies(img, task):
    for seed in range(3):
        assert _high_freq_energy(D.degrade(task, img, seed)) < 0.7 * _high_freq_energy(img)
