"""The grader: tolerance, order and protocol checks on metrics.json files written
by the real RunRecorder, the reports' content and the exit codes."""
import csv
import json
from pathlib import Path

import pytest

from restore_lib.course.ablations import Tolerance, load_spec
from restore_lib.course.grade import main
from restore_lib.metrics import MetricSpec
from restore_lib.course.results import RunRecorder

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
expect:
  order: [full, no_prompt]
  min_gap: 0.1
  tolerance: {abs: 0.3}
published:
  source: "Demo et al., Table 1"
  values: {full: 32.0, no_prompt: 31.5}
protocol_keys: [steps]
"""
REFERENCE = {"full": 30.0, "no_prompt": 29.5}
PROTOCOL = MetricSpec(ssim_variant="skimage_default", quantize=False)
DATA = {"name": "embedded-rain", "hash": "a" * 64, "split": "test"}


def write_run(path: Path, arm: str, value: float, *, profile="smoke", protocol=PROTOCOL, data=DATA, steps=100,
              use_prompt=None, table_protocol=None) -> Path:
    """A metrics.json as notebook 99_demo would write it for ``arm``, in folder ``path``."""
    params = {"profile": profile, "seed": 0, "out_dir": str(path), "run_ablations": False, "steps": steps,
              "use_prompt": (arm == "full") if use_prompt is None else use_prompt}
    rec = RunRecorder("99_demo", "Demo", params=params, out_dir=path, seed=0, device="cpu", profile=profile,
                      protocol=protocol)
    rec.set_data(**data)
    rec.add_table("main", "Main", (["method", "PSNR", "SSIM"], [["average", value, 0.9]]),
                  protocol=table_protocol)
    return rec.save()


@pytest.fixture()
def env(tmp_path):
    spec = tmp_path / "demo.yaml"
    spec.write_text(SPEC)
    ref = tmp_path / "results"
    for arm, v in REFERENCE.items():
        write_run(ref / "ablations" / "demo" / arm, arm, v)
    return tmp_path


def grade(env, *subs, extra=(), spec=None):
    out = env / "report"
    code = main([*map(str, subs), "--reference", str(env / "results"), "--spec", str(spec or env / "demo.yaml"),
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


def test_pass(env):
    code, rows, md = grade(env, student(env, full=30.1, no_prompt=29.4))
    assert code == 0
    assert rows[("alice", "full")]["status"] == "pass" and rows[("alice", "no_prompt")]["status"] == "pass"
    assert rows[("alice", "(order)")]["status"] == "pass"
    r = rows[("alice", "full")]
    assert float(r["submitted"]) == 30.1 and float(r["reference"]) == 30.0
    assert float(r["difference"]) == pytest.approx(0.1) and float(r["allowed_difference"]) == 0.3
    assert r["reference_source"] == "reference run" and r["metric"] == "main/average/PSNR"
    assert r["file"].endswith("alice/results/ablations/demo/full/metrics.json")
    assert "**Overall: PASS**" in md and "### Demo ablation (`demo`)" in md
    # the arm row: submitted, reference, source, published, allowed, difference, status
    assert "| `full` | 30.10 | 30.00 | reference run | 32.00 | ±0.3 | +0.1 | **pass** |" in md
    assert "Published values: Demo et al., Table 1 (shown for comparison, not graded)." in md
    assert "full > no_prompt (min gap 0.1): **pass**" in md


def test_fail_out_of_tolerance(env):
    code, rows, md = grade(env, student(env, full=30.5, no_prompt=29.4))
    assert code == 1
    r = rows[("alice", "full")]
    assert r["status"] == "fail" and float(r["difference"]) == pytest.approx(0.5)
    assert "differs from the reference by +0.5" in r["details"] and "max(0 x |reference|, 0.3)" in r["details"]
    assert rows[("alice", "no_prompt")]["status"] == "pass"
    assert "**Overall: FAIL**" in md and "| `full` | 30.50 | 30.00 |" in md and "**fail**" in md


def test_wrong_order_with_values_in_tolerance(env):
    code, rows, md = grade(env, student(env, full=29.8, no_prompt=29.75))
    assert code == 1
    assert rows[("alice", "full")]["status"] == "pass" and rows[("alice", "no_prompt")]["status"] == "pass"
    o = rows[("alice", "(order)")]
    assert o["status"] == "fail" and "margin +0.05 (needs >= 0.1) VIOLATED" in o["details"]
    code, rows, _ = grade(env, student(env, "bob", full=29.4, no_prompt=29.6))  # reversed
    assert rows[("bob", "(order)")]["status"] == "fail" and "margin -0.2" in rows[("bob", "(order)")]["details"]


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
    a = write_run(tmp_path / "x", "full", 30.1)
    b = write_run(tmp_path / "y", "no_prompt", 29.4)
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
    code, rows, md = grade(env, student(env, full=30.2, no_prompt=29.4))
    assert code == 0
    r = rows[("alice", "full")]
    assert r["reference_source"] == "spec expect.values" and "protocol not checked" in r["details"]


def test_no_reference_at_all(env, capsys):
    (env / "results" / "ablations" / "demo" / "no_prompt" / "metrics.json").unlink()
    assert grade(env, student(env, full=30.0, no_prompt=29.5))[0] == 2
    assert "no reference for demo/no_prompt" in capsys.readouterr().err


def test_class_folder(env, capsys):
    student(env, "alice", full=30.1, no_prompt=29.4)
    student(env, "bob", full=31.0, no_prompt=29.4)
    carol = student(env, "carol", full=30.0, no_prompt=29.5)
    (carol / "results" / "ablations" / "demo" / "full" / "metrics.json").write_text("[]")
    code, rows, md = grade(env, env / "class", extra=["--class"])
    assert code == 2  # carol's file is unreadable; the others are still graded
    assert rows[("alice", "full")]["status"] == "pass" and rows[("bob", "full")]["status"] == "fail"
    carol_row = rows[("carol", "")]
    assert carol_row["status"] == "error" and "top level must be a JSON object" in carol_row["details"]
    for name, verdict in (("alice", "PASS"), ("bob", "FAIL"), ("carol", "FAIL")):
        assert f"## Submission `{name}`: {verdict}" in md
    with open(env / "report" / "grade_report.csv") as f:
        assert next(csv.reader(f)) == ["submission", "ablation", "arm", "metric", "submitted", "reference",
                                       "reference_source", "allowed_difference", "difference", "status", "details",
                                       "file"]


def test_usage_errors(env, capsys):
    sub = student(env, full=30.0, no_prompt=29.5)
    assert main([str(sub), "--reference", str(env / "nope"), "--spec", str(env / "demo.yaml")]) == 2
    assert "reference folder does not exist" in capsys.readouterr().err
    assert main([str(sub), "--reference", str(env / "results"), "--spec", str(env / "other.yaml")]) == 2
    assert "other.yaml: no such ablation spec" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--out", "x"])
    assert e.value.code == 2
