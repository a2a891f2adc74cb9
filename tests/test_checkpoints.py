"""Checkpoint loading that never accepts a wrong file silently: sub-module
extraction with a hint, the trainer/Stripformer wrappers, the SR factor a file
declares, honest counts for partial loads, safetensors errors that name the file."""
import pytest
import torch

from restore_lib.checkpoints import CheckpointError, checkpoint_scale, load_checkpoint
from restore_lib.models import build_model


def _tiny():
    torch.manual_seed(0)
    return build_model("baseline_cnn", "tiny")


def test_a_sub_module_of_a_larger_release_is_named_then_loaded_with_prefix(tmp_path):
    src = _tiny()
    whole = {f"refinement11.{k}": v for k, v in src.state_dict().items()}
    whole.update({f"encoder.{i}.weight": torch.randn(4, 4) for i in range(20)})     # the rest of the network
    path = tmp_path / "sid_full.pth"
    torch.save({"state_dict": whole}, path)
    dst = build_model("baseline_cnn", "tiny")
    with pytest.raises(CheckpointError, match=r"sid_full\.pth: checkpoint does not match.*load it with "
                                              r"prefix='refinement11\.'"):
        load_checkpoint(dst, path)
    report = load_checkpoint(dst, path, prefix="refinement11.")
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    n = len(src.state_dict())
    assert (report.n_tensors, report.n_model_tensors, report.n_unused) == (n, n, 20)
    assert f"loaded {n} of the model's {n} tensors" in str(report) and "20 tensors of the file unused" in str(report)
    with pytest.raises(CheckpointError, match="no tensor under prefix 'decoder.'"):
        load_checkpoint(dst, path, prefix="decoder.")


def test_stripformer_training_states_unwrap_from_model_state(tmp_path):
    src = _tiny()
    torch.save({"epoch": 3, "model_state": src.state_dict(), "optimizer_state": {}}, tmp_path / "s.pth")
    assert load_checkpoint(build_model("baseline_cnn", "tiny"), tmp_path / "s.pth").wrapper_key == "model_state"


@pytest.mark.parametrize("name, wrapper", [("fsrcnn_x3.pth", None), ("fsrcnn.pth", {"scale": 3}),
                                           ("fsrcnn.pth", {"opt": {"upscale": 3}})])
def test_a_checkpoint_for_another_sr_factor_is_refused(tmp_path, name, wrapper):
    x3 = build_model("fsrcnn", "x3")
    path = tmp_path / name
    torch.save({**(wrapper or {}), "params": x3.state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"a x3 checkpoint .* upsamples x4; build the model with scale=3"):
        load_checkpoint(build_model("fsrcnn"), path)            # the default FSRCNN is x4: same shapes
    assert load_checkpoint(build_model("fsrcnn", "x3"), path).scale == 3


def test_scale_is_read_only_from_explicit_marks():
    assert checkpoint_scale({}, "net_g_x4.pth") == (4, "its file name 'net_g_x4.pth'")
    assert checkpoint_scale({}, "DiffIRS2-SRx4.pth") == (None, "")      # no separator: not a scale mark
    assert checkpoint_scale({"scale": True}, "model.pth") == (None, "")


def test_partial_loads_report_what_really_changed(tmp_path):
    torch.save({"unrelated.weight": torch.zeros(3)} | {f"x{i}": torch.zeros(1) for i in range(177)},
               tmp_path / "other.pth")
    model = _tiny()
    report = load_checkpoint(model, tmp_path / "other.pth", strict=False)
    assert report.n_tensors == 0 and report.n_unused == 178
    assert str(report).startswith(f"loaded 0 of the model's {len(model.state_dict())} tensors")


def test_unreadable_safetensors_name_the_file(tmp_path):
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match=r"w\.safetensors: not a readable \.safetensors file"):
        load_checkpoint(_tiny(), bad)
