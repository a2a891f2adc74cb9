"""gpu-quick (every table at full model size in one short CUDA run): its committed results are a CUDA run of
the committed configs/<notebook>/gpu-quick.yaml, and on a CUDA machine a fresh run reproduces them within the
seed spread recorded for that profile. Without CUDA the re-run is skipped; without a committed run (no GPU
has been lent to this project yet) the first check says so."""
import math

import pytest

from restore_lib.course.results import SeedSpreadError, load_metrics
from restore_lib.course.runner import list_notebooks, load_profile_params, results_dir_for, run_notebook

from claims import claim_modules, tolerance_for

NOTEBOOKS = list_notebooks()
IDS = [n.stem[:2] for n in NOTEBOOKS]
CLAIMS = {m.REPORT: m for m in claim_modules()}


def committed(nb):
    path = results_dir_for(nb.stem, "gpu-quick") / "metrics.json"
    if not path.is_file():
        pytest.skip(f"no gpu-quick run committed for {nb.stem} (it needs a CUDA machine; README, "
                    f"'Reproduce a report on a GPU')")
    return load_metrics(path)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_committed_gpu_quick_results_are_a_cuda_run_of_the_committed_config(nb):
    record = committed(nb)
    assert record["profile"] == "gpu-quick"
    assert str(record["provenance"]["device"]).startswith("cuda")
    config = load_profile_params(nb, "gpu-quick")
    changed = {k: (record["params"].get(k), v) for k, v in config.items() if record["params"].get(k) != v}
    assert not changed, f"the committed run used other settings than gpu-quick.yaml: {changed}"


@pytest.mark.gpu
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_gpu_quick_reproduces_on_cuda(nb, tmp_path):
    record = committed(nb)
    fresh = load_metrics(run_notebook(nb, "gpu-quick", timeout=1800, out_dir=tmp_path / "results",
                                      executed=tmp_path / "executed.ipynb"))
    assert set(fresh["metrics"]) == set(record["metrics"])
    drift = []
    for key, ref in record["metrics"].items():
        if math.isnan(ref) or math.isinf(ref):
            continue
        try:
            tol = tolerance_for(key, CLAIMS[nb.stem], ref, profile="gpu-quick")
        except SeedSpreadError:
            pytest.skip(f"no gpu-quick seed spread recorded for {nb.stem}: run reproduce --profile gpu-quick "
                        f"--seeds 0 1 2 first")
        if not abs(fresh["metrics"][key] - ref) <= tol:
            drift.append(f"{key}: committed {ref:.6g}, re-run {fresh['metrics'][key]:.6g} (tolerance {tol:.3g})")
    assert not drift, "\n".join(drift)
