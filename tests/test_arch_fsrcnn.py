"""FSRCNN: reference counts and key names (yjn870/FSRCNN-pytorch), the paper's
parameter and complexity figures, output sizes and the Y-channel RGB wrapper."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.color import rgb2ycbcr
from torch.utils.flop_counter import FlopCounterMode

from restore_lib.archs.fsrcnn import (FSRCNN, fsrcnn_complexity, paper_param_count, rgb_to_ycbcr, upscale_rgb,
                                      ycbcr_to_rgb)
from restore_lib.models import build_model, count_parameters

from arch_checks import (build, check_output_sizes, check_param_count, check_pinned_output, check_roundtrip,
                         deterministic_fill, seeded_rand)


@pytest.mark.parametrize("preset", ["default", "x2", "x3"])
def test_reference_counts_at_every_scale(preset):
    model = check_param_count("fsrcnn", 12_809, preset)
    assert len(model.state_dict()) == 23
    assert paper_param_count(model) == 12_464  # the paper's figure: conv/deconv weights only


def test_key_names_and_shapes_match_the_port():
    sd = build_model("fsrcnn", "x3").state_dict()
    keys = list(sd)
    assert keys[0] == "first_part.0.weight" and keys[-1] == "last_part.bias"
    assert sd["first_part.0.weight"].shape == (56, 1, 5, 5)
    assert sd["first_part.1.weight"].shape == (56,)  # PReLU slopes
    assert sd["mid_part.0.weight"].shape == (12, 56, 1, 1)
    assert sd["mid_part.2.weight"].shape == (12, 12, 3, 3)
    assert sd["mid_part.10.weight"].shape == (56, 12, 1, 1)
    assert sd["last_part.weight"].shape == (56, 1, 9, 9)
    assert sd["last_part.bias"].shape == (1,)


def test_fsrcnn_s_matches_the_paper():
    # paper, Tab. 3 / Sec. 4: FSRCNN-s = FSRCNN(32, 5, 1), 3,937 parameters
    assert paper_param_count(build_model("fsrcnn", "small")) == 3_937


def test_complexity_formula_hand_values():
    # (9*4*12^2 + 2*12*56 + 106*56) = 5184 + 1344 + 5936 = 12,464 multiplications per LR pixel
    assert fsrcnn_complexity(56, 12, 4, 3, 1) == 12_464
    assert fsrcnn_complexity(56, 12, 4, 4, 64 * 64) == 12_464 * 4096
    # FSRCNN-s: 9*1*25 + 2*5*32 + 106*32 = 225 + 320 + 3392
    assert fsrcnn_complexity(32, 5, 1, 2, 10) == 39_370
    with pytest.raises(ValueError, match="lr_pixels"):
        fsrcnn_complexity(56, 12, 4, 3, -1)


@pytest.mark.parametrize("scale", [2, 4])
def test_complexity_equals_measured_macs(scale):
    """torch's FLOP counter (conv + transposed conv, biases ignored) / 2 = the formula."""
    model = FSRCNN(scale_factor=scale)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 1, 12, 10))
    assert counter.get_total_flops() // 2 == fsrcnn_complexity(56, 12, 4, scale, 120)


def test_roundtrip_raw_and_wrapped(tmp_path):
    x = torch.rand(1, 1, 9, 7)
    check_roundtrip("fsrcnn", tmp_path, inputs=(x,), wrapper=None)  # the port saves raw state_dicts
    check_roundtrip("fsrcnn", tmp_path, preset="small", inputs=(x,), wrapper="params")


@pytest.mark.parametrize("preset,scale", [("default", 4), ("x2", 2), ("x3", 3), ("small", 4)])
def test_output_is_exactly_scale_times_input(preset, scale):
    model = build("fsrcnn", preset)
    assert model.scale == scale
    check_output_sizes(model, sizes=((7, 9), (13, 17), (1, 2)), scale=scale, in_channels=1, out_channels=1)


