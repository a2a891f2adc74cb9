"""The sentences that interpret results are generated from the numbers by the seed-noise rule, and the
committed notebooks say what the committed seed runs support (these are the claims tests of the notebooks'
interpretive sentences)."""
import json

import pytest
import yaml

from restore_lib.course.findings import (AGREES, BEYOND, CONTRADICTS, UNDECIDED, WITHIN, Finding, judge,
                                         load_findings, recorded_verdict, render_findings)
from restore_lib.course.published import PublishedError, load_published, published_path
from restore_lib.course.reproduce import list_notebooks, refresh_findings
from restore_lib.course.results import RunRecorder, load_seed_spread, summarize_seed_runs
from restore_lib.utils import atomic_write_json

REPORTS = [nb.stem for nb in list_notebooks() if nb.stem != "00_quickstart"]
UP = Finding("f", "A over B", "t/A/PSNR", "t/B/PSNR", expects="higher", says="the paper: A wins")


@pytest.mark.parametrize("diffs, noise, report", [
    ([0.30, 0.32, 0.31], BEYOND, AGREES),            # same sign everywhere, far from 0
    ([-0.30, -0.32, -0.31], BEYOND, CONTRADICTS),    # beyond noise, the other way round
    ([0.30, -0.05, 0.31], WITHIN, UNDECIDED),        # one seed disagrees on the sign
    ([0.01, 0.50, 0.02], WITHIN, UNDECIDED),         # same sign, but the mean is within 3 standard errors
    ([0.30], WITHIN, UNDECIDED),                     # one seed has no spread: never "beyond noise"
])
def test_the_rule(diffs, noise, report):
    v = judge(UP, list(range(len(diffs))), diffs)
    assert (v.noise, v.report) == (noise, report)


def test_no_report_claim_gives_no_report_verdict():
    v = judge(Finding("f", "A over B", "a", "b"), [0, 1, 2], [1.0, 1.1, 1.2])
    assert v.noise == BEYOND and v.report is None


def test_lower_is_the_report_direction_too():
    down = Finding("f", "GAN vs MSE", "a", "b", expects="lower", says="GAN trades PSNR")
    assert judge(down, [0, 1, 2], [-0.1, -0.12, -0.11]).report == AGREES
    assert judge(down, [0, 1, 2], [0.1, 0.12, 0.11]).report == CONTRADICTS


def _setup(tmp_path, values_a, values_b, params=None, findings=None):
    """A fake report "nb" with seed runs of two metrics and a published.yaml with one finding."""
    findings = findings or [{"id": "ab", "what": "A over B", "a": "t/A/PSNR", "b": "t/B/PSNR",
                             "report": {"expects": "higher", "says": "the paper: A wins"}}]
    path = published_path("nb", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump({"schema_version": 1, "tables": [], "findings": findings}))
    records = []
    for seed, (a, b) in enumerate(zip(values_a, values_b)):
        rec = RunRecorder("nb", "x", params={"steps": 10, "seed": seed, **(params or {})},
                          out_dir=tmp_path / "runs" / str(seed), seed=seed, device="cpu", profile="smoke")
        rec.set_metric("t/A/PSNR", a)
        rec.set_metric("t/B/PSNR", b)
        records.append(rec.to_dict())
    out = tmp_path / "results" / "nb"
    out.mkdir(parents=True)
    atomic_write_json(out / "metrics.json", records[0])
    atomic_write_json(out / "seed_spread.json", summarize_seed_runs(records))


def test_sentence_says_this_run_the_seeds_and_the_verdict(tmp_path):
    _setup(tmp_path, [30.3, 30.4, 30.35], [30.0, 30.05, 30.02])
    text = render_findings(report="nb", metrics={"t/A/PSNR": 31.0, "t/B/PSNR": 30.0}, params={"steps": 10, "seed": 0},
                           root=tmp_path)
    line = next(x for x in text.splitlines() if x.startswith("- **A over B**"))
    assert "this run +1.00 dB" in line and "seeds 0, 1, 2 (smoke)" in line
    assert f"**{BEYOND}**" in line and f"**{AGREES}** (the paper: A wins)" in line
    assert "settings differ" not in line


def test_within_noise_is_said_and_the_report_is_not_judged(tmp_path):
    _setup(tmp_path, [30.3, 29.9, 30.35], [30.0, 30.05, 30.02])
    text = render_findings(report="nb", metrics={"t/A/PSNR": 31.0, "t/B/PSNR": 30.0}, root=tmp_path)
    assert f"**{WITHIN}**" in text and f"**{UNDECIDED}**" in text and AGREES not in text


def test_changed_settings_are_named(tmp_path):
    _setup(tmp_path, [30.3, 30.4, 30.35], [30.0, 30.05, 30.02])
    text = render_findings(report="nb", metrics={}, params={"steps": 9999, "seed": 5}, root=tmp_path)
    assert "not measured in this run" in text and "differ from the recorded runs' in `steps`" in text


def test_no_recorded_spread_gives_no_verdict(tmp_path):
    _setup(tmp_path, [30.3, 30.4, 30.35], [30.0, 30.05, 30.02])
    text = render_findings(report="nb", metrics={"t/A/PSNR": 31.0, "t/B/PSNR": 30.0}, profile="gpu", root=tmp_path)
    assert "No seed spread is recorded for the gpu profile" in text and f"**{BEYOND}**" not in text


