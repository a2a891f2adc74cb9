"""The grader: tolerance, order and protocol checks on metrics.json files written
by the real RunRecorder, the reports' content and the exit codes."""
import csv
import itertools
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from restore_lib.course.ablations import Tolerance, load_spec
from restore_lib.course.grade import main
from restore_lib.metrics import MetricSpec
from restore_lib.course.results import GIT_STATE_ENV, RunRecorder

SPEC = """schema_version: 1
name: demo
title: Demo ablation
notebook: 99_demo
base: {run_ablations: false}
arms:
  full: {use_prompt: true}
  no_prompt: {use_prompt: false}
metric: main/average/PSNR
higher_is_better: true
input_metric: main/average/PSNR input
seed: 0
expect:
  noise: {k: 3, floor: 0.01, min_seeds: 3}
  tolerance: {abs: 0.3}
points: {arms: 2, order: 1}
published:
  source: "Demo et al., Table 1"
  values: {full: 32.0, no_prompt: 31.5}
protocol_keys: [steps]
"""
REFERENCE = {"full": 30.0, "no_prompt": 29.5}
#: per-seed offsets of the reference runs (seeds 0, 1, 2): std 0.02 and 0.01 -> bands 0.06 and 0.03
NOISE = {"full": (0.0, 0.02, -0.02), "no_prompt": (0.0, 0.01, -0.01)}
INPUT = 25.0
PROTOCOL = MetricSpec(ssim_variant="skimage_default", quantize=False)
DATA = {"name": "embedded-rain", "hash": "a" * 64, "split": "test"}
_STAMPS = itertools.count()


def write_run(path: Path, arm: str, value: float, *, profile="smoke", protocol=PROTOCOL, data=DATA, steps=100,
              use_prompt=None, table_protocol=None, seed=0, input_value=INPUT, name="metrics.json") -> Path:
    """A metrics.json as notebook 99_demo would write it for ``arm``, in folder ``path`` (each with its own
    start stamp, as real runs have)."""
    params = {"profile": profile, "seed": seed, "out_dir": str(path), "run_ablations": False, "steps": steps,
              "use_prompt": (arm == "full") if use_prompt is None else use_prompt}
    rec = RunRecorder("99_demo", "Demo", params=params, out_dir=path, seed=seed, device="cpu", profile=profile,
                      protocol=protocol)
    rec.set_data(**data)
    rec.add_table("main", "Main", (["method", "PSNR", "PSNR input", "SSIM"], [["average", value, input_value, 0.9]]),
                  protocol=table_protocol)
    out = rec.save()
    obj = json.loads(out.read_text())
    obj["provenance"]["started"] = f"2026-01-01T00:00:{next(_STAMPS):02d}+00:00"
    target = out.parent / name
    target.write_text(json.dumps(obj))
    if target != out:
        out.unlink()
    return target


def write_reference(results: Path, seeds=(0, 1, 2)) -> None:
    for arm, v in REFERENCE.items():
        d = results / "ablations" / "demo" / arm
        for k in seeds:
            write_run(d if k == 0 else d / "seeds", arm, v + NOISE[arm][k], seed=k,
                      name="metrics.json" if k == 0 else f"seed{k}.json")


@pytest.fixture(autouse=True)
def clean_tree(monkeypatch):
    """Runs written by the tests record a clean tree whatever the state of the checkout."""
    monkeypatch.setenv(GIT_STATE_ENV, json.dumps({"commit": "f" * 40, "dirty": False}))


@pytest.fixture()
def env(tmp_path):
    spec = tmp_path / "demo.yaml"
    spec.write_text(SPEC)
    write_reference(tmp_path / "results")
    return tmp_path


def grade(env, *subs, extra=(), spec=None):
    out = env / "report"
    code = main([*map(str, subs), "--references", str(env / "results"), "--spec", str(spec or env / "demo.yaml"),
                 "--out", str(out), *extra])
    rows = list(csv.DictReader((out / "grade_report.csv").open())) if (out / "grade_report.csv").exists() else []
    md = (out / "grade_report.md").read_text() if (out / "grade_report.md").exists() else ""
    return code, {(r["submission"].split("/")[-1], r["arm"]): r for r in rows}, md


