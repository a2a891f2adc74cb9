"""The committed results/ satisfy each report's claims and the schema."""
import pytest

from restore_lib.reproduce import list_notebooks, results_dir_for
from restore_lib.results import load_metrics
from restore_lib.utils import repo_root

from claims import claim_modules

MODULES = {m.REPORT: m for m in claim_modules()}


def test_every_notebook_has_claims_and_committed_results():
    stems = [nb.stem for nb in list_notebooks()]
    assert stems, "no notebooks found"
    for stem in stems:
        assert stem in MODULES, f"tests/claims has no module for {stem}"
        assert (results_dir_for(stem, "smoke") / "metrics.json").is_file(), f"results/{stem}/metrics.json missing"


@pytest.mark.parametrize("report", sorted(MODULES))
def test_committed_results_satisfy_claims(report):
    obj = load_metrics(results_dir_for(report, "smoke") / "metrics.json")
    assert obj["report"] == report and obj["profile"] == "smoke"
    prov = obj["provenance"]
    assert prov["commit"] != "unknown" and len(prov["commit"]) == 40
    assert prov["data"]["hash"] not in ("", "unknown")
    MODULES[report].check(obj["metrics"], obj)


def test_results_readme_lists_every_report():
    text = (repo_root() / "results" / "README.md").read_text()
    for report in MODULES:
        obj = load_metrics(results_dir_for(report, "smoke") / "metrics.json")
        assert obj["title"] in text
