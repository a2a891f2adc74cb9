"""PSNR/SSIM against scikit-image called with matching arguments (the oracle)."""
import math

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from restore_lib.metrics import MetricSpec, psnr, quantize, rgb_to_y, ssim


def _pair_random(seed=0, h=40, w=53):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(2, 3, h, w, generator=g, dtype=torch.float64)
    p = (t + 0.1 * torch.randn(2, 3, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
    return p, t


def _pair_real():
    img = torch.from_numpy(skdata.astronaut()[100:228, 150:278].astype(np.float64) / 255).permute(2, 0, 1)
    g = torch.Generator().manual_seed(3)
    noisy = (img + 0.05 * torch.randn(img.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return noisy[None], img[None]


def _np(x):
    return x.permute(1, 2, 0).numpy()


def _y_np(x):
    # independent conversion written out in numpy (BT.601 studio swing, [0,1] -> [0,1])
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    return (16.0 + 65.481 * r + 128.553 * g + 24.966 * b) / 255.0


@pytest.mark.parametrize("make", [_pair_random, _pair_real])
def test_psnr_matches_skimage_per_image_mean(make):
    p, t = make()
    expected = np.mean([peak_signal_noise_ratio(_np(t[i]), _np(p[i]), data_range=1.0) for i in range(len(p))])
    assert psnr(p, t) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("make", [_pair_random, _pair_real])
def test_ssim_gaussian_matches_skimage(make):
    p, t = make()
    expected = np.mean([structural_similarity(_np(t[i]), _np(p[i]), data_range=1.0, channel_axis=-1,
                                              gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                        for i in range(len(p))])
    assert ssim(p, t) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("make", [_pair_random, _pair_real])
def test_ssim_skimage_default_variant(make):
    p, t = make()
    expected = np.mean([structural_similarity(_np(t[i]), _np(p[i]), data_range=1.0, channel_axis=-1)
                        for i in range(len(p))])
    assert ssim(p, t, variant="skimage_default") == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("make", [_pair_random, _pair_real])
def test_y_channel_with_crop_matches_skimage(make):
    p, t = make()
    c = 4
    yp = [_y_np(_np(p[i]))[c:-c, c:-c] for i in range(len(p))]
    yt = [_y_np(_np(t[i]))[c:-c, c:-c] for i in range(len(p))]
    exp_psnr = np.mean([peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(yt, yp)])
    exp_ssim = np.mean([structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False) for a, b in zip(yt, yp)])
    assert psnr(p, t, crop_border=c, y_channel=True) == pytest.approx(exp_psnr, abs=1e-6)
    assert ssim(p, t, crop_border=c, y_channel=True) == pytest.approx(exp_ssim, abs=1e-6)


def test_data_range_255_equals_unit_range():
    p, t = _pair_random()
    assert psnr(p * 255, t * 255, data_range=255) == pytest.approx(psnr(p, t), abs=1e-9)
    assert ssim(p * 255, t * 255, data_range=255) == pytest.approx(ssim(p, t), abs=1e-9)
    assert psnr(p * 255, t * 255, data_range=255, y_channel=True) == pytest.approx(psnr(p, t, y_channel=True),
                                                                                  abs=1e-9)


def test_mean_of_per_image_values_not_pooled_mse():
    t = torch.zeros(2, 3, 16, 16, dtype=torch.float64)
    p = t.clone()
    p[0] += 0.01
    p[1] += 0.1
    assert psnr(p, t) == pytest.approx((40.0 + 20.0) / 2, abs=1e-9)
    assert psnr(p, t, reduction="none").tolist() == pytest.approx([40.0, 20.0])


def test_chw_input_and_float32():
    p, t = _pair_random()
    assert psnr(p[0].float(), t[0].float()) == pytest.approx(psnr(p[:1], t[:1]), abs=1e-4)


def test_rgb_to_y_white_black():
    assert rgb_to_y(torch.ones(3, 1, 1)).item() == pytest.approx(235 / 255, abs=1e-6)
    assert rgb_to_y(torch.zeros(3, 1, 1)).item() == pytest.approx(16 / 255)


def test_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="unknown SSIM variant"):
        ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), variant="matlab")
    with pytest.raises(ValueError, match="crop_border"):
        psnr(torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8), crop_border=4)


def test_identical_images_are_infinite_psnr_and_unit_ssim():
    p, _ = _pair_random()
    assert math.isinf(psnr(p, p))
    assert ssim(p, p) == pytest.approx(1.0)


def test_metric_spec_quantizes_and_describes():
    p, t = _pair_real()
    spec = MetricSpec(color_space="y", crop_border=4)
    out = spec.evaluate(p, t)
    assert out["psnr"] == pytest.approx(psnr(quantize(p), quantize(t), crop_border=4, y_channel=True))
    assert "Y (BT.601)" in spec.describe() and "crop border 4" in spec.describe()
    with pytest.raises(ValueError):
        MetricSpec(color_space="lab")


# ---------------------------------------------------------------- wrong scale is refused, never guessed
def _pair():
    g = torch.Generator().manual_seed(0)
    t = torch.rand(1, 3, 24, 24, generator=g)
    return (t + 0.05 * torch.randn(t.shape, generator=g)).clamp(0, 1), t


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_uint8_images_need_their_data_range(metric):
    p, t = _pair()
    p8, t8 = (p * 255).round().to(torch.uint8), (t * 255).round().to(torch.uint8)
    with pytest.raises(ValueError, match="pred is uint8.*data_range=255"):
        metric(p8, t8)
    # with the right range the integer images score like their float versions
    assert metric(p8, t8, data_range=255) == pytest.approx(
        metric(p8.double() / 255, t8.double() / 255), abs=1e-9)


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_float_images_in_0_255_with_unit_range_are_refused(metric):
    p, t = _pair()
    with pytest.raises(ValueError, match=r"pred has values in .*looks like 0-255"):
        metric(p * 255, t)
    with pytest.raises(ValueError, match=r"target has values in"):
        metric(p, t * 255)
    # a restored output that overshoots a little is scored as it is
    assert math.isfinite(metric(p * 1.1, t))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_inputs_are_refused(bad):
    p, t = _pair()
    p[0, 0, 3, 3] = bad
    with pytest.raises(ValueError, match="pred contains (NaN|inf)"):
        psnr(p, t)
    with pytest.raises(ValueError, match="target contains"):
        ssim(t, p)


@pytest.mark.parametrize("crop", [-1, 4.7, True, "4"])
def test_crop_border_must_be_a_whole_number_of_pixels(crop):
    p, t = _pair()
    with pytest.raises(ValueError, match="crop_border must be a whole number"):
        psnr(p, t, crop_border=crop)
    with pytest.raises(ValueError, match="crop_border must be a whole number"):
        MetricSpec(crop_border=crop)
    assert psnr(p, t, crop_border=4.0) == psnr(p, t, crop_border=4)


@pytest.mark.parametrize("data_range", [0, -1.0, float("nan"), "1"])
def test_data_range_must_be_positive(data_range):
    p, t = _pair()
    with pytest.raises(ValueError, match="data_range must be a positive number"):
        psnr(p, t, data_range=data_range)


def test_quantize_refuses_integer_images_instead_of_clamping_them():
    x = torch.full((3, 4, 4), 200, dtype=torch.uint8)
    with pytest.raises(TypeError, match="already quantized"):
        quantize(x)
    with pytest.raises(TypeError, match="already quantized"):
        MetricSpec().evaluate(x, x)
