"""After ``make nbval`` re-executed every notebook into $RESTORE_REPRODUCED_DIR:
the fresh numbers satisfy the claims and match the committed results/ within
tolerance (see tests/claims/__init__.py)."""
import math
import os
from pathlib import Path

import pytest

from restore_lib.course.reproduce import results_dir_for
from restore_lib.course.results import load_metrics

from claims import claim_modules, tolerance_for

REPRO = os.environ.get("RESTORE_REPRODUCED_DIR")
pytestmark = pytest.mark.skipif(not REPRO, reason="set by `make nbval` after re-executing the notebooks")
MODULES = claim_modules()


@pytest.mark.parametrize("module", MODULES, ids=[m.REPORT for m in MODULES])
def test_reproduced_run_satisfies_claims_and_matches_committed(module):
    fresh = load_metrics(Path(REPRO) / module.REPORT / "metrics.json")
    committed = load_metrics(results_dir_for(module.REPORT, "smoke") / "metrics.json")
    module.check(fresh["metrics"], fresh)
    assert fresh["provenance"]["data"]["hash"] == committed["provenance"]["data"]["hash"], \
        "the embedded dataset differs from the one the committed results used"
    missing = sorted(set(committed["metrics"]) - set(fresh["metrics"]))
    assert not missing, f"re-run lacks metrics {missing[:10]}"
    drift = []
    for key, ref in committed["metrics"].items():
        new = fresh["metrics"][key]
        if math.isinf(ref) or math.isnan(ref):
            continue
        tol = tolerance_for(key, module, ref)
        if not abs(new - ref) <= tol:
            drift.append(f"{key}: committed {ref:.6g}, re-run {new:.6g} (tolerance {tol:.3g}: 3 sigma over the "
                         f"seeds, or the floor)")
    assert not drift, "re-run drifted beyond tolerance:\n" + "\n".join(drift)
