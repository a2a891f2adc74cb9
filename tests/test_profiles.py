"""The profiles beyond smoke: gpu (the reports' experiments), gpu-quick (every table at full model size in one
short CUDA run) and rehearsal (the gpu path on a CPU at toy scale). The two overlays can only change the size of a
run, never a model; their runs keep their own checkpoints; CUDA profiles refuse to start without CUDA."""
from pathlib import Path

import pytest
import yaml

from restore_lib.course import reproduce, runner
from restore_lib.course.runner import (OVERLAY_KEY, PROFILE_BASE, ParameterError, list_notebooks,
                                       load_profile_params, run_environment)
from restore_lib.course.weights_check import refuse_to_start
from restore_lib.utils import repo_root

ROOT = repo_root()
NOTEBOOKS = list_notebooks(ROOT)


@pytest.mark.parametrize("profile", sorted(PROFILE_BASE))
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[n.stem[:2] for n in NOTEBOOKS])
def test_every_notebook_has_the_overlay_profiles_with_the_gpu_models(nb, profile):
    overlay = yaml.safe_load((ROOT / "configs" / nb.stem / f"{profile}.yaml").read_text()) or {}
    gpu = load_profile_params(nb, "gpu", ROOT)
    params = load_profile_params(nb, profile, ROOT)
    assert params["profile"] == profile
    assert params["device"] == ("cpu" if profile == "rehearsal" else "cuda")
    # every model / loss / recipe key is the gpu profile's own value
    same = {k for k in gpu if k not in overlay and k != "profile"}
    assert {k: params[k] for k in same} == {k: gpu[k] for k in same}
    assert all(OVERLAY_KEY.match(k) for k in overlay)
    if profile == "gpu-quick":
        assert params.get("data_root") is None, "gpu-quick runs on the embedded photos unless data_root is given"


@pytest.mark.parametrize("key", ["model_preset", "nafnet_preset", "loss_terms", "a_csa", "priors", "lr"])
def test_an_overlay_that_would_change_the_model_or_recipe_is_refused(tmp_path, key):
    nb = next(n for n in NOTEBOOKS if n.stem.startswith("00"))
    for name in ("notebooks", "configs"):
        (tmp_path / name).mkdir()
    (tmp_path / "notebooks" / nb.name).write_bytes(nb.read_bytes())
    cfg = tmp_path / "configs" / nb.stem
    cfg.mkdir()
    (cfg / "gpu.yaml").write_text("profile: gpu\ndevice: cuda\n")
    (cfg / "gpu-quick.yaml").write_text(f"train_steps: 5\n{key}: 1\n")
    with pytest.raises(ParameterError, match=f"gpu-quick.yaml: {key} would change the model or recipe"):
        load_profile_params(tmp_path / "notebooks" / nb.name, "gpu-quick", tmp_path)
    (cfg / "gpu-quick.yaml").write_text("train_steps: 5\nprofile: gpu\n")
    with pytest.raises(ParameterError, match="expected 'gpu-quick'"):
        load_profile_params(tmp_path / "notebooks" / nb.name, "gpu-quick", tmp_path)
    (cfg / "gpu-quick.yaml").write_text("train_steps: 5\n")
    params = load_profile_params(tmp_path / "notebooks" / nb.name, "gpu-quick", tmp_path)
    assert params == {"profile": "gpu-quick", "device": "cuda", "train_steps": 5}


def test_each_profile_keeps_its_own_checkpoints(monkeypatch, tmp_path):
    from restore_lib.weights import REQUIRE_ENV

    monkeypatch.delenv("RESTORE_RUNS_DIR", raising=False)
    assert run_environment("smoke", tmp_path) == {}
    assert run_environment("gpu", tmp_path) == {REQUIRE_ENV: "1", "RESTORE_RUNS_DIR": str(tmp_path / "runs/gpu")}
    for profile in PROFILE_BASE:
        assert run_environment(profile, tmp_path) == {"RESTORE_RUNS_DIR": str(tmp_path / "runs" / profile)}
    monkeypatch.setenv("RESTORE_RUNS_DIR", str(tmp_path / "mine"))
    assert "RESTORE_RUNS_DIR" not in run_environment("gpu-quick", tmp_path)


def test_cuda_profiles_refuse_to_start_without_cuda(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert refuse_to_start("smoke", []) is None and refuse_to_start("rehearsal", []) is None
    assert "profile 'gpu-quick' needs CUDA" in refuse_to_start("gpu-quick", [])
    assert reproduce.main(["--profile", "gpu-quick", "--only", "00"]) == 2
    assert "needs CUDA and none is available" in capsys.readouterr().err
    assert runner.cell_timeout("gpu-quick") and runner.cell_timeout("rehearsal")
    assert runner.cell_timeout("gpu") is None
