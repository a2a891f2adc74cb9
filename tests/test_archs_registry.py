import pytest
import torch

from restore_lib.checkpoints import CheckpointError, load_checkpoint
from restore_lib.models import ConfigError, UnknownModelError, build_model, list_models, model_presets

#: how each model is called when it is not ``model(image) -> image`` (the documented APIs)
SPECIAL_CALLS = {
    "diffir_s1": lambda m, x: m(x, torch.rand(x.shape[0], 3, x.shape[2] * m.scale, x.shape[3] * m.scale))[0],
    "diffir_s2": lambda m, x: m(x, generator=0),
    "ptgrm": lambda m, x: m(x, x.flip(-1), torch.randn(x.shape[0], m.prior_dim)),
}
IN_CHANNELS = {"fsrcnn": 1}  # the Y channel


def cheapest_preset(name):
    presets = model_presets(name)
    return next((p for p in ("tiny", "small") if p in presets), "default")


@pytest.mark.parametrize("name", list_models())
def test_every_listed_model_builds_and_runs(name):
    """Every listed name builds with its documented attributes and maps an odd,
    non-square image to scale x its size (the discriminator to one logit)."""
    presets = model_presets(name)
    assert "default" in presets
    torch.manual_seed(0)
    model = build_model(name, cheapest_preset(name)).eval()
    assert isinstance(model.scale, int) and model.scale >= 1
    assert isinstance(model.size_multiple, int) and model.size_multiple >= 1
    assert "default" in type(model).PRESETS
    c = IN_CHANNELS.get(name, 3)
    h, w = (48, 40) if name == "srgan_discriminator" else (13, 10)
    x = torch.rand(1, c, h, w)
    with torch.no_grad():
        y = SPECIAL_CALLS.get(name, lambda m, t: m(t))(model, x)
    want = (1, 1) if name == "srgan_discriminator" else (1, c, h * model.scale, w * model.scale)
    assert tuple(y.shape) == want and torch.isfinite(y).all()


def test_list_models_is_sorted_and_unique():
    names = list_models()
    assert names == sorted(set(names)) and "baseline_cnn" in names


def test_unknown_model_lists_known_names():
    with pytest.raises(UnknownModelError) as e:
        build_model("no_such_net")
    assert "no_such_net" in str(e.value) and all(n in str(e.value) for n in list_models())
    with pytest.raises(UnknownModelError, match="no_such_net"):
        model_presets("no_such_net")


def test_unknown_config_key_lists_accepted_keys():
    with pytest.raises(ConfigError) as e:
        build_model("baseline_cnn", widht=8)
    msg = str(e.value)
    assert "widht" in msg and "width" in msg


def test_unknown_preset():
    with pytest.raises(ConfigError, match="no preset 'huge'"):
        build_model("baseline_cnn", preset="huge")


@pytest.mark.parametrize("wrap,prefix", [("params", ""), ("params_ema", ""), ("state_dict", "net."),
                                         ("model_state_dict", "module."), (None, "module.")])
def test_load_checkpoint_unwraps(tmp_path, wrap, prefix):
    src = build_model("baseline_cnn", preset="tiny")
    for p in src.parameters():
        torch.nn.init.normal_(p)
    sd = {prefix + k: v for k, v in src.state_dict().items()}
    torch.save({wrap: sd} if wrap else sd, tmp_path / "c.pth")
    dst = build_model("baseline_cnn", preset="tiny")
    report = load_checkpoint(dst, tmp_path / "c.pth")
    assert report.wrapper_key == wrap
    assert report.stripped_prefixes == ([prefix] if prefix else [])
    for k, v in dst.state_dict().items():
        assert torch.equal(v, src.state_dict()[k])


def test_load_checkpoint_names_missing_and_unexpected(tmp_path):
    sd = build_model("baseline_cnn", preset="tiny").state_dict()
    sd.pop("body.0.weight")
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(build_model("baseline_cnn", preset="tiny"), tmp_path / "bad.pth")
    msg = str(e.value)
    assert "bad.pth" in msg and "body.0.weight" in msg and "extra.weight" in msg


def test_load_checkpoint_shape_mismatch(tmp_path):
    torch.save(build_model("baseline_cnn", width=8, depth=4).state_dict(), tmp_path / "w8.pth")
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_checkpoint(build_model("baseline_cnn", preset="tiny"), tmp_path / "w8.pth")


def test_load_checkpoint_refuses_pickled_modules(tmp_path):
    torch.save(build_model("baseline_cnn", preset="tiny"), tmp_path / "module.pth")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(build_model("baseline_cnn", preset="tiny"), tmp_path / "module.pth")


def test_load_checkpoint_missing_and_corrupt_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(build_model("baseline_cnn"), tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_checkpoint(build_model("baseline_cnn"), tmp_path / "junk.pth")