def student(env, name="alice", **values):
    base = env / "class" / name / "results" / "ablations" / "demo"
    for arm, v in values.items():
        write_run(base / arm, arm, v)
    return env / "class" / name


def test_tolerance_rule_is_pytest_approx():
    for rel, abs_ in [(0.1, 0.05), (0.0, 0.3), (0.01, 0.0)]:
        tol = Tolerance(rel=rel, abs=abs_)
        for ref in (30.0, 0.9, -2.0, 0.0):
            for v in (ref, ref + 0.04, ref - 0.06, ref + 0.29, ref * 1.09, ref * 1.11 + 0.01, ref + 3.5):
                assert tol.accepts(v, ref) == (v == pytest.approx(ref, rel=rel, abs=abs_)), (rel, abs_, ref, v)
    assert not Tolerance().accepts(float("nan"), 1.0)
    assert Tolerance().accepts(float("inf"), float("inf")) and not Tolerance().accepts(99.0, float("inf"))


def test_default_tolerance_when_spec_has_none(tmp_path):
    p = tmp_path / "demo.yaml"
    p.write_text(SPEC.replace("  tolerance: {abs: 0.3}\n", ""))
    assert load_spec(p).tolerance == Tolerance(rel=0.1, abs=0.05)


def test_pass_within_the_noise_band(env):
    code, rows, md = grade(env, student(env, full=30.03, no_prompt=29.48))
    assert code == 0, md
    assert rows[("alice", "full")]["status"] == "pass" and rows[("alice", "no_prompt")]["status"] == "pass"
    assert rows[("alice", "(order)")]["status"] == "pass"
    r = rows[("alice", "full")]
    assert float(r["submitted"]) == 30.03 and float(r["reference"]) == pytest.approx(30.0)
    assert float(r["band"]) == pytest.approx(0.06) and float(rows[("alice", "no_prompt")]["band"]) == pytest.approx(0.03)
    assert r["seeds"] == "0 1 2" and r["reference_source"] == "reference, 3 seed(s)"
    assert float(r["points"]) == 2 and float(rows[("alice", "(order)")]["points"]) == 1
    assert r["file"].endswith("alice/results/ablations/demo/full/metrics.json")
    assert "**Overall: PASS**" in md and "### Demo ablation (`demo`)" in md
    assert "band max(3 x std over >= 3 reference seeds, 0.01)" in md and "Points: 5 of 5." in md
    assert "| `full` | 30.03 | 30.00 | reference, 3 seed(s) | 32.00 | ±0.06 | +0.03 | **pass** | 2/2 |" in md
    assert "full better than no_prompt beyond noise: full - no_prompt = +0.5" in md
    assert "Order check: **pass**" in md


def test_fail_outside_the_band_that_the_old_tolerance_accepted(env):
    code, rows, md = grade(env, student(env, full=30.2, no_prompt=29.48))   # 0.2 dB: inside the spec's 0.3
    assert code == 1
    r = rows[("alice", "full")]
    assert r["status"] == "fail" and float(r["difference"]) == pytest.approx(0.2) and float(r["points"]) == 0
    assert "differs from the reference by +0.2 outside the band" in r["details"] and "= ±0.06" in r["details"]
    assert rows[("alice", "no_prompt")]["status"] == "pass"
    assert "**Overall: FAIL**" in md and "| `full` | 30.20 | 30.00 |" in md and "**fail**" in md


def test_wrong_order(env):
    code, rows, md = grade(env, student(env, full=29.45, no_prompt=29.5))
    assert code == 1
    o = rows[("alice", "(order)")]
    assert o["status"] == "fail" and "full better than no_prompt: margin -0.05 VIOLATED" in o["details"]
    assert float(o["points"]) == 0


