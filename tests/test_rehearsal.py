"""The gpu path rehearsed on a CPU (restore_lib.course.rehearsal): fake downloads in each official layout, the
data commands of data_scripts/README.md, then every notebook with its gpu config through papermill, full-size
models, a couple of steps on tiny crops. It proves the path a GPU user takes works except for scale."""
import warnings

import pytest

from restore_lib.course import rehearsal
from restore_lib.course.results import load_metrics
from restore_lib.course.runner import list_notebooks, load_profile_params
from restore_lib.data.pairs import load_pairs

NOTEBOOKS = list_notebooks()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("rehearsal")
    rehearsal.make_fake_downloads(work / "downloads")
    return work


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[n.stem[:2] for n in NOTEBOOKS])
def test_the_gpu_configuration_runs_end_to_end_on_prepared_fake_data(nb, work):
    record = load_metrics(rehearsal.rehearse(nb, work, timeout=900, log=lambda _: None))
    assert record["profile"] == "rehearsal"
    gpu = load_profile_params(nb, "gpu")
    used = rehearsal.rehearsal_params(nb, work / "data")
    # the run used the gpu profile's models and recipe, and read the folder the data commands made
    for key in ("model_preset", "a_preset", "b_preset", "nafnet_preset", "swinir_preset", "deblur_preset",
                "sr_preset", "f_preset", "loss_terms", "priors"):
        if key in gpu:
            assert used[key] == gpu[key] and record["params"][key] == gpu[key], key
    if gpu.get("data_root"):
        assert used["data_root"].startswith(str(work / "data"))
        assert record["params"]["data_root"] == used["data_root"]
        assert "embedded" not in record["provenance"]["data"]["name"]


@pytest.mark.parametrize("name, task, split", [("SIDD", "noise_real", "val")])
def test_a_prepared_dataset_no_notebook_reads_yet_loads_with_the_notebooks_loader(work, name, task, split):
    rehearsal.prepare_data(name, work / "downloads", work / "data", log=lambda _: None,
                           commands=[rehearsal.EXTRA_COMMANDS[name]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")         # a verified folder: no UnverifiedFolderWarning
        pairs = load_pairs(task, split, data_root=work / "data" / name)
    assert pairs and all(lq.shape == gt.shape for _, lq, gt in pairs)
