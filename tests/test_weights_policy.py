"""Missing pretrained weights: a labelled fallback by default (smoke), an error naming the file and where to
put it under the strict policy ($RESTORE_REQUIRE_WEIGHTS=1, set for gpu-profile runs), and a gpu-profile run
that refuses to start. Weight files are faked in temporary folders; nothing is downloaded."""
from pathlib import Path

import pytest
import torch

from restore_lib import weights
from restore_lib.features import feature_extractor
from restore_lib.lpips import NO_TRUNK, load_lpips
from restore_lib.weights import REQUIRE_ENV, MissingWeightsError, require_weights, weights_required

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def no_weights(tmp_path, monkeypatch):
    """An empty torch hub cache and $RESTORE_WEIGHTS_DIR."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.setenv("RESTORE_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    monkeypatch.delenv("RESTORE_CLIP_DIR", raising=False)
    return tmp_path


def test_the_policy_comes_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    assert weights_required() is False and weights_required(True) is True
    monkeypatch.setenv(REQUIRE_ENV, "1")
    assert weights_required() is True and weights_required(False) is False
    monkeypatch.setenv(REQUIRE_ENV, "yes")
    with pytest.raises(ValueError, match="RESTORE_REQUIRE_WEIGHTS='yes'"):
        weights_required()


def test_strict_feature_loss_names_the_file_and_its_places(no_weights, monkeypatch):
    smoke = feature_extractor("auto", "relu3_3")           # the labelled stand-in of the smoke profile
    assert smoke.network == "mobilenet_v2" and "VGG19 weights not found" in smoke.description
    for strict in ({"strict": True}, {}):
        if not strict:
            monkeypatch.setenv(REQUIRE_ENV, "1")
        with pytest.raises(MissingWeightsError) as e:
            feature_extractor("auto", "relu3_3", **strict)
        msg = str(e.value)
        assert "vgg19-dcbb9e9d.pth" in msg and str(no_weights / "w" / "vgg19-dcbb9e9d.pth") in msg
        assert str(no_weights / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in msg and "MobileNetV2" in msg


def test_strict_lpips_refuses_n_a(no_weights):
    assert load_lpips("alex") == (None, NO_TRUNK)
    with pytest.raises(MissingWeightsError, match="LPIPS-alex: alexnet ImageNet weights alexnet-owt-7be5be79.pth"):
        load_lpips("alex", strict=True)
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        load_lpips("vgg", strict=True)


def test_weights_in_the_hub_cache_are_found(no_weights):
    ckpt = no_weights / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    assert require_weights("vgg19")[0] == ckpt
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        require_weights("alexnet")


def test_gpu_profile_lists_every_missing_file_before_it_starts(no_weights, monkeypatch):
    from restore_lib.course.runner import load_profile_params
    from restore_lib.course.weights_check import missing_weights, needed_weights

    monkeypatch.setattr(weights, "package_file", lambda *parts: Path("/lpips.pth"))  # the lpips wheel: present
    monkeypatch.setattr("restore_lib.course.weights_check.package_file", lambda *parts: Path("/lpips.pth"))
    nbs = {nb.stem[:2]: nb for nb in (REPO / "notebooks").glob("0*.ipynb")}
    gpu = {k: load_profile_params(nb, "gpu", REPO) for k, nb in nbs.items()}
    found = {k: missing_weights(nbs[k], gpu[k]) for k in nbs}
    assert found["00"] == found["04"] == []
    assert len(found["03"]) == 2 and "alexnet-owt-7be5be79.pth" in found["03"][0] and "relu5_4" in found["03"][1]
    assert "Report A's perceptual loss" in found["01"][0] and "vgg19-dcbb9e9d.pth" in found["01"][0]
    assert "contrastive" in found["02"][0]
    assert [m for m in found["05"] if "CLIP" in m and "clip_dir" in m and "configs/05_ptgrm_priors/gpu.yaml" in m]
    assert needed_weights(nbs["02"], {"loss_terms": "char", "run_ablations": False}) == []
    assert [k for k, _ in needed_weights(nbs["03"], {"run_sr": False})] == ["alexnet", "lpips-alex"]
    # with the files in place nothing is missing (CLIP: a transformers folder)
    for name in ("vgg19-dcbb9e9d.pth", "alexnet-owt-7be5be79.pth"):
        (no_weights / "w").mkdir(exist_ok=True)
        (no_weights / "w" / name).write_bytes(b"x")
    clip = no_weights / "clip"
    clip.mkdir()
    assert "has no config.json" in missing_weights(nbs["05"], {**gpu["05"], "clip_dir": str(clip)})[-1]
    (clip / "config.json").write_text("{}")
    monkeypatch.setenv("RESTORE_CLIP_DIR", str(clip))
    assert all(missing_weights(nbs[k], gpu[k]) == [] for k in ("01", "02", "03", "05"))


def test_gpu_run_refuses_to_start_without_the_weights(no_weights, monkeypatch, capsys):
    from restore_lib.course import reproduce

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(reproduce, "execute_plans", lambda *a, **k: pytest.fail("a notebook was started"))
    monkeypatch.setattr(reproduce, "write_results_readme", lambda *a, **k: pytest.fail("results were written"))
    assert reproduce.main(["--profile", "gpu", "--only", "01"]) == 2
    err = capsys.readouterr().err
    assert "nothing was run" in err and "vgg19-dcbb9e9d.pth" in err and "01_promptir_rain_snow.ipynb" in err