def test_indistinguishable_arms_are_not_ranked(env):
    ref = env / "results" / "ablations" / "demo" / "no_prompt"
    for f in [ref / "metrics.json", *sorted((ref / "seeds").glob("*.json"))]:   # no_prompt := full's level
        obj = json.loads(f.read_text())
        k = obj["provenance"]["seed"]
        v = REFERENCE["full"] + (0.01, -0.02, 0.015)[k]
        obj["metrics"]["main/average/PSNR"] = obj["tables"][0]["rows"][0][1] = v
        f.write_text(json.dumps(obj))
    code, rows, md = grade(env, student(env, full=30.0, no_prompt=30.0))
    assert ("alice", "(order)") not in rows and code == 0
    assert "full vs no_prompt: indistinguishable at this profile" in md
    assert "All arms are indistinguishable at this profile: no order is graded." in md


def test_one_reference_seed_gives_no_band(env, tmp_path):
    shutil.rmtree(env / "results")
    write_reference(env / "results", seeds=(0,))
    code, rows, md = grade(env, student(env, full=30.0, no_prompt=29.5))
    assert code == 1
    r = rows[("alice", "full")]
    assert r["status"] == "band unknown" and r["band"] == "unknown" and float(r["points"]) == 0
    assert ("demo/full: band unknown, too few seeds: the reference has 1 seed(s) (0)" in r["details"]
            and "needs >= 3" in r["details"]
            and "python -m restore_lib.course.ablations run demo --seeds 0 1 2" in r["details"])
    assert "full vs no_prompt: unknown, 1 common reference seed(s), needs >= 3" in md
    assert ("alice", "(order)") not in rows


def test_no_work_submission_fails(env):
    code, rows, md = grade(env, student(env, full=INPUT, no_prompt=INPUT + 0.005))
    assert code == 1
    for arm in REFERENCE:
        r = rows[("alice", arm)]
        assert r["status"] == "no work" and float(r["points"]) == 0
        assert "at the degraded input's level (main/average/PSNR input = 25.00 in the reference)" in r["details"]


def test_copied_submissions_are_flagged(env):
    sub = env / "class" / "alice" / "results" / "ablations" / "demo"
    ref = env / "results" / "ablations" / "demo"
    (sub / "full").mkdir(parents=True)
    shutil.copy(ref / "full" / "metrics.json", sub / "full" / "metrics.json")          # byte-identical
    obj = json.loads((ref / "no_prompt" / "seeds" / "seed1.json").read_text())         # a seed's stamp, edited
    obj["metrics"]["main/average/PSNR"] = obj["tables"][0]["rows"][0][1] = 29.49
    obj["provenance"]["seed"] = obj["params"]["seed"] = 0
    (sub / "no_prompt").mkdir()
    (sub / "no_prompt" / "metrics.json").write_text(json.dumps(obj))
    code, rows, md = grade(env, env / "class" / "alice")
    assert code == 1
    full, no_prompt = rows[("alice", "full")], rows[("alice", "no_prompt")]
    assert full["status"] == "copied" and "byte-identical to the reference record metrics.json of seed 0" in \
        full["details"]
    assert no_prompt["status"] == "copied" and "carries the start stamp" in no_prompt["details"] and \
        "reference run at seed 1" in no_prompt["details"]
    assert float(full["points"]) == float(no_prompt["points"]) == 0


@pytest.mark.parametrize("edit, needle", [
    (lambda o: o["provenance"].update(dirty=True),
     "flag: provenance.dirty (run from a modified working tree): submitted true, reference false"),
    (lambda o: o["provenance"].update(lib_hash="0123456789abcdef"), 'flag: provenance.lib_hash: submitted '
                                                                    '"0123456789abcdef", reference "'),
    (lambda o: o["provenance"].update(seed=7), "flag: provenance.seed (the spec's seed): submitted 7, reference 0"),
    (lambda o: o["provenance"].update(device="cuda (NVIDIA H100)"),
     'flag: provenance.device (kind): submitted "cuda (NVIDIA H100)", reference "cpu"'),
    (lambda o: o["metrics"].update({"main/average/PSNR": 30.04}),
     "flag: metrics['main/average/PSNR'] vs its table cell: submitted 30.04, reference 30.0"),
])
def test_tampered_provenance_is_flagged_with_values(env, edit, needle):
    sub = student(env, full=30.0, no_prompt=29.5)
    path = sub / "results" / "ablations" / "demo" / "full" / "metrics.json"
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))
    code, rows, md = grade(env, sub)
    r = rows[("alice", "full")]
    assert code == 1 and r["status"] == "provenance flagged", r
    assert needle in r["details"] and needle in md and float(r["points"]) == 0
    assert rows[("alice", "no_prompt")]["status"] == "pass"


