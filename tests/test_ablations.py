"""Ablation specs: validation errors that name file and field, order checks, and
the runner on a tiny synthetic notebook in a temporary repo (3 kernel runs)."""
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from restore_lib.course import ablations
from restore_lib.course.ablations import SpecError, Tolerance, list_specs, load_spec, plan_ablation, run_ablation
from restore_lib.course.grade import main as grade_main
from restore_lib.course.reproduce import ParameterError

PARAMS = '''profile = "smoke"
seed = 0
out_dir = "auto"
use_prompt = True
steps = 100
run_ablations = True
fail = False
'''
# writes a schema-v1 metrics.json with plain json (no torch import: the kernel starts fast)
BODY = '''import json, pathlib
if fail:
    raise RuntimeError("planted failure")
value = 30.0 + (0.5 if use_prompt else 0.0)
params = dict(profile=profile, seed=seed, out_dir=out_dir, use_prompt=use_prompt, steps=steps,
              run_ablations=run_ablations, fail=fail)
obj = {"schema_version": 1, "report": "99_demo", "title": "Demo", "profile": profile, "params": params,
       "provenance": {"commit": "0" * 40, "dirty": False, "lib_hash": "x", "device": "cpu", "torch": "-",
                      "python": "-", "seed": seed, "wall_time_s": 0.0,
                      "data": {"name": "toy", "hash": "c0ffee", "split": "test"}},
       "protocol": {"color_space": "rgb", "crop_border": 0, "data_range": 1.0, "ssim_variant": "gaussian"},
       "tables": [{"id": "main", "title": "Main", "columns": ["method", "PSNR"], "rows": [["average", value]],
                   "source": "ours"}],
       "metrics": {"main/average/PSNR": value}, "figures": [], "notes": []}
pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)
pathlib.Path(out_dir, "metrics.json").write_text(json.dumps(obj))
'''
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
  min_gap: 0.2
  values: {full: 30.5, no_prompt: 30.0}
  tolerance: {abs: 0.01, rel: 0.0}
published:
  source: "Demo et al. 2024, Table 3"
  values: {full: 33.1, no_prompt: 32.0}
protocol_keys: [steps]
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(PARAMS)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (root / "notebooks").mkdir()
    nbformat.write(nb, root / "notebooks" / "99_demo.ipynb")
    (root / "configs" / "99_demo").mkdir(parents=True)
    (root / "configs" / "99_demo" / "smoke.yaml").write_text("steps: 7\n")
    (root / "configs" / "ablations").mkdir()
    (root / "configs" / "ablations" / "demo.yaml").write_text(SPEC)
    return root


def write_spec(root: Path, name: str, text: str) -> Path:
    p = root / "configs" / "ablations" / f"{name}.yaml"
    p.write_text(text)
    return p


# ---------------------------------------------------------------------- spec validation
def test_load_by_name_and_path(repo):
    spec = load_spec("demo", root=repo)
    assert spec == load_spec(repo / "configs" / "ablations" / "demo.yaml")
    assert spec.arms == {"full": {"use_prompt": True}, "no_prompt": {"use_prompt": False}}
    assert spec.arm_params("no_prompt") == {"run_ablations": False, "use_prompt": False}
    assert spec.order == ("full", "no_prompt") and spec.min_gap == 0.2
    assert spec.tolerance == Tolerance(rel=0.0, abs=0.01) and spec.protocol_keys == ("steps",)
    assert spec.published == {"full": 33.1, "no_prompt": 32.0} and spec.published_source.startswith("Demo")
    assert "demo" in list_specs(repo)


