"""Restormer (restore_lib.archs.restormer): reference counts and key shapes,
an independent closed-form parameter count, checkpoint round trips through a
wrapped file, any input size (reflect padding to x8 and crop), outputs pinned
from the official class, and configuration errors.

Oracles: tests/data/reference_facts.json (counts and shapes measured on the
official ``Restormer`` class) and tests/data/reference_outputs.json (its
outputs for fixed weights and inputs)."""
import numpy as np
import pytest
import torch

from restore_lib.models import build_model, count_parameters

from arch_checks import (build, build_meta, check_key_shapes, check_output_sizes, check_pinned_output,
                         check_roundtrip, deterministic_fill, reference_fact, seeded_rand)

SMALL = dict(dim=16, num_blocks=[1, 1, 1, 2], num_refinement_blocks=1, heads=[1, 1, 2, 2])


def closed_form_params(dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4, heads=(1, 2, 4, 8),
                       ffn_expansion_factor=2.66, with_bias_ln=True):
    """Parameter count from the paper's layer list (bias-free convs), independent of the module code."""
    def block(c, h):
        hidden = int(c * ffn_expansion_factor)
        ln = 2 * c if with_bias_ln else c
        attn = h + 3 * c * c + 3 * c * 9 + c * c                  # temperature, qkv, depthwise, project_out
        ffn = 2 * hidden * c + 2 * hidden * 9 + hidden * c         # project_in, depthwise, project_out
        return 2 * ln + attn + ffn

    c = dim
    n = 3 * c * 9                                                  # patch_embed
    widths = [c, 2 * c, 4 * c, 8 * c]
    for i, (w, k) in enumerate(zip(widths, num_blocks)):
        n += k * block(w, heads[i])
        if i < 3:
            n += w * (w // 2) * 9                                  # downsample conv to w/2, then unshuffle
    for w in (8 * c, 4 * c, 2 * c):
        n += w * 2 * w * 9                                         # upsample conv to 2w, then shuffle
    n += 8 * c * 4 * c + 4 * c * 2 * c                             # reduce_chan_level3, level2
    n += num_blocks[2] * block(4 * c, heads[2]) + num_blocks[1] * block(2 * c, heads[1])
    n += (num_blocks[0] + num_refinement_blocks) * block(2 * c, heads[0])
    return n + 2 * c * 3 * 9                                       # output conv


@pytest.mark.parametrize("preset,ln", [("default", True), ("denoise", False)])
def test_reference_counts_of_every_default_config(preset, ln):
    model = build_meta("restormer", preset)
    fact = reference_fact(f"restormer/{preset}")
    assert count_parameters(model) == fact["params"] == closed_form_params(with_bias_ln=ln)
    if "keys" in fact:
        assert len(model.state_dict()) == fact["keys"]


def test_small_count_closed_form():
    assert count_parameters(build_meta("restormer", "small")) == closed_form_params(**SMALL)


def test_reference_keys_and_shapes():
    sd = build_meta("restormer").state_dict()
    shapes = {k: tuple(v) for k, v in reference_fact("restormer/default/shapes").items() if isinstance(v, list)}
    check_key_shapes(sd, shapes)
    assert list(sd)[0] == "patch_embed.proj.weight" and list(sd)[-1] == "output.weight"
    assert not any(k.endswith(".bias") and "norm" not in k for k in sd)  # bias=False everywhere but the LNs


@pytest.mark.parametrize("wrapper", ["params", None])
def test_roundtrip_small(tmp_path, wrapper):
    check_roundtrip("restormer", tmp_path, preset="small", inputs=(torch.rand(1, 3, 24, 16),), wrapper=wrapper)


def test_any_size_small():
    model = build("restormer", "small")
    assert (model.scale, model.size_multiple) == (1, 8)
    check_output_sizes(model, sizes=((17, 23), (32, 32), (29, 40), (5, 3)))


def test_reflect_padding_like_the_test_scripts():
    """The official test scripts reflect-pad bottom/right to x8, run, and crop."""
    model = deterministic_fill(build("restormer", "small"))
    x = seeded_rand(1, 3, 13, 19, seed=4)
    padded = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (0, 3), (0, 5)), mode="reflect"))
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_features(padded)[..., :13, :19])


def test_matches_official_outputs():
    """Pinned output of the official ``Restormer`` (small config) with
    ``deterministic_fill(amplitude=0.2)`` weights (with +-0.1 the blocks are
    too weak for a swapped activation to show) (tests/data/reference_outputs.json);
    ours matched it exactly."""
    model = deterministic_fill(build("restormer", "small"), amplitude=0.2)
    with torch.no_grad():
        y = model(seeded_rand(2, 3, 16, 24, seed=1))
    check_pinned_output(y, "restormer/small")


def test_dual_pixel_variant():
    """dual_pixel_task: 6 input channels, no input residual, a skip conv from the embedding."""
    model = build("restormer", "small", inp_channels=6, dual_pixel_task=True)
    assert "skip_conv.weight" in model.state_dict()
    check_output_sizes(model, sizes=((16, 24), (13, 9)), in_channels=6)


def test_bad_config_names_the_parameter():
    with pytest.raises(ValueError, match="LayerNorm_type"):
        build_model("restormer", "small", LayerNorm_type="Batch")