def test_a_corrupt_recorded_run_is_an_error_not_a_silent_gap(tmp_path):
    _setup(tmp_path, [30.3, 30.4, 30.35], [30.0, 30.05, 30.02])
    (tmp_path / "results" / "nb" / "metrics.json").write_text("{not json")
    with pytest.raises(PublishedError, match="nb/metrics.json: needed"):
        render_findings(report="nb", metrics={}, params={"steps": 10}, root=tmp_path)


@pytest.mark.parametrize("finding, message", [
    ({"id": "x", "what": "w", "a": "a"}, "missing b"),
    ({"id": "x", "what": "w", "a": "a", "b": "b", "report": {"expects": "bigger", "says": "s"}},
     "report.expects must be 'higher' or 'lower'"),
    ({"id": "x", "what": "w", "a": "a", "b": "b", "report": {"expects": "higher"}}, "report.says must quote"),
    ({"id": "x", "what": "w", "a": "a", "b": "b", "colour": 1}, "unknown field 'colour'"),
])
def test_bad_findings_are_refused_by_name(tmp_path, finding, message):
    _setup(tmp_path, [1, 2, 3], [1, 2, 3], findings=[finding])
    with pytest.raises(PublishedError, match=message) as e:
        load_findings("nb", tmp_path)
    assert "published.yaml" in str(e.value)


def _notebook_with_findings_cell(tmp_path, output_text):
    nb = {"cells": [{"cell_type": "code", "execution_count": 1, "metadata": {}, "source": [
        "display(Markdown(render_findings(rec)))"], "outputs": [{"output_type": "display_data", "metadata": {},
        "data": {"text/markdown": [output_text], "text/plain": ["<IPython.core.display.Markdown object>"]}}]}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "notebooks" / "nb.ipynb"
    path.parent.mkdir()
    path.write_text(json.dumps(nb))
    return path


def test_a_sweep_re_renders_the_findings_against_its_new_spread(tmp_path):
    """The default seed runs before the sweep's spread exists; refresh_findings re-renders that cell from the
    committed run and the new spread (what re-executing the notebook would print)."""
    _setup(tmp_path, [30.3, 30.4, 30.35], [30.0, 30.05, 30.02])
    path = _notebook_with_findings_cell(tmp_path, "- **A over B**: stale, **within noise**.\n")
    assert refresh_findings(path, tmp_path)
    (cell,) = json.loads(path.read_text())["cells"]
    (out,) = cell["outputs"]
    text = "".join(out["data"]["text/markdown"])
    assert text == render_findings(report="nb", metrics={"t/A/PSNR": 30.3, "t/B/PSNR": 30.0},
                                   params={"steps": 10, "seed": 0}, root=tmp_path)
    assert f"**{BEYOND}**" in text and "stale" not in text and "settings differ" not in text


def test_refreshing_an_unexecuted_findings_cell_is_refused(tmp_path):
    _setup(tmp_path, [30.3, 30.4, 30.35], [30.0, 30.05, 30.02])
    path = _notebook_with_findings_cell(tmp_path, "x")
    nb = json.loads(path.read_text())
    nb["cells"][0]["outputs"] = []
    path.write_text(json.dumps(nb))
    with pytest.raises(ValueError, match=r"nb.ipynb: the cell calling render_findings\(rec\) has 0 Markdown outputs"):
        refresh_findings(path, tmp_path)


# --------------------------------------------------------------------------- the committed notebooks
def _findings_output(report):
    nb = next(p for p in list_notebooks() if p.stem == report)
    for cell in json.loads(nb.read_text())["cells"]:
        if cell["cell_type"] == "code" and "render_findings(rec" in "".join(cell["source"]):
            return "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in cell.get("outputs", []))
    raise AssertionError(f"{nb.name}: no cell shows render_findings(rec)")


@pytest.mark.parametrize("report", REPORTS)
def test_every_finding_is_about_recorded_metrics(report):
    spread = load_seed_spread(report)
    findings = load_findings(report)
    assert findings, f"{load_published(report).path}: no findings"
    for f in findings:
        for key in (f.a, f.b):
            assert key in spread["metrics"], f"finding {f.id!r}: {key!r} is not in results/{report}/seed_spread.json"


@pytest.mark.parametrize("report", REPORTS)
def test_committed_notebook_says_what_the_committed_seeds_support(report):
    """The findings cell's committed output gives, for every finding, the verdict the committed seed runs
    support now (re-execute the notebook after re-recording its seeds)."""
    text = _findings_output(report)
    for f in load_findings(report):
        line = next((x for x in text.splitlines() if x.startswith(f"- **{f.what}**")), None)
        assert line is not None, f"{report}: the findings cell has no sentence for {f.id!r}"
        v = recorded_verdict(report, f)
        assert f"**{v.noise}**" in line, f"{report}/{f.id}: the notebook says {line!r}, the seeds say {v.noise}"
        if v.report is not None:
            assert f"**{v.report}**" in line, f"{report}/{f.id}: the notebook says {line!r}, the seeds: {v.report}"
