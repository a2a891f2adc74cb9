import pytest
import torch

from restore_lib.checkpoints import CheckpointError, load_checkpoint
from restore_lib.models import (ConfigError, UnknownModelError, build_model, count_parameters,
                                list_models, MODELS)

from arch_checks import check_output_sizes, check_roundtrip


def test_list_models_is_the_table():
    assert list_models() == sorted(MODELS)
    assert "baseline_cnn" in list_models()


def test_unknown_model_lists_known_names():
    with pytest.raises(UnknownModelError) as e:
        build_model("no_such_net")
    assert "no_such_net" in str(e.value) and "baseline_cnn" in str(e.value)


def test_unknown_config_key_lists_accepted_keys():
    with pytest.raises(ConfigError) as e:
        build_model("baseline_cnn", widht=8)
    msg = str(e.value)
    assert "widht" in msg and "width" in msg


def test_unknown_preset():
    with pytest.raises(ConfigError, match="no preset 'huge'"):
        build_model("baseline_cnn", preset="huge")


def test_restormer_reference_counts():
    assert count_parameters(build_model("restormer")) == 26_126_644
    assert len(build_model("restormer").state_dict()) == 494
    assert count_parameters(build_model("restormer", preset="denoise")) == 26_111_668


def test_restormer_small_any_size(tmp_path):
    check_roundtrip("restormer", tmp_path, preset="small", inputs=(torch.rand(1, 3, 24, 24),))
    check_output_sizes(build_model("restormer", preset="small").eval())


def test_baseline_roundtrip_and_sizes(tmp_path):
    check_roundtrip("baseline_cnn", tmp_path, preset="tiny", inputs=(torch.rand(1, 3, 16, 16),))
    check_output_sizes(build_model("baseline_cnn", preset="tiny").eval())


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
