"""Every command of docs/instructors.md, run as written (in a scratch folder, with fake notebook runs: the
arms' "runs" write records derived from the committed reference results instead of executing the notebook),
and the spec, snippets and hidden-test example it shows."""
import copy
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from restore_lib.course import ablations, assignments, grade, weights_check
from restore_lib.course.ablations import check_spec, load_spec
from restore_lib.course.results import GIT_STATE_ENV
from restore_lib.utils import repo_root

ROOT = repo_root()
DOC = ROOT / "docs" / "instructors.md"
TEXT = DOC.read_text(encoding="utf-8")
NB = "01_promptir_rain_snow"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", TEXT, re.S)


def doc_commands() -> list[list[str]]:
    cmds = []
    for block in blocks("bash"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                cmds.append(words)
    return cmds


def test_the_docs_have_the_commands_this_test_runs():
    """A command added to the docs without being run here fails this test."""
    kinds = [_kind(c) for c in doc_commands()]
    assert kinds == ["ablations --check", "ablations run", "ablations run", "grade", "grade --class",
                     "make assignments", "assignments", "hidden tests"], kinds


def _kind(words: list[str]) -> str:
    while words and "=" in words[0]:
        words = words[1:]
    if words[:2] == ["make", "assignments"]:
        return "make assignments"
    assert words[:2] == [".venv/bin/python", "-m"], words
    mod = words[2]
    if mod == "pytest":
        return "hidden tests"
    name = mod.rsplit(".", 1)[-1]
    if name == "ablations":
        return "ablations run" if words[3] == "run" else "ablations --check"
    return name + (" --class" if "--class" in words else "")


def test_minimal_spec_in_the_docs_passes_check(tmp_path):
    (spec_text,) = [b for b in blocks("yaml")]
    raw = yaml.safe_load(spec_text)
    path = tmp_path / f"{raw['name']}.yaml"
    path.write_text(spec_text)
    assert check_spec(load_spec(path), ROOT) == []


def test_notebook_snippet_marks_the_psnr_cell(tmp_path, monkeypatch):
    (snippet,) = [b for b in blocks("python") if "nbformat.write" in b]
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / f"{NB}.ipynb", tmp_path / "notebooks")
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, str(DOC), "exec"), {})
    nb = json.loads((tmp_path / "notebooks" / f"{NB}.ipynb").read_text())
    marked = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "psnr"]
    assert len(marked) == 1 and "".join(marked[0]["source"]).startswith("def psnr(")
    assert marked[0]["metadata"]["tags"].count("student-impl") >= 1


def test_hidden_test_example_passes_on_the_solution():
    (example,) = [b for b in blocks("python") if "def test_psnr_matches_library" in b]
    ns: dict = {}
    exec(compile(example, str(DOC), "exec"), ns)
    ns["test_psnr_matches_library"]()


# ---------------------------------------------------------------------- the commands, in order
def _scratch_repo(path: Path) -> Path:
    """Notebook 01, its profiles and the committed promptir_loss spec: what the runner reads."""
    (path / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / f"{NB}.ipynb", path / "notebooks")
    shutil.copytree(ROOT / "configs" / NB, path / "configs" / NB)
    (path / "configs" / "ablations").mkdir()
    shutil.copy(ROOT / "configs" / "ablations" / "promptir_loss.yaml", path / "configs" / "ablations")
    return path


_stamps = iter(range(10 ** 6))


def fake_run(out_dir: Path, arm: str, params: dict, offset: float = 0.0) -> Path:
    """What the notebook would record for ``arm`` with ``params``: the committed reference record of the
    arm, at the run's seed (its metric moved by a few hundredths of a dB per seed) and profile."""
    spec = load_spec("promptir_loss", ROOT)
    obj = copy.deepcopy(json.loads((ROOT / "results" / "ablations" / "promptir_loss" / arm / "metrics.json")
                                   .read_text()))
    seed = params["seed"]
    delta = (0.0, 0.03, -0.02)[seed] + offset
    obj["params"].update(params, out_dir=str(out_dir))
    obj["profile"] = params["profile"]
    obj["provenance"].update(seed=seed, started=f"2026-06-01T00:00:{next(_stamps):06d}", dirty=False)  # a clean run
    obj["metrics"][spec.metric] += delta
    for t in obj["tables"]:
        if t["id"] == "main":
            for r in t["rows"]:
                if r[0] == "average":
                    r[t["columns"].index("PSNR PromptIR (B)")] += delta
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(obj))
    return out_dir / "metrics.json"