@pytest.mark.parametrize("change, field, submitted, reference", [
    (dict(protocol=MetricSpec(ssim_variant="gaussian", quantize=False)), "protocol.ssim_variant",
     '"gaussian"', '"skimage_default"'),
    (dict(data={**DATA, "hash": "b" * 64}), "provenance.data.hash", f'"{"b" * 64}"', f'"{"a" * 64}"'),
    (dict(profile="gpu"), "profile", '"gpu"', '"smoke"'),
    (dict(steps=50), "params.steps", "50", "100"),
    (dict(table_protocol=MetricSpec(color_space="y", crop_border=4)), "tables[main].protocol.color_space",
     '"y"', "(absent)"),
    (dict(use_prompt=False), "params.use_prompt (arm setting)", "false", "true"),
])
def test_protocol_mismatch(env, change, field, submitted, reference):
    base = env / "class" / "alice" / "results" / "ablations" / "demo"
    write_run(base / "full", "full", 30.0, **change)     # same value as the reference: only protocol differs
    write_run(base / "no_prompt", "no_prompt", 29.5)
    code, rows, md = grade(env, env / "class" / "alice")
    assert code == 1
    r = rows[("alice", "full")]
    assert r["status"] == "protocol mismatch", r
    assert f"{field}: submitted {submitted}, reference {reference}" in r["details"]
    assert rows[("alice", "no_prompt")]["status"] == "pass"
    assert f"- `full`: {field}: submitted {submitted}, reference {reference}" in md
    assert "**protocol mismatch**" in md


def test_protocol_description_text_is_not_compared(env):
    base = env / "class" / "alice" / "results" / "ablations" / "demo"
    for arm, v in REFERENCE.items():
        p = write_run(base / arm, arm, v)
        obj = json.loads(p.read_text())
        obj["protocol"]["description"] = "worded differently"
        p.write_text(json.dumps(obj))
    assert grade(env, env / "class" / "alice")[0] == 0


def test_malformed_file_is_named(env, capsys):
    sub = student(env, full=30.0, no_prompt=29.5)
    bad = sub / "results" / "ablations" / "demo" / "full" / "metrics.json"
    bad.write_text("{not json")
    code, rows, _ = grade(env, sub)
    assert code == 2 and rows == {}
    err = capsys.readouterr().err
    assert str(bad) in err and "not valid JSON" in err
    obj = json.loads((sub / "results" / "ablations" / "demo" / "no_prompt" / "metrics.json").read_text())
    obj["schema_version"] = 2
    bad.write_text(json.dumps(obj))
    assert grade(env, sub)[0] == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "schema_version 2 is not supported" in err


def test_missing_file(env, capsys):
    missing = env / "nowhere" / "metrics.json"
    assert grade(env, missing)[0] == 2
    assert f"{missing}: no such file or folder" in capsys.readouterr().err
    # a submission folder without one arm: that arm is "missing", the expected path is named
    code, rows, md = grade(env, student(env, full=30.0))
    assert code == 1
    r = rows[("alice", "no_prompt")]
    assert r["status"] == "missing" and "alice/results/ablations/demo/no_prompt/metrics.json" in r["details"]
    assert rows[("alice", "(order)")]["status"] == "fail" and "no value for no_prompt" in \
        rows[("alice", "(order)")]["details"]