@pytest.mark.parametrize("edit, message", [
    (("title: Demo ablation\n", "title: Demo ablation\ncolour: red\n"), "unknown field 'colour'"),
    (("order: [full, no_prompt]", "order: [full, no_promt]"), "field 'expect.order': unknown arm(s) no_promt"),
    (("schema_version: 1", "schema_version: 2"), "field 'schema_version': 2 is not supported"),
    (("name: demo", "name: other"), "field 'name': 'other' must equal the file name"),
    (("{abs: 0.01, rel: 0.0}", "{abs: -1}"), "field 'expect.tolerance.abs' must be a number >= 0"),
    (("{abs: 0.01, rel: 0.0}", "{absolute: 1}"), "expect.tolerance.absolute"),
    (("base: {run_ablations: false}", "base: {out_dir: x}"), "field 'base': 'out_dir' is set by the runner"),
    (('  source: "Demo et al. 2024, Table 3"\n', ""), "field 'published.source'"),
    (("no_prompt: {use_prompt: false}", "no_prompt: {use_prompt: true}"), "'full' and 'no_prompt' set the same"),
    (("higher_is_better: true", "higher_is_better: maybe"), "field 'higher_is_better' must be true or false"),
    (("metric: main/average/PSNR\n", ""), "missing field 'metric'"),
    (("values: {full: 30.5, no_prompt: 30.0}", "values: {full: high}"), "field 'expect.values.full' must be a number"),
    (("full: {use_prompt: true}", "full bad: {use_prompt: true}"), "arm name 'full bad'"),
])
def test_spec_errors_name_file_and_field(repo, edit, message):
    assert edit[0] in SPEC
    path = write_spec(repo, "broken_spec", SPEC.replace(*edit).replace("name: demo", "name: broken_spec"))
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert str(path) in str(e.value) and message in str(e.value)
    path.unlink()


def test_missing_spec_lists_available(repo):
    with pytest.raises(SpecError, match="no such ablation spec.*demo"):
        load_spec("nope", root=repo)


def test_order_check_directions():
    s = ablations.AblationSpec(path=Path("x.yaml"), name="x", title="t", notebook="n",
                               arms={"a": {}, "b": {"k": 1}, "c": {"k": 2}}, metric="m", higher_is_better=False,
                               order=("a", "b", "c"), min_gap=0.5)
    assert s.check_order({"a": 1.0, "b": 1.5, "c": 2.5}).ok            # lower is better, gaps 0.5 and 1.0
    bad = s.check_order({"a": 1.0, "b": 1.4, "c": 2.5})
    assert not bad.ok and "a vs b: margin +0.4 (needs >= 0.5) VIOLATED" in bad.details
    assert not s.check_order({"a": 1.0, "b": 1.5}).ok
    tie = ablations.AblationSpec(path=Path("x.yaml"), name="x", title="t", notebook="n", arms={"a": {}, "b": {"k": 1}},
                                 metric="m", higher_is_better=True, order=("a", "b"))
    assert not tie.check_order({"a": 2.0, "b": 2.0}).ok and tie.check_order({"a": 2.1, "b": 2.0}).ok


# ---------------------------------------------------------------------- parameters, before running
def test_plan_merges_profile_base_arm(repo):
    runs = plan_ablation(load_spec("demo", root=repo), root=repo)
    assert [r.arm for r in runs] == ["full", "no_prompt"]
    p = runs[1].params
    assert p["steps"] == 7 and p["profile"] == "smoke" and p["run_ablations"] is False and p["use_prompt"] is False
    assert p["out_dir"] == str(repo / "results" / "ablations" / "demo" / "no_prompt")


@pytest.mark.parametrize("edit, where", [
    (("no_prompt: {use_prompt: false}", "no_prompt: {use_promt: false}"),
     "field 'arms.no_prompt': unknown parameter(s) use_promt"),
    (("base: {run_ablations: false}", "base: {run_ablation: false}"),
     "field 'base': unknown parameter(s) run_ablation"),
    (("protocol_keys: [steps]", "protocol_keys: [step]"), "field 'protocol_keys': unknown parameter(s) step"),
])
def test_unknown_parameter_stops_before_running(repo, capsys, edit, where):
    write_spec(repo, "typo", SPEC.replace("name: demo", "name: typo").replace(*edit))
    assert run_ablation("typo", root=repo) == 2
    err = capsys.readouterr().err
    assert str(repo / "configs" / "ablations" / "typo.yaml") in err and where in err and "known: " in err
    assert not (repo / "results" / "ablations" / "typo").exists()
    with pytest.raises(ParameterError):
        plan_ablation(load_spec("typo", root=repo), root=repo)


