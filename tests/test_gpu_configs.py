"""The gpu profiles (configs/<notebook>/gpu.yaml): every key is a parameter of the notebook's parameters
cell with a value of the right type, the real dataset is required, and the values taken from the reports
stay what the YAML comments cite."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from restore_lib.course.runner import ParameterError, check_parameters, list_notebooks, load_profile_params
from restore_lib.utils import repo_root

NOTEBOOKS = list_notebooks()
ROOT = repo_root()
#: the prepared (or linked) folder each gpu profile reads; data_scripts/README.md says how to make it
DATA_ROOTS = {"01": "data/hw4", "02": "data/GoPro", "03": "data/restoravision", "04": "data/diffir",
              "05": "data/ptgrm"}


def _raw(nb: Path) -> dict:
    return yaml.safe_load((ROOT / "configs" / nb.stem / "gpu.yaml").read_text()) or {}


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_gpu_profile_keys_and_types_match_the_notebook(nb):
    params = load_profile_params(nb, "gpu", ROOT)      # raises ParameterError on an unknown key or a wrong type
    assert params["profile"] == "gpu" and params["device"] == "cuda"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_check_refuses_a_typo_and_a_wrong_type(nb):
    raw = _raw(nb)
    with pytest.raises(ParameterError, match="unknown parameter"):
        check_parameters(nb, {**raw, "data_rot": "data/x"})
    with pytest.raises(ParameterError, match="wrong type"):
        check_parameters(nb, {**raw, "seed": "0"})


@pytest.mark.parametrize("nb", [p for p in NOTEBOOKS if p.stem[:2] in DATA_ROOTS],
                         ids=[p.stem for p in NOTEBOOKS if p.stem[:2] in DATA_ROOTS])
def test_gpu_profile_requires_the_real_dataset(nb):
    data_root = _raw(nb).get("data_root")
    assert data_root == DATA_ROOTS[nb.stem[:2]], "a gpu run reads the real data, never the embedded photos"
    assert not Path(data_root).is_absolute()
    assert f"`{data_root}`" in (ROOT / "data_scripts" / "README.md").read_text(), \
        "data_scripts/README.md must say how to make this folder"


def _gpu(prefix: str) -> dict:
    return _raw(next(nb for nb in NOTEBOOKS if nb.stem.startswith(prefix)))


def test_report_003_values():
    p = _gpu("03")
    # Table 2: 10 warm-up + 400 adversarial epochs over DIV2K (800 // 16 = 50 steps each), lr 1e-4, batch 16, HR 96
    assert (p["srresnet_steps"], p["srgan_steps"]) == (10 * (800 // 16), 400 * (800 // 16))
    assert p["srresnet_lr"] == p["srgan_lr"] == p["srgan_d_lr"] == 1e-4
    assert (p["srresnet_batch"], p["srresnet_patch"], p["sr_repeat"]) == (16, 96, 1)
    # Table 4's NAFNet figure (33.69 dB) is the width-64 model: NAFNet-width64.yml
    assert (p["nafnet_preset"], p["deblur_steps"], p["deblur_batch"], p["deblur_patch"]) == ("width64", 400_000, 64, 256)


def test_report_002_and_official_values():
    p = _gpu("02")
    assert (p["train_steps"], p["batch_size"], p["lr"], p["lr_schedule"]) == (5 * 2800, 2, 1e-3, "constant")
    assert p["patch_size"] % 4 == 0 and p["loss_terms"] == "char+edge+contrast"
    d = _gpu("04")
    assert (d["deblur_s1_steps"], d["deblur_s2_steps"], d["sr_s1_steps"], d["sr_s2_steps"]) == \
        (300_000, 400_000, 1_000_000, 1_000_000)
    assert d["batch_size"] == 8 and d["s2_joint"] is True
    r = _gpu("05")
    assert (r["loss"], r["lambda1"], r["output_mode"]) == ("charbonnier", 1.0, "code")