def test_explicit_files_matched_by_params(env, tmp_path):
    a = write_run(tmp_path / "x", "full", 30.01)
    b = write_run(tmp_path / "y", "no_prompt", 29.49)
    code, rows, _ = grade(env, a, b)
    assert code == 0
    assert {k[1] for k in rows} == {"full", "no_prompt", "(order)"}
    by_arm = {arm: r for (_, arm), r in rows.items()}
    assert by_arm["full"]["file"] == str(a) and by_arm["no_prompt"]["file"] == str(b)
    assert by_arm["full"]["status"] == by_arm["no_prompt"]["status"] == by_arm["(order)"]["status"] == "pass"


def test_explicit_file_ambiguity_and_no_match(env, tmp_path, capsys):
    a = write_run(tmp_path / "x", "full", 30.1)
    b = write_run(tmp_path / "y", "full", 30.2)
    assert grade(env, a, b)[0] == 2
    assert "two files for demo/full" in capsys.readouterr().err
    c = write_run(tmp_path / "z", "full", 30.0, use_prompt="maybe")
    assert grade(env, c)[0] == 2
    assert f"{c}: its params match no arm of demo" in capsys.readouterr().err


def test_reference_from_spec_values_when_no_run(env):
    (env / "demo.yaml").write_text(SPEC.replace("  tolerance:", "  values: {full: 30.0, no_prompt: 29.5}\n"
                                                "  tolerance:"))
    ref_full = env / "results" / "ablations" / "demo" / "full" / "metrics.json"
    ref_full.unlink()
    code, rows, md = grade(env, student(env, full=30.2, no_prompt=29.5))
    assert code == 0, md
    r = rows[("alice", "full")]
    assert r["reference_source"] == "spec expect.values" and "protocol and provenance not checked" in r["details"]
    assert float(r["band"]) == 0.3


def test_no_reference_at_all(env, capsys):
    (env / "results" / "ablations" / "demo" / "no_prompt" / "metrics.json").unlink()
    assert grade(env, student(env, full=30.0, no_prompt=29.5))[0] == 2
    assert "no reference for demo/no_prompt" in capsys.readouterr().err


HOSTILE = {
    "deep": "[" * 100_000 + "]" * 100_000,
    "digits": '{"x": ' + "9" * 5000 + "}",
}


def _hostile_student(env, name: str, how: str) -> Path:
    sub = student(env, name, full=30.0, no_prompt=29.5)
    path = sub / "results" / "ablations" / "demo" / "full" / "metrics.json"
    if how in HOSTILE:
        path.write_text(HOSTILE[how])
    elif how == "huge":                          # 400 MB, sparse: refused by its size, never read
        with open(path, "r+b") as f:
            f.truncate(400 * 2 ** 20)
    else:
        obj = json.loads(path.read_text())
        if how == "bigint":
            obj["metrics"]["main/average/PSNR"] = 10 ** 400
        elif how == "data_string":
            obj["provenance"]["data"] = "embedded"
        path.write_text(json.dumps(obj))
    return path