def fake_record(arm: str, value: float, seed: int) -> dict:
    """A metrics.json like the one the demo notebook's BODY writes (without running it)."""
    params = dict(profile="smoke", seed=seed, out_dir="x", use_prompt=arm == "full", steps=7, run_ablations=False,
                  fail=False)
    return {"schema_version": 1, "report": "99_demo", "title": "Demo", "profile": "smoke", "params": params,
            "provenance": {"commit": "0" * 40, "dirty": False, "lib_hash": "x", "device": "cpu", "torch": "-",
                           "python": "-", "seed": seed, "wall_time_s": 0.0, "started": f"s{arm}{seed}",
                           "data": {"name": "toy", "hash": "c0ffee", "split": "test"}},
            "protocol": {"color_space": "rgb", "crop_border": 0, "data_range": 1.0, "ssim_variant": "gaussian"},
            "tables": [{"id": "main", "title": "Main", "columns": ["method", "PSNR"], "rows": [["average", value]],
                        "source": "ours"}],
            "metrics": {"main/average/PSNR": value}, "figures": [], "notes": []}


def write_references(base: Path, values: dict, seeds=(0, 1, 2)) -> Path:
    """Reference records of demo's arms at ``seeds`` (small per-seed noise around ``values``)."""
    for arm, v in values.items():
        d = base / "ablations" / "demo" / arm
        for k in seeds:
            path = d / "metrics.json" if k == 0 else d / "seeds" / f"seed{k}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(fake_record(arm, v + (0.0, 0.01, -0.01)[k], k)))
    return base


def test_check_validates_metric_keys_types_and_order_against_references(repo, tmp_path, capsys):
    spec = repo / "configs" / "ablations" / "demo.yaml"
    empty = tmp_path / "none"
    empty.mkdir()
    assert ablations.main(["--check", "demo", "--root", str(repo), "--references", str(empty)]) == 2
    assert "no recorded results of 99_demo to check the metric keys against" in capsys.readouterr().err
    refs = write_references(tmp_path / "refs", {"full": 30.5, "no_prompt": 30.0})
    assert ablations.main(["--check", "demo", "--root", str(repo), "--references", str(refs)]) == 0
    assert "(ok)" in capsys.readouterr().out
    cases = [(("metric: main/average/PSNR", "metric: main/mean/PSNR"),
              "field 'metric': 'main/mean/PSNR' is not a metric that 99_demo records"),
             (("higher_is_better: true", "higher_is_better: true\ninput_metric: main/average/PSNR input"),
              "field 'input_metric': 'main/average/PSNR input' is not a metric that 99_demo records"),
             (("order: [full, no_prompt]", "order: [no_prompt, full]"),
              "field 'expect.order': no_prompt > full is not supported by the references: full better than "
              "no_prompt beyond noise")]
    for edit, needle in cases:
        assert edit[0] in SPEC
        spec.write_text(SPEC.replace(*edit))
        try:
            assert ablations.main(["--check", "demo", "--root", str(repo), "--references", str(refs)]) == 2
        finally:
            spec.write_text(SPEC)
        err = capsys.readouterr().err
        assert str(spec) in err and needle in err, err
    one = write_references(tmp_path / "one", {"full": 30.5, "no_prompt": 30.0}, seeds=(0,))
    assert ablations.main(["--check", "demo", "--root", str(repo), "--references", str(one)]) == 2
    err = capsys.readouterr().err
    assert "full > no_prompt is not supported by the references: full vs no_prompt: unknown, 1 common reference " \
           "seed(s), needs >= 3 (run `python -m restore_lib.course.ablations run demo --seeds 0 1 2`)" in err
    same = write_references(tmp_path / "same", {"full": 30.0, "no_prompt": 30.0})
    assert ablations.main(["--check", "demo", "--root", str(repo), "--references", str(same)]) == 2
    assert "full vs no_prompt: indistinguishable at this profile" in capsys.readouterr().err


