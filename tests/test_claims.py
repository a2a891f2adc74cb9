"""The committed results/ satisfy each report's claims at every recorded seed, and
the seed spread the tolerances rest on matches the records it summarizes."""
import math

import pytest

from restore_lib.course.reproduce import list_notebooks, results_dir_for
from restore_lib.course.results import (load_metrics, load_seed_spread, paired_difference, seed_records_dir,
                                        summarize_seed_runs)
from restore_lib.utils import repo_root

from claims import claim_modules

MODULES = {m.REPORT: m for m in claim_modules()}
MIN_SEEDS = 3


def _records(report):
    """The committed run, then the other seeds' runs."""
    results = results_dir_for(report, "smoke")
    return [load_metrics(results / "metrics.json"),
            *(load_metrics(p) for p in sorted(seed_records_dir(results).glob("seed*.json")))]


def _seeded(reports):
    return [(r, i) for r in reports for i in range(len(_records(r)))]


def test_every_notebook_has_claims_and_committed_results():
    stems = [nb.stem for nb in list_notebooks()]
    assert stems, "no notebooks found"
    for stem in stems:
        assert stem in MODULES, f"tests/claims has no module for {stem}"
        assert (results_dir_for(stem, "smoke") / "metrics.json").is_file(), f"results/{stem}/metrics.json missing"


@pytest.mark.parametrize("report, index", _seeded(sorted(MODULES)))
def test_committed_results_satisfy_claims_at_every_seed(report, index):
    obj = _records(report)[index]
    assert obj["report"] == report and obj["profile"] == "smoke"
    prov = obj["provenance"]
    assert prov["commit"] != "unknown" and len(prov["commit"]) == 40
    assert prov["data"]["hash"] not in ("", "unknown")
    MODULES[report].check(obj["metrics"], obj)


@pytest.mark.parametrize("report", sorted(MODULES))
def test_seed_spread_summarizes_the_committed_seed_runs(report):
    records = _records(report)
    spread = load_seed_spread(report)
    assert len(spread["seeds"]) >= MIN_SEEDS, f"{report}: only seeds {spread['seeds']}"
    # the spread was computed from exactly these runs (the committed one included, not an older one)
    assert [r["started"] for r in spread["runs"]] == \
        [r["provenance"]["started"] for r in sorted(records, key=lambda r: r["provenance"]["seed"])], \
        f"results/{report}: metrics.json and seeds/ are not the runs seed_spread.json summarizes; " \
        "re-run `make notebooks`"
    fresh = summarize_seed_runs(records)
    assert fresh["seeds"] == spread["seeds"] and set(fresh["metrics"]) == set(spread["metrics"])
    for key, entry in fresh["metrics"].items():
        for field in ("mean", "std", "min", "max"):
            a, b = entry[field], spread["metrics"][key][field]
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-12), (key, field)
    # every seed ran the same code, environment and data
    for field in ("commit", "lib_hash", "torch", "data"):
        assert len({str(r[field]) for r in spread["runs"]}) == 1, f"{report}: seed runs differ in {field}"


@pytest.mark.parametrize("report", sorted(r for r, m in MODULES.items() if hasattr(m, "check_spread")))
def test_claims_about_differences_rest_on_the_seed_spread(report):
    """``check_spread(diff)``: what a report says is real, or within noise, over the recorded seeds."""
    MODULES[report].check_spread(lambda a, b: paired_difference(report, a, b))


def test_every_report_states_what_is_within_noise():
    missing = [r for r, m in MODULES.items() if not hasattr(m, "check_spread")]
    assert not missing, f"claim modules without check_spread: {missing}"


def test_results_readme_lists_every_report():
    text = (repo_root() / "results" / "README.md").read_text()
    for report in MODULES:
        obj = load_metrics(results_dir_for(report, "smoke") / "metrics.json")
        assert obj["title"] in text