def test_weight_init_follows_the_paper():
    model = build("fsrcnn")
    assert model.last_part.weight.std().item() == pytest.approx(0.001, rel=0.1)
    first = model.first_part[0].weight
    assert first.std().item() == pytest.approx((2 / (56 * 25)) ** 0.5, rel=0.1)  # He-normal over fan-out
    assert all(torch.count_nonzero(m.bias) == 0 for m in model.modules() if hasattr(m, "bias") and m.bias is not None)


def test_bad_config_names_the_parameter():
    with pytest.raises(ValueError, match="scale_factor"):
        FSRCNN(scale_factor=0)


# --------------------------------------------------------------------------- colour and the RGB wrapper

def test_bt601_matches_skimage():
    rng = np.random.default_rng(0)
    img = rng.random((6, 5, 3))
    ours = rgb_to_ycbcr(torch.from_numpy(img).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours * 255, rgb2ycbcr(img), atol=1e-6)


def test_port_coefficients_match_its_formula():
    rgb = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    r, g, b = (rgb[0] * 255).unbind(0)
    y = 16.0 + (64.738 * r + 129.057 * g + 25.064 * b) / 256.0
    cb = 128.0 + (-37.945 * r - 74.494 * g + 112.439 * b) / 256.0
    cr = 128.0 + (112.439 * r - 94.154 * g - 18.285 * b) / 256.0
    torch.testing.assert_close(rgb_to_ycbcr(rgb, "port")[0] * 255, torch.stack([y, cb, cr]))


@pytest.mark.parametrize("variant", ["bt601", "port"])
def test_ycbcr_roundtrip(variant):
    rgb = torch.rand(2, 3, 5, 7)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(rgb, variant), variant), rgb, atol=1e-5, rtol=0)


class _BicubicY(torch.nn.Module):
    """Oracle 'model': bicubic upsampling of a one-channel image."""

    scale = 3

    def forward(self, y):
        assert y.shape[1] == 1, "the wrapper must feed the Y channel only"
        return F.interpolate(y, scale_factor=self.scale, mode="bicubic", align_corners=False)


def test_upscale_rgb_plumbing_equals_bicubic_with_a_bicubic_y_model():
    # YCbCr is affine and bicubic is linear, so bicubic Y + bicubic CbCr = bicubic RGB
    lr = 0.1 + 0.8 * torch.rand(2, 3, 7, 9)
    expected = F.interpolate(lr, scale_factor=3, mode="bicubic", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(upscale_rgb(_BicubicY(), lr), expected, atol=1e-5, rtol=0)


def test_upscale_rgb_with_fsrcnn_shape_and_range():
    out = upscale_rgb(build("fsrcnn", "small"), torch.rand(1, 3, 7, 9))
    assert out.shape == (1, 3, 28, 36) and out.min() >= 0 and out.max() <= 1


def test_upscale_rgb_errors():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        upscale_rgb(build("fsrcnn", "small"), torch.rand(1, 1, 7, 9))
    with pytest.raises(ValueError, match="scale"):
        upscale_rgb(torch.nn.Identity(), torch.rand(1, 3, 7, 9))
    with pytest.raises(ValueError, match="variant"):
        rgb_to_ycbcr(torch.rand(1, 3, 2, 2), "jpeg")


def test_count_parameters_is_params_only():
    assert count_parameters(FSRCNN(d=56, s=12, m=4)) - paper_param_count(FSRCNN()) == 173 + 172  # biases + slopes


def test_matches_official_outputs():
    """Pinned output of the port's ``FSRCNN(scale_factor=3)`` with
    ``deterministic_fill`` weights (tests/data/reference_outputs.json); ours
    matched it exactly."""
    model = deterministic_fill(build("fsrcnn", "x3"))
    with torch.no_grad():
        y = model(seeded_rand(1, 1, 9, 11, seed=1))
    check_pinned_output(y, "fsrcnn/x3")