def test_check_types_of_string_parameters(repo, tmp_path, capsys):
    """A value whose type differs from the parameters cell's default (`b_loss: 12` for a string)."""
    refs = write_references(tmp_path / "refs", {"full": 30.5, "no_prompt": 30.0})
    nb = repo / "notebooks" / "99_demo.ipynb"
    original = nb.read_text()
    nb.write_text(original.replace('run_ablations = True', 'run_ablations = True\\nloss = \\"l1\\"'))
    spec = write_spec(repo, "typed_loss", SPEC.replace("name: demo", "name: typed_loss").replace(
        "no_prompt: {use_prompt: false}", "no_prompt: {use_prompt: false, loss: 12}"))
    try:
        shutil.copytree(refs / "ablations" / "demo", refs / "ablations" / "typed_loss")
        assert ablations.main(["--check", "typed_loss", "--root", str(repo), "--references", str(refs)]) == 2
    finally:
        nb.write_text(original)
        spec.unlink()
    err = capsys.readouterr().err
    assert "typed_loss.yaml (arm 'no_prompt')" in err and 'loss: 12 is int, expected str (default "l1")' in err


def test_cli_check_and_list(repo, capsys, tmp_path):
    refs = write_references(tmp_path / "refs", {"full": 30.5, "no_prompt": 30.0})
    assert ablations.main(["--check", "demo", "--root", str(repo), "--references", str(refs)]) == 0
    assert "demo: Demo ablation -- notebook 99_demo, arms full, no_prompt, metric main/average/PSNR (ok)" in \
        capsys.readouterr().out
    write_spec(repo, "typo2", SPEC.replace("name: demo", "name: typo2").replace("steps]", "stepz]"))
    assert ablations.main(["--check", "demo", "typo2", "--root", str(repo), "--references", str(refs)]) == 2
    assert "typo2.yaml: field 'protocol_keys': unknown parameter(s) stepz" in capsys.readouterr().err
    (repo / "configs" / "ablations" / "typo2.yaml").unlink()
    # an arm value of the wrong type is caught by --check, naming the spec, the arm and the parameter
    write_spec(repo, "typed", SPEC.replace("name: demo", "name: typed").replace("no_prompt: {use_prompt: false}",
                                                                              "no_prompt: {use_prompt: 12}"))
    assert ablations.main(["--check", "typed", "--root", str(repo), "--references", str(refs)]) == 2
    err = capsys.readouterr().err
    assert "typed.yaml (arm 'no_prompt')" in err and "use_prompt: 12 is int, expected bool" in err
    (repo / "configs" / "ablations" / "typed.yaml").unlink()


def test_missing_notebook(repo, capsys):
    write_spec(repo, "nonb", SPEC.replace("name: demo", "name: nonb").replace("notebook: 99_demo", "notebook: 98_x"))
    assert run_ablation("nonb", root=repo) == 2
    assert "field 'notebook'" in capsys.readouterr().err


# ---------------------------------------------------------------------- running (kernels)
def test_run_ablation_writes_each_arm_and_grades_clean(repo, capsys):
    assert run_ablation("demo", root=repo, timeout=120) == 0
    out = capsys.readouterr().out
    for arm, value in (("full", 30.5), ("no_prompt", 30.0)):
        obj = json.loads((repo / "results" / "ablations" / "demo" / arm / "metrics.json").read_text())
        assert obj["metrics"]["main/average/PSNR"] == value
        assert obj["params"]["steps"] == 7 and obj["params"]["run_ablations"] is False  # profile, then base
        assert obj["params"]["use_prompt"] is (arm == "full")                              # then the arm
        assert (repo / "results" / "ablations" / "executed" / "demo" / f"{arm}.ipynb").is_file()
    assert "| full | use_prompt=True | 30.50 | 30.50 | yes | 33.10 |" in out
    assert "| no_prompt | use_prompt=False | 30.00 | 30.00 | yes | 32.00 |" in out
    assert "expected order full > no_prompt (min gap 0.2): holds" in out and "Demo et al. 2024" in out
    # the reference run handed in as a submission is a copy
    assert grade_main([str(repo / "results"), "--references", str(repo / "results"), "--spec",
                       str(repo / "configs" / "ablations" / "demo.yaml"), "--out", str(repo / "report")]) == 1
    assert "0 pass, 0 fail, 2 copied" in capsys.readouterr().out


