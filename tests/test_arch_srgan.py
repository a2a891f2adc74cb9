"""SRResNet and the SRGAN discriminator: the tutorial's counts and key names
(sgrvinod/a-PyTorch-Tutorial-to-Super-Resolution), the [0,1] range wrapping,
output sizes and checkpoint handling."""
import pytest
import torch
from torchvision.transforms import Normalize

from restore_lib.archs.srgan import Discriminator, SRResNet
from restore_lib.checkpoints import CheckpointError, load_checkpoint
from restore_lib.models import build_model

from arch_checks import (build, check_output_sizes, check_param_count, check_pinned_output, check_roundtrip,
                         deterministic_fill, seeded_rand)

IMAGENET = Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_srresnet_reference_counts_and_keys():
    model = check_param_count("srresnet", 1_549_462)
    sd = model.state_dict()
    assert len(sd) == 258
    keys = list(sd)
    assert keys[0] == "conv_block1.conv_block.0.weight" and keys[-1] == "conv_block3.conv_block.0.bias"
    assert sd["conv_block1.conv_block.0.weight"].shape == (64, 3, 9, 9)
    assert sd["conv_block1.conv_block.1.weight"].shape == (1,)  # one PReLU slope
    assert sd["residual_blocks.15.conv_block2.conv_block.1.running_var"].shape == (64,)
    assert sd["subpixel_convolutional_blocks.1.conv.weight"].shape == (256, 64, 3, 3)
    assert sd["conv_block3.conv_block.0.weight"].shape == (3, 64, 9, 9)


def test_discriminator_reference_counts_and_keys():
    model = check_param_count("srgan_discriminator", 23_565_505)
    sd = model.state_dict()
    assert len(sd) == 55
    assert list(sd)[0] == "conv_blocks.0.conv_block.0.weight" and list(sd)[-1] == "fc2.bias"
    assert "conv_blocks.0.conv_block.1.weight" not in sd  # no BN in the first block
    widths = [sd[f"conv_blocks.{i}.conv_block.0.weight"].shape[0] for i in range(8)]
    assert widths == [64, 64, 128, 128, 256, 256, 512, 512]
    assert sd["fc1.weight"].shape == (1024, 512 * 6 * 6)


@pytest.mark.parametrize("scale,n_up", [(2, 1), (4, 2), (8, 3)])
def test_scaling_factor_sets_pixel_shuffle_steps(scale, n_up):
    model = SRResNet(n_channels=8, n_blocks=1, scaling_factor=scale)
    assert model.scale == scale and len(model.subpixel_convolutional_blocks) == n_up


def test_bad_scaling_factor_names_the_parameter():
    with pytest.raises(ValueError, match="scaling_factor"):
        SRResNet(scaling_factor=3)


def test_range_conversion_wraps_the_tutorial_network():
    """forward([0,1]) = (tutorial_net(ImageNet-normalised) + 1) / 2, in [0, 1]."""
    model = build("srresnet", "small")
    for p in model.parameters():  # non-trivial weights so that tanh is not ~0
        torch.nn.init.normal_(p, 0.0, 0.2)
    x = torch.rand(2, 3, 5, 6)
    with torch.no_grad():
        out = model(x)
        expected = (model.forward_tutorial(IMAGENET(x)) + 1) / 2
    torch.testing.assert_close(out, expected)
    assert out.min() >= 0 and out.max() <= 1 and out.std() > 0.05


def test_discriminator_normalises_its_input():
    model = build("srgan_discriminator", "small")
    x = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        feats = model.adaptive_pool(model.conv_blocks(IMAGENET(x))).flatten(1)
        expected = model.fc2(model.leaky_relu(model.fc1(feats)))
        torch.testing.assert_close(model(x), expected)


def test_discriminator_logit_shape_96():
    model = build("srgan_discriminator")
    with torch.no_grad():
        assert model(torch.rand(2, 3, 96, 96)).shape == (2, 1)


@pytest.mark.parametrize("size", [(64, 80), (97, 61)])
def test_discriminator_any_size_small(size):
    with torch.no_grad():
        assert build("srgan_discriminator", "small")(torch.rand(1, 3, *size)).shape == (1, 1)


def test_srresnet_output_sizes_small_odd_inputs():
    check_output_sizes(build("srresnet", "small"), sizes=((7, 9), (13, 17)), scale=4)


def test_srresnet_default_tiny_input():
    check_output_sizes(build("srresnet"), sizes=((3, 5),), scale=4)


def test_roundtrips(tmp_path):
    check_roundtrip("srresnet", tmp_path, preset="small", inputs=(torch.rand(1, 3, 7, 9),))
    check_roundtrip("srgan_discriminator", tmp_path, preset="small", inputs=(torch.rand(1, 3, 48, 48),),
                    wrapper="model")


def test_generator_net_prefix_is_stripped(tmp_path):
    """The tutorial's SRGAN Generator wraps SRResNet as ``net``."""
    src = build("srresnet", "small", seed=3)
    torch.save({"state_dict": {f"net.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "g.pth")
    dst = build("srresnet", "small", seed=4)
    report = load_checkpoint(dst, tmp_path / "g.pth")
    assert report.stripped_prefixes == ["net."]
    for k, v in dst.state_dict().items():
        assert torch.equal(v, src.state_dict()[k])


def test_pickled_module_checkpoint_is_refused(tmp_path):
    """The tutorial saves whole modules; they must be re-saved as state_dicts."""
    torch.save({"model": build_model("srresnet", "small")}, tmp_path / "checkpoint_srresnet.pth.tar")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(build_model("srresnet", "small"), tmp_path / "checkpoint_srresnet.pth.tar")


def test_small_presets_are_smaller():
    assert isinstance(build_model("srresnet", "small"), SRResNet)
    assert isinstance(build_model("srgan_discriminator", "small"), Discriminator)
    check_param_count("srresnet", 173_386, "small")
    check_param_count("srgan_discriminator", 367_665, "small")


def test_srresnet_matches_official_outputs():
    """Pinned output of the tutorial's ``SRResNet`` (small config, eval,
    ``deterministic_fill(parameters_only=True)``: BN statistics stay 0/1) on an
    ImageNet-normalised input, mapped back to [0, 1]
    (tests/data/reference_outputs.json); ours matched it exactly."""
    model = deterministic_fill(build("srresnet", "small"), parameters_only=True)
    with torch.no_grad():
        y = model(seeded_rand(1, 3, 7, 9, seed=1))
    check_pinned_output(y, "srresnet/small")


def test_discriminator_matches_official_outputs():
    """Pinned logits of the tutorial's ``Discriminator`` (small widths, fc_size
    1024: the tutorial's ``fc2`` is Linear(1024, 1) whatever fc_size), same
    fill, on an ImageNet-normalised input (tests/data/reference_outputs.json);
    ours matched it exactly."""
    model = deterministic_fill(build("srgan_discriminator", "small", fc_size=1024), parameters_only=True)
    with torch.no_grad():
        y = model(seeded_rand(2, 3, 40, 48, seed=1))
    check_pinned_output(y, "srgan_discriminator/small_fc1024")
