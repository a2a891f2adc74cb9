"""BaselineCNN (restore_lib.archs.baseline, registry name ``baseline_cnn``),
the quickstart's residual CNN: counts of every preset against a closed form,
key names, checkpoint round trips through wrapped files, any input size, the
identity start, and a pinned output.

It is our own design (no paper, no official code), so the oracles are the
closed-form count and the residual maths; the pinned output is a regression
pin produced by this implementation."""
import pytest
import torch
import torch.nn.functional as F

from restore_lib.models import build_model, count_parameters, model_presets

from arch_checks import build, check_output_sizes, check_roundtrip, deterministic_fill, output_summary, seeded_rand


def closed_form(width=32, depth=6, cin=3, cout=3):
    return (cin * width * 9 + width) + (depth - 2) * (width * width * 9 + width) + (width * cout * 9 + cout)


@pytest.mark.parametrize("preset", sorted(model_presets("baseline_cnn")))
def test_counts_and_keys_of_every_preset(preset):
    model = build_model("baseline_cnn", preset)
    cfg = {"width": 32, "depth": 6, **model_presets("baseline_cnn")[preset]}
    assert count_parameters(model) == closed_form(**cfg)
    keys = list(model.state_dict())
    assert len(keys) == 2 * cfg["depth"]
    assert keys[0] == "body.0.weight" and keys[-1] == f"body.{2 * cfg['depth'] - 2}.bias"


def test_default_and_tiny_counts():
    assert count_parameters(build_model("baseline_cnn")) == 38_755
    assert count_parameters(build_model("baseline_cnn", "tiny")) == 5_523


@pytest.mark.parametrize("wrapper", ["params", "model", None])
def test_roundtrip_tiny(tmp_path, wrapper):
    torch.manual_seed(0)
    check_roundtrip("baseline_cnn", tmp_path, preset="tiny", inputs=(torch.rand(1, 3, 16, 16),), wrapper=wrapper)


def test_any_size():
    model = build("baseline_cnn", "tiny")
    assert (model.scale, model.size_multiple) == (1, 1)
    check_output_sizes(model, sizes=((17, 23), (32, 32), (1, 1), (3, 40)))


def test_starts_as_the_identity_and_learns_a_residual():
    model = build("baseline_cnn")
    x = torch.rand(2, 3, 11, 7)
    with torch.no_grad():
        assert torch.equal(model(x), x)
        deterministic_fill(model)
        torch.testing.assert_close(model(x), x + model.body(x))


def test_no_residual_when_channels_differ():
    model = build("baseline_cnn", "tiny", in_channels=1, out_channels=3)
    deterministic_fill(model)
    x = torch.rand(1, 1, 8, 9)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.body(x))


def test_layers_are_3x3_relu():
    """The body written out with F.conv2d and F.relu."""
    model = deterministic_fill(build("baseline_cnn", "tiny"), amplitude=0.3)
    x = seeded_rand(1, 3, 9, 13, seed=1)
    convs = [m for m in model.body if isinstance(m, torch.nn.Conv2d)]
    h = x
    for i, conv in enumerate(convs):
        h = F.conv2d(h, conv.weight, conv.bias, padding=1)
        if i < len(convs) - 1:
            h = F.relu(h)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x + h)


def test_pinned_output():
    """Regression pin produced by this implementation (tiny preset,
    ``deterministic_fill(amplitude=0.3)``): the residual it adds."""
    model = deterministic_fill(build("baseline_cnn", "tiny"), amplitude=0.3)
    x = seeded_rand(1, 3, 9, 13, seed=1)
    with torch.no_grad():
        s = output_summary(model(x) - x)
    want = {"mean": 0.1234803926, "std": 0.5819754083,
            "at": {"0": 0.4645778537, "50": -0.1696411073, "117": 0.0523313284, "175": -0.5194380283,
                   "234": 0.5260873437, "350": 0.0506688356}}
    assert s["mean"] == pytest.approx(want["mean"], abs=1e-5)
    assert s["std"] == pytest.approx(want["std"], abs=1e-5)
    assert s["at"] == pytest.approx(want["at"], abs=1e-5)


def test_bad_depth_names_the_parameter():
    with pytest.raises(ValueError, match="depth"):
        build_model("baseline_cnn", depth=1)