@pytest.mark.parametrize("hostile", [("deep", "digits"), ("huge", "bigint"), ("data_string", "deep")])
def test_class_of_five_with_hostile_files_gets_a_full_score_sheet(env, capsys, hostile):
    student(env, "alice", full=30.01, no_prompt=29.5)        # everything passes: 2 + 2 + 1
    student(env, "bob", full=31.0, no_prompt=29.5)           # full outside the band: 2 + 1
    student(env, "dan", full=INPUT, no_prompt=INPUT)         # no work: 0
    notebook = {"cells": [{"cell_type": "markdown", "source": ["Gating helps because ..."], "metadata": {
        "nbgrader": {"grade_id": "demo_hypothesis", "solution": True, "grade": True, "points": 1,
                     "locked": False, "schema_version": 3}}}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (env / "class" / "alice" / "01_demo.ipynb").write_text(json.dumps(notebook))
    bad = {name: _hostile_student(env, name, how) for name, how in zip(("carol", "eve"), hostile)}
    code, rows, md = grade(env, env / "class", extra=["--class"])
    assert code == 2                                         # unreadable files; everybody else is graded
    for name, path in bad.items():
        assert rows[(name, "")]["status"] == "error" and str(path) in rows[(name, "")]["details"]
        assert float(rows[(name, "")]["points"]) == 0
    sheet = pd.read_csv(env / "report" / "score_sheet.csv")
    assert list(sheet["student"]) == ["alice", "bob", "carol", "dan", "eve"]
    assert list(sheet["total"]) == [5, 3, 0, 0, 0] and set(sheet["max"]) == {5}
    assert list(sheet["demo"]) == [5, 3, 0, 0, 0]
    notes = dict(zip(sheet["student"], sheet["notes"]))
    assert notes["alice"] == "all checks pass" and "demo/full: fail" in notes["bob"]
    assert "demo/full: no work" in notes["dan"] and all(notes[n].startswith("error: ") for n in bad)
    sheet_md = (env / "report" / "score_sheet.md").read_text()
    assert "| student | demo | total | max | notes |" in sheet_md and "| alice | 5 | 5 | 5 | all checks pass |" in sheet_md
    feedback = {p.name: p.read_text() for p in (env / "report" / "feedback").iterdir()}
    assert sorted(feedback) == ["alice.md", "bob.md", "carol.md", "dan.md", "eve.md"]
    assert "### 01_demo.ipynb: `demo_hypothesis`" in feedback["alice.md"] and \
        "Gating helps because ..." in feedback["alice.md"]
    assert "bob" not in feedback["alice.md"] and "Error (0 points)" in feedback["carol.md"]
    # re-running gives the same files
    before = {p: p.read_bytes() for p in (env / "report").rglob("*") if p.is_file()}
    assert grade(env, env / "class", extra=["--class"])[0] == 2
    assert {p: p.read_bytes() for p in (env / "report").rglob("*") if p.is_file()} == before


def test_usage_errors(env, capsys, monkeypatch):
    sub = student(env, full=30.0, no_prompt=29.5)
    monkeypatch.delenv("RESTORE_REFERENCES", raising=False)
    assert main([str(sub), "--spec", str(env / "demo.yaml")]) == 2
    err = capsys.readouterr().err
    assert "no reference folder: pass --references DIR or set $RESTORE_REFERENCES" in err and "CI examples" in err
    monkeypatch.setenv("RESTORE_REFERENCES", str(env / "results"))
    assert main([str(sub), "--spec", str(env / "demo.yaml"), "--out", str(env / "r")]) == 0
    assert main([str(sub), "--reference", str(env / "nope"), "--spec", str(env / "demo.yaml")]) == 2
    assert "reference folder does not exist" in capsys.readouterr().err
    assert main([str(sub), "--reference", str(env / "results"), "--spec", str(env / "other.yaml")]) == 2
    assert "other.yaml: no such ablation spec" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--out", "x"])
    assert e.value.code == 2


def test_written_answers_from_hostile_notebooks_are_reported_not_fatal(tmp_path):
    from restore_lib.course.grade import collect_answers

    good = {"cells": [7, {"cell_type": "markdown", "metadata": []},
                      {"cell_type": "markdown", "source": "My answer", "metadata": {
                          "nbgrader": {"grade_id": "x_hypothesis", "solution": True, "grade": True}}}]}
    (tmp_path / "a.ipynb").write_text(json.dumps(good))
    (tmp_path / "b.ipynb").write_text(HOSTILE["deep"])
    (tmp_path / "c.ipynb").write_text(json.dumps({"cells": "none"}))
    answers, problems = collect_answers(tmp_path)
    assert answers == [("a.ipynb", "x_hypothesis", "My answer")]
    assert len(problems) == 2 and str(tmp_path / "b.ipynb") in problems[0] and "nested too deeply" in problems[0]
    assert problems[1] == f"{tmp_path / 'c.ipynb'}: not a notebook (no list of cells)"
