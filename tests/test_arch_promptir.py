"""PromptIR (restore_lib.archs.promptir): reference counts and key shapes,
outputs pinned from the reference code, checkpoint loading (incl. the
Lightning ``net.`` layout), any-size forward on the small preset."""
import pytest
import torch

from restore_lib.archs.promptir import PromptGenBlock
from restore_lib.checkpoints import CheckpointError, load_checkpoint
from restore_lib.models import build_model, count_parameters

from arch_checks import (build, check_key_shapes, check_output_sizes, check_param_count, check_roundtrip,
                         deterministic_fill, reference_fact)

DEAD = ("chnl_reduce1", "chnl_reduce2", "chnl_reduce3",
        "reduce_noise_channel_1", "reduce_noise_channel_2", "reduce_noise_channel_3")


@pytest.fixture(scope="module")
def full():
    return build("promptir")


def test_default_counts_and_reference_keys(full):
    sd = full.state_dict()
    fact = reference_fact("promptir/default")  # measured on the reference PromptIR(decoder=True)
    assert (count_parameters(full), len(sd)) == (fact["params"], fact["keys"]) == (35_592_263, 548)
    dead = sum(v.numel() for k, v in sd.items() if k.split(".")[0] in DEAD)
    assert dead == fact["dead_params"] == 215_296
    assert count_parameters(full) - dead == fact["effective_params"]
    shapes = {k: tuple(v) for k, v in reference_fact("promptir/default/shapes").items() if isinstance(v, list)}
    check_key_shapes(sd, shapes)
    # more keys of our module (names of the reference class, so its checkpoints load strictly)
    expected = {
        "chnl_reduce3.weight": (256, 320, 1, 1),
        "reduce_noise_channel_3.weight": (192, 448, 1, 1),
        "noise_level3.attn.temperature": (4, 1, 1),
        "noise_level3.norm1.body.weight": (704,),
        "reduce_noise_level2.weight": (192, 320, 1, 1),
        "up4_3.body.0.weight": (384, 192, 3, 3),
        "reduce_chan_level3.weight": (192, 288, 1, 1),
    }
    check_key_shapes(sd, expected)
    # the three prompt generation blocks: the rounded reference figure, then our exact count
    prompt = sum(v.numel() for k, v in sd.items() if k.startswith("prompt"))
    assert round(prompt / 1e6, 2) == fact["prompt_blocks_params_M"]
    assert prompt == 3_484_975


def test_matches_reference_outputs(full):
    """Values produced by va1shn9v/PromptIR net/model.py (PromptIR(decoder=True),
    einops 0.8.2) loaded with ``deterministic_fill`` weights, on the input below;
    our model differed from it by at most 2.6e-6."""
    model = deterministic_fill(full)
    x = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    close = dict(atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(y[0, :, 0, 0], torch.tensor([1.3597041, -0.2340325, 0.5615140]), **close)
    torch.testing.assert_close(y[1, :, 15, 23], torch.tensor([0.2141532, 0.1469815, 0.3148582]), **close)
    torch.testing.assert_close(y[0, :, 7, 11], torch.tensor([1.5080403, 1.3720779, 0.1017205]), **close)
    assert y.mean().item() == pytest.approx(0.4265931, abs=1e-5)
    assert y.std().item() == pytest.approx(0.9956719, abs=1e-5)


def test_lightning_checkpoint_loads(full, tmp_path):
    """A reference Lightning .ckpt: module attribute ``net`` -> keys ``net.*``
    under ``state_dict``, next to Lightning's bookkeeping."""
    src = deterministic_fill(full, seed=3)
    ckpt = {"epoch": 119, "global_step": 1000, "pytorch-lightning_version": "2.0.0",
            "state_dict": {"net." + k: v for k, v in src.state_dict().items()},
            "optimizer_states": [{}], "lr_schedulers": [], "hyper_parameters": {}}
    torch.save(ckpt, tmp_path / "model.ckpt")
    dst = build("promptir", legacy_dims=None)  # wrong target: the dead tensors are missing
    with pytest.raises(CheckpointError, match="unexpected keys.*chnl_reduce1"):
        load_checkpoint(dst, tmp_path / "model.ckpt")
    dst = build("promptir_csa", "small")
    with pytest.raises(CheckpointError, match="model.ckpt"):
        load_checkpoint(dst, tmp_path / "model.ckpt")
    dst = build("promptir", seed=5)
    report = load_checkpoint(dst, tmp_path / "model.ckpt")
    assert report.wrapper_key == "state_dict" and report.stripped_prefixes == ["net."]
    assert report.n_tensors == 548
    ref = src.state_dict()
    for k, v in dst.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_small_roundtrip_and_sizes(tmp_path):
    check_roundtrip("promptir", tmp_path, preset="small", inputs=(torch.rand(1, 3, 24, 16),))
    check_output_sizes(build("promptir", "small"), sizes=((17, 23), (29, 40), (9, 5)))


def test_no_prompt_variant_is_restormer_plus_dead_tensors(tmp_path):
    """decoder=False = Restormer's U-Net (same keys, same outputs) + 6 unused convs."""
    check_param_count("promptir", 26_126_644 + 215_296, preset="no_prompt")
    small = dict(dim=16, num_blocks=[1, 1, 1, 2], num_refinement_blocks=1, heads=[1, 1, 2, 2])
    restormer = build("restormer", seed=0, **small)
    ours = build("promptir", "small", seed=1, decoder=False)
    missing, unexpected = ours.load_state_dict(restormer.state_dict(), strict=False)
    assert not unexpected and {k.split(".")[0] for k in missing} == set(DEAD)
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), restormer(x))


def test_prompts_change_the_output_and_batch_items_are_independent():
    model = deterministic_fill(build("promptir", "small"))
    x = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        y = model(x)
        torch.testing.assert_close(y[1:], model(x[1:]), atol=1e-5, rtol=1e-5)
        model.prompt2.prompt_param.mul_(2)
        assert not torch.allclose(y, model(x), atol=1e-3)


def test_prompt_gen_block_against_explicit_mix():
    """Convex mix of the bank with softmax(linear(GAP)) weights, bilinear resize
    to any feature size, 3x3 conv; written out with a loop over prompts."""
    torch.manual_seed(0)
    block = PromptGenBlock(prompt_dim=6, prompt_len=3, prompt_size=8, lin_dim=10).eval()
    feat = torch.randn(2, 10, 5, 7)
    with torch.no_grad():
        w = torch.softmax(feat.mean((2, 3)) @ block.linear_layer.weight.T + block.linear_layer.bias, dim=1)
        for i in range(2):
            mix = sum(w[i, l] * block.prompt_param[0, l] for l in range(3))
            up = torch.nn.functional.interpolate(mix[None], size=(5, 7), mode="bilinear", align_corners=False)
            expect = torch.nn.functional.conv2d(up, block.conv3x3.weight, padding=1)
            torch.testing.assert_close(block(feat)[i:i + 1], expect, atol=1e-5, rtol=1e-5)


def test_bad_config_names_the_parameter():
    with pytest.raises(ValueError, match="prompt_dims"):
        build_model("promptir", "small", prompt_dims=[16, 32])
    with pytest.raises(ValueError, match="LayerNorm_type"):
        build_model("promptir", "small", LayerNorm_type="Batch")