def test_run_at_seeds_writes_seed_records_and_spread(repo, capsys, monkeypatch):
    """`ablations run demo --seeds 0 1 2`: each arm's seed-0 run is its metrics.json, the others go to
    <arm>/seeds/seed<k>.json (stale seeds dropped) and <arm>/seed_spread.json summarizes them."""
    executed = []

    def fake_execute(nb, run, profile, timeout, log_output):     # no kernel: write what the notebook would
        executed.append((run.arm, run.params["seed"], run.staged))
        run.out_dir.mkdir(parents=True, exist_ok=True)
        value = (30.5 if run.arm == "full" else 30.0) + 0.01 * run.params["seed"]
        obj = fake_record(run.arm, value, run.params["seed"])
        obj["params"]["out_dir"] = str(run.out_dir)
        (run.out_dir / "metrics.json").write_text(json.dumps(obj))
        return run.out_dir / "metrics.json"

    monkeypatch.setattr(ablations, "_execute_arm", fake_execute)
    stale = repo / "results" / "ablations" / "demo" / "full" / "seeds" / "seed9.json"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("{}")
    assert ablations.main(["run", "demo", "--seeds", "0", "1", "2", "--root", str(repo)]) == 0
    assert executed == [("full", 0, False), ("full", 1, True), ("full", 2, True),
                        ("no_prompt", 0, False), ("no_prompt", 1, True), ("no_prompt", 2, True)]
    for arm, base in (("full", 30.5), ("no_prompt", 30.0)):
        d = repo / "results" / "ablations" / "demo" / arm
        assert json.loads((d / "metrics.json").read_text())["provenance"]["seed"] == 0
        assert sorted(p.name for p in (d / "seeds").iterdir()) == ["seed1.json", "seed2.json"]
        spread = json.loads((d / "seed_spread.json").read_text())
        assert spread["seeds"] == [0, 1, 2]
        assert spread["metrics"]["main/average/PSNR"]["values"] == pytest.approx([base, base + 0.01, base + 0.02])
    assert "[demo/full] seeds 0, 1, 2 -> " in capsys.readouterr().out
    # the spec's seed must be among them
    assert ablations.main(["run", "demo", "--seeds", "1", "2", "--root", str(repo)]) == 2
    assert "--seeds 1 2: must include 0, the seed of" in capsys.readouterr().err


def test_failing_arm_is_named_and_returns_1(repo, capsys):
    text = SPEC.replace("name: demo", "name: broken").split("expect:")[0]
    text = text.replace("no_prompt: {use_prompt: false}", "crash: {fail: true}")
    text = text.replace("  full: {use_prompt: true}\n", "")
    write_spec(repo, "broken", text)
    assert run_ablation("broken", root=repo, timeout=120) == 1
    err = capsys.readouterr().err
    assert "99_demo.ipynb (arm 'crash'): cell 1" in err and "planted failure" in err


def test_unmet_expectations_return_1(repo, capsys, monkeypatch):
    """Summary logic, with the notebook execution replaced by a writer of known values."""
    def fake(nb, run, profile, timeout, log_output):
        obj = {"schema_version": 1, "report": "99_demo", "title": "Demo", "profile": profile, "params": run.params,
               "provenance": {"commit": "0", "dirty": False, "lib_hash": "x", "device": "cpu", "torch": "-",
                              "python": "-", "seed": 0, "wall_time_s": 0.0,
                              "data": {"name": "toy", "hash": "c0ffee", "split": "test"}},
               "protocol": {"color_space": "rgb", "crop_border": 0, "data_range": 1.0, "ssim_variant": "gaussian"},
               "tables": [], "metrics": {"main/average/PSNR": {"full": 30.1, "no_prompt": 30.0}[run.arm]},
               "figures": []}
        run.out_dir.mkdir(parents=True, exist_ok=True)
        (run.out_dir / "metrics.json").write_text(json.dumps(obj))
        return run.out_dir / "metrics.json"

    write_spec(repo, "strict", SPEC.replace("name: demo", "name: strict"))
    monkeypatch.setattr(ablations, "_execute_arm", fake)
    assert run_ablation("strict", root=repo) == 1
    cap = capsys.readouterr()
    assert "| full | use_prompt=True | 30.10 | 30.50 | NO |" in cap.out
    assert "DOES NOT HOLD" in cap.out and "margin +0.1 (needs >= 0.2) VIOLATED" in cap.out
    assert "values of full outside max(0 x |reference|, 0.01)" in cap.err