@pytest.fixture()
def work(tmp_path, monkeypatch):
    monkeypatch.setenv(GIT_STATE_ENV, json.dumps({"commit": "f" * 40, "dirty": False}))
    monkeypatch.setattr(ablations, "_execute_arm",
                        lambda nb, run, profile, timeout, log: fake_run(run.out_dir, run.arm, run.params))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _students(work: Path) -> None:
    """alice re-ran every arm at seed 0 (and returns the solution notebooks); bob handed in the input's level."""
    spec = load_spec("promptir_loss", ROOT)
    for arm in spec.arms:
        params = {"seed": 0, "profile": "smoke", **spec.arm_params(arm)}
        fake_run(work / "submissions" / "alice" / "results" / "ablations" / "promptir_loss" / arm, arm, params,
                 offset=0.01)
        ref = json.loads((ROOT / "results" / "ablations" / "promptir_loss" / arm / "metrics.json").read_text())
        bob = fake_run(work / "submissions" / "bob" / "ablations" / "promptir_loss" / arm, arm, params,
                       offset=ref["metrics"][spec.input_metric] - ref["metrics"][spec.metric])
        assert json.loads(bob.read_text())["metrics"][spec.metric] == pytest.approx(
            ref["metrics"][spec.input_metric])
    for nb in (ROOT / "notebooks").glob("0[1-5]_*.ipynb"):
        shutil.copy(nb, work / "submissions" / "alice")


def test_every_command_of_the_docs_runs(work, monkeypatch, capsys):
    import torch

    repos = {}
    _students(work)
    shutil.copytree(ROOT / "notebooks", work / "notebooks")    # for the `notebooks/01_*.ipynb` of a command
    calls = []
    monkeypatch.setattr(assignments, "execute_until_exercise", lambda path, **kw: calls.append(path) or 10)
    for words in doc_commands():
        kind = _kind(words)
        env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
        words = [w for w in words if w not in {f"{k}={v}" for k, v in env.items()}]
        args = [a for w in words[3:] for a in (sorted(glob.glob(w)) if "*" in w else [w])]
        if kind == "ablations --check":
            assert ablations.main(args) == 0, capsys.readouterr().err
        elif kind == "ablations run":
            profile = args[args.index("--profile") + 1] if "--profile" in args else "smoke"
            monkeypatch.setattr(torch.cuda, "is_available", lambda: True)     # the gpu profile needs CUDA
            # and the reports' pretrained weights (their refusal is tested in test_weights_policy.py)
            monkeypatch.setattr(weights_check, "missing_weights", lambda nb, params: [])
            repos[profile] = _scratch_repo(work / f"repo_{profile}")
            assert ablations.main([*args, "--root", str(repos[profile])]) == 0, capsys.readouterr().err
            arm_dir = repos[profile] / "results" / "ablations" / "promptir_loss" / "l1"
            assert sorted(p.name for p in (arm_dir / "seeds").iterdir()) == ["seed1.json", "seed2.json"]
            assert json.loads((arm_dir / "metrics.json").read_text())["profile"] == profile
            if profile == "smoke":   # the instructor copies the references out of the students' reach
                shutil.copytree(repos[profile] / "results", work / "references")
        elif kind == "grade":
            assert grade.main(args) == 0, (work / "reports" / "alice" / "grade_report.md").read_text()
            assert "**Overall: PASS**" in (work / "reports" / "alice" / "grade_report.md").read_text()
        elif kind == "grade --class":
            assert grade.main(args) == 1                      # bob did no work
            sheet = (work / "reports" / "score_sheet.csv").read_text().splitlines()
            assert sheet[1].startswith("alice,") and sheet[2].startswith("bob,")
            assert "no work" in (work / "reports" / "feedback" / "bob.md").read_text()
        elif kind == "make assignments":
            recipe = re.search(r"^assignments:.*\n\t(.*)$", (ROOT / "Makefile").read_text(), re.M).group(1)
            assert recipe == "$(PY) -m restore_lib.course.assignments --out assignments"
            assert assignments.main(["--out", "assignments"]) == 0
            assert (work / "assignments" / f"{NB}.ipynb").is_file()
        elif kind == "assignments":
            assert assignments.main(args) == 0
            assert calls == [Path("assignments") / f"{NB}.ipynb"]
        elif kind == "hidden tests":
            run_env = {**os.environ, **{k: str(work / v) for k, v in env.items()}, "PYTHONPATH": str(ROOT)}
            r = subprocess.run([sys.executable, *words[1:], "-p", "no:cacheprovider"], cwd=ROOT, env=run_env,
                               capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
            assert " passed" in r.stdout and "failed" not in r.stdout
    assert set(repos) == {"smoke", "gpu"}
