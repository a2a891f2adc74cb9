"""The papermill runner: parameter checks, failure reporting, metrics validation, README."""
import json

import nbformat
import pytest

from restore_lib.course.reproduce import (NotebookFailed, ParameterError, load_profile_params, run_notebook,
                                   write_results_readme)

PARAMS = '''profile = "smoke"
seed = 0
out_dir = "auto"
fail = False
'''
BODY = '''from restore_lib.course.results import RunRecorder
if fail:
    raise RuntimeError("planted failure")
rec = RunRecorder("99_demo", "Demo notebook", params=dict(profile=profile, seed=seed), out_dir=out_dir,
                  seed=seed, device="cpu", profile=profile)
rec.add_table("main", "Main", (["method", "PSNR"], [["ours", 27.0 + seed]]))
rec.save()
import os
if os.environ.get("RESTORE_RUNS_DIR"):     # where this run keeps its checkpoints
    from restore_lib.utils import runs_dir
    runs_dir("99_demo").mkdir(parents=True, exist_ok=True)
    (runs_dir("99_demo") / "seed.txt").write_text(str(seed))
'''


@pytest.fixture()
def fake_repo(tmp_path):
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(PARAMS)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nb, tmp_path / "notebooks" / "99_demo.ipynb")
    cfg = tmp_path / "configs" / "99_demo"
    cfg.mkdir(parents=True)
    (cfg / "smoke.yaml").write_text(f"out_dir: {tmp_path / 'results' / '99_demo'}\nseed: 3\n")
    return tmp_path


def test_unknown_parameter_is_an_error(fake_repo):
    (fake_repo / "configs" / "99_demo" / "smoke.yaml").write_text("sed: 3\n")
    with pytest.raises(ParameterError) as e:
        load_profile_params(fake_repo / "notebooks" / "99_demo.ipynb", "smoke", fake_repo)
    assert "sed" in str(e.value) and "seed" in str(e.value) and "smoke.yaml" in str(e.value)


def test_missing_profile_file(fake_repo):
    with pytest.raises(ParameterError, match="no 'gpu' profile"):
        load_profile_params(fake_repo / "notebooks" / "99_demo.ipynb", "gpu", fake_repo)


def test_run_writes_validated_metrics_and_readme(fake_repo):
    nb = fake_repo / "notebooks" / "99_demo.ipynb"
    metrics = run_notebook(nb, "smoke", root=fake_repo)
    assert metrics == fake_repo / "results" / "99_demo" / "metrics.json"
    assert (fake_repo / "results" / "99_demo" / "executed" / "smoke.ipynb").is_file()
    readme = write_results_readme(fake_repo).read_text()
    assert "Demo notebook" in readme and "30.00" in readme


def test_failing_cell_is_named(fake_repo):
    nb = fake_repo / "notebooks" / "99_demo.ipynb"
    params = load_profile_params(nb, "smoke", fake_repo)
    params["fail"] = True
    with pytest.raises(NotebookFailed) as e:
        run_notebook(nb, "smoke", params=params, root=fake_repo)
    msg = str(e.value)
    assert "99_demo.ipynb" in msg and "cell 1 (" in msg and "planted failure" in msg
    assert "from restore_lib.course.results import RunRecorder" in msg


def test_an_edit_to_the_parameters_cell_is_what_runs(fake_repo):
    """A student changes a default in the parameters cell and runs the notebook: the new value is used (no
    injected-parameters cell re-assigns it; the profile YAML only sets what it names)."""
    nb_path = fake_repo / "notebooks" / "99_demo.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("seed = 0", "seed = 5")
    nbformat.write(nb, nb_path)
    (fake_repo / "configs" / "99_demo" / "smoke.yaml").write_text(f"out_dir: {fake_repo / 'results' / '99_demo'}\n")
    metrics = run_notebook(nb_path, "smoke", root=fake_repo)
    record = json.loads(metrics.read_text())
    assert record["params"]["seed"] == 5 and record["metrics"]["main/ours/PSNR"] == 32.0


def test_notebook_that_writes_nothing_fails(fake_repo):
    nb = fake_repo / "notebooks" / "99_demo.ipynb"
    params = load_profile_params(nb, "smoke", fake_repo)
    params["out_dir"] = str(fake_repo / "elsewhere")
    with pytest.raises(NotebookFailed, match="did not write"):
        run_notebook(nb, "smoke", params=params, root=fake_repo)


def test_parallel_jobs_run_every_notebook_and_report_failures(fake_repo, monkeypatch, capsys):
    from restore_lib.course import reproduce

    src = fake_repo / "notebooks" / "99_demo.ipynb"
    (fake_repo / "notebooks" / "98_other.ipynb").write_bytes(src.read_bytes())
    cfg = fake_repo / "configs" / "98_other"
    cfg.mkdir()
    (cfg / "smoke.yaml").write_text(f"out_dir: {fake_repo / 'results' / '98_other'}\nfail: true\n")
    monkeypatch.setattr(reproduce, "repo_root", lambda: fake_repo)
    assert reproduce.main(["--jobs", "2"]) == 1
    err = capsys.readouterr().err
    assert "98_other.ipynb: cell 1" in err and "planted failure" in err
    assert (fake_repo / "results" / "99_demo" / "metrics.json").is_file()  # the other notebook still ran
    (cfg / "smoke.yaml").write_text(f"out_dir: {fake_repo / 'results' / '98_other'}\n")
    assert reproduce.main(["--jobs", "2"]) == 0
    assert (fake_repo / "results" / "98_other" / "metrics.json").is_file()
    with pytest.raises(SystemExit):
        reproduce.main(["--jobs", "0"])


def test_previous_wall_time_orders_parallel_runs(fake_repo):
    from restore_lib.course.reproduce import previous_wall_time

    nb = fake_repo / "notebooks" / "99_demo.ipynb"
    assert previous_wall_time(nb, "smoke", fake_repo) == 0.0  # never run
    metrics = run_notebook(nb, "smoke", root=fake_repo)
    obj = json.loads(metrics.read_text())
    obj["provenance"]["wall_time_s"] = 12.5
    metrics.write_text(json.dumps(obj))
    assert previous_wall_time(nb, "smoke", fake_repo) == 12.5
    (fake_repo / "results" / "99_demo" / "metrics.json").write_text("{broken")
    assert previous_wall_time(nb, "smoke", fake_repo) == 0.0


def test_seed_sweep_records_every_seed_and_their_spread(fake_repo, monkeypatch):
    from restore_lib.course import reproduce
    from restore_lib.course.results import load_seed_spread, seed_spread

    monkeypatch.setattr(reproduce, "repo_root", lambda: fake_repo)
    monkeypatch.delenv("RESTORE_RUNS_DIR", raising=False)
    assert reproduce.main(["--seeds", "3", "5", "4", "--jobs", "2"]) == 0
    results = fake_repo / "results" / "99_demo"
    assert json.loads((results / "metrics.json").read_text())["provenance"]["seed"] == 3   # the profile's seed
    assert sorted(p.name for p in (results / "seeds").iterdir()) == ["seed4.json", "seed5.json"]
    spread = seed_spread("99_demo", "main/ours/PSNR", root=fake_repo)
    assert spread.seeds == (3, 4, 5) and spread.values == (30.0, 31.0, 32.0)
    assert spread.mean == 31.0 and spread.std == pytest.approx(1.0) and (spread.min, spread.max) == (30.0, 32.0)
    assert spread.tolerance(3.0, floor=0.1) == pytest.approx(3.0) and spread.tolerance(3.0, floor=5.0) == 5.0
    assert [r["seed"] for r in load_seed_spread("99_demo", root=fake_repo)["runs"]] == [3, 4, 5]
    # each other seed kept its checkpoints apart, under build/
    for s in (4, 5):
        assert (fake_repo / "build" / "seeds" / "smoke" / f"seed{s}" / "runs" / "99_demo" / "seed.txt").read_text() \
            == str(s)
    # a narrower sweep drops the records of seeds it no longer covers
    assert reproduce.main(["--seeds", "3", "4"]) == 0
    assert sorted(p.name for p in (results / "seeds").iterdir()) == ["seed4.json"]
    assert seed_spread("99_demo", "main/ours/PSNR", root=fake_repo).seeds == (3, 4)


def test_seed_sweep_must_include_the_recorded_seed(fake_repo, monkeypatch):
    from restore_lib.course import reproduce

    monkeypatch.setattr(reproduce, "repo_root", lambda: fake_repo)
    with pytest.raises(ParameterError, match="must include 3.*99_demo.ipynb"):
        reproduce.main(["--seeds", "0", "1"])
    assert not (fake_repo / "results" / "99_demo").exists()     # nothing ran
    with pytest.raises(SystemExit):
        reproduce.main(["--seeds", "3"])


def test_failed_seed_run_leaves_the_recorded_spread_alone(fake_repo, monkeypatch):
    from restore_lib.course import reproduce

    monkeypatch.setattr(reproduce, "repo_root", lambda: fake_repo)
    assert reproduce.main(["--seeds", "3", "4"]) == 0
    spread = fake_repo / "results" / "99_demo" / "seed_spread.json"
    before = spread.read_bytes()
    cfg = fake_repo / "configs" / "99_demo" / "smoke.yaml"
    cfg.write_text(cfg.read_text() + "fail: true\n")
    assert reproduce.main(["--seeds", "3", "4"]) == 1
    assert spread.read_bytes() == before


def test_seed_spread_errors_name_the_file(tmp_path):
    from restore_lib.course.results import SeedSpreadError, seed_spread

    with pytest.raises(SeedSpreadError, match="seed_spread.json: no seed spread recorded"):
        seed_spread("99_demo", "main/ours/PSNR", root=tmp_path)


@pytest.mark.parametrize("cell, timeout, expected", [
    ("import time\ntime.sleep(120)", 20, "ran past the per-cell timeout of 20 s"),
    ("import os\nos._exit(1)", 60, "lost its kernel"),
], ids=["timeout", "dead-kernel"])
def test_timeout_or_dead_kernel_is_a_named_failure_and_the_others_still_run(fake_repo, monkeypatch, capsys, cell,
                                                                             timeout, expected):
    from restore_lib.course import reproduce

    nb = nbformat.read(fake_repo / "notebooks" / "99_demo.ipynb", as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell(cell))
    nbformat.write(nb, fake_repo / "notebooks" / "97_hangs.ipynb")
    cfg = fake_repo / "configs" / "97_hangs"
    cfg.mkdir()
    (cfg / "smoke.yaml").write_text(f"out_dir: {fake_repo / 'results' / '97_hangs'}\n")
    monkeypatch.setattr(reproduce, "repo_root", lambda: fake_repo)
    assert reproduce.main(["--timeout", str(timeout)]) == 1
    err = capsys.readouterr().err
    assert "97_hangs.ipynb: cell 1 (" in err and expected in err, err
    assert (fake_repo / "results" / "99_demo" / "metrics.json").is_file()    # the next notebook still ran
    assert "Demo notebook" in (fake_repo / "results" / "README.md").read_text()   # and the README was rebuilt


@pytest.mark.parametrize("line, expected", [
    ('seed: "abc"', "seed: 'abc' is str, expected int"),
    ("seed: 1.5", "seed: 1.5 is float, expected int"),
    ("fail: 1", "fail: 1 is int, expected bool"),
    ("seed: true", "seed: True is bool, expected int"),
])
def test_profile_values_are_type_checked_before_anything_runs(fake_repo, line, expected):
    cfg = fake_repo / "configs" / "99_demo" / "smoke.yaml"
    cfg.write_text(f"out_dir: {fake_repo / 'results' / '99_demo'}\n{line}\n")
    with pytest.raises(ParameterError) as e:
        load_profile_params(fake_repo / "notebooks" / "99_demo.ipynb", "smoke", fake_repo)
    assert str(cfg) in str(e.value) and expected in str(e.value)


def test_every_committed_profile_passes_the_type_check():
    """Every YAML file of a notebook's configs folder is a profile that type-checks, or its published figures."""
    from restore_lib.course.reproduce import list_notebooks
    from restore_lib.course.runner import PROFILES
    from restore_lib.utils import repo_root

    for nb in list_notebooks():
        for cfg in sorted((repo_root() / "configs" / nb.stem).glob("*.yaml")):
            if cfg.stem == "published":
                continue                  # restore_lib.course.published; tests/test_published.py
            assert cfg.stem in PROFILES, f"{cfg}: neither a profile ({', '.join(PROFILES)}) nor published.yaml"
            load_profile_params(nb, cfg.stem, repo_root())


def _spread_file(root, values_a, values_b):
    """A results/99_demo/seed_spread.json with metrics a and b measured at seeds 0, 1, 2."""
    from restore_lib.course.results import summarize_seed_runs
    from restore_lib.utils import atomic_write_json

    records = []
    for seed, (a, b) in enumerate(zip(values_a, values_b)):
        records.append({"report": "99_demo", "profile": "smoke", "metrics": {"t/a/PSNR": a, "t/b/PSNR": b},
                        "provenance": {"seed": seed, "started": f"t{seed}", "data": {"hash": "h"}}})
    atomic_write_json(root / "results" / "99_demo" / "seed_spread.json", summarize_seed_runs(records))


@pytest.mark.parametrize("a, b, beyond", [
    ([30.0, 30.2, 30.1], [29.0, 29.1, 29.05], True),      # every seed agrees, far outside the spread
    ([30.0, 29.0, 30.5], [29.8, 29.6, 29.7], False),     # one seed disagrees on the sign
    ([30.3, 29.9, 30.6], [29.8, 29.8, 29.8], False),     # same sign, but the mean is within 3 standard errors
])
def test_paired_difference_calls_a_difference_real_only_beyond_noise(tmp_path, a, b, beyond):
    from restore_lib.course.results import paired_difference

    _spread_file(tmp_path, a, b)
    d = paired_difference("99_demo", "t/a/PSNR", "t/b/PSNR", root=tmp_path)
    assert d.values == pytest.approx([x - y for x, y in zip(a, b)])
    assert d.beyond_noise is beyond
    assert ("beyond noise" if beyond else "within noise") in d.verdict()


def test_results_readme_shows_the_seed_spread(fake_repo, monkeypatch):
    from restore_lib.course import reproduce

    monkeypatch.setattr(reproduce, "repo_root", lambda: fake_repo)
    assert reproduce.main(["--seeds", "3", "4", "5"]) == 0
    text = (fake_repo / "results" / "README.md").read_text()
    assert "## Seed spread (smoke profile)" in text and "### 99_demo: seed spread (3 seeds: 3, 4, 5)" in text
    assert "| main/ours/PSNR | 30.00 | 31.00 | 32.00 | 31.00 | 1.000 | 30.00–32.00 |" in text
    # a recorded run newer than the spread is said, not shown as if it belonged to it
    assert reproduce.main([]) == 0
    assert "99_demo: the recorded run is newer than its seed spread" in (fake_repo / "results" / "README.md").read_text()


def test_a_kernel_that_dies_while_starting_is_started_again(fake_repo, monkeypatch):
    import papermill

    real, calls = papermill.execute_notebook, []

    def flaky(*args, **kwargs):      # the first kernel loses a port race, as two kernels started at once can
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(*args, **kwargs)

    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    assert run_notebook(fake_repo / "notebooks" / "99_demo.ipynb", "smoke", root=fake_repo).is_file()
    assert len(calls) == 2

    def always(*args, **kwargs):
        raise RuntimeError("Kernel died before replying to kernel_info")

    monkeypatch.setattr(papermill, "execute_notebook", always)
    with pytest.raises(NotebookFailed, match=r"99_demo.ipynb: no kernel could be started \(3 tries\)"):
        run_notebook(fake_repo / "notebooks" / "99_demo.ipynb", "smoke", root=fake_repo)


@pytest.mark.parametrize("argv, expected", [
    (["--profile", "smoke"], 3600),            # a smoke cell that runs an hour is stuck
    (["--profile", "gpu"], None),              # a gpu cell trains for days: no limit
    (["--profile", "gpu", "--timeout", "7200"], 7200),
    (["--profile", "smoke", "--timeout", "60"], 60),
])
def test_per_cell_timeout_of_each_profile(fake_repo, monkeypatch, argv, expected):
    from restore_lib.course import reproduce

    (fake_repo / "configs" / "99_demo" / "gpu.yaml").write_text("seed: 3\n")
    monkeypatch.setattr(reproduce, "repo_root", lambda: fake_repo)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    seen = []

    def plans_run(plans, *, jobs, timeout, root, log_output=False):
        seen.append((timeout, [(p.notebook.name, p.profile) for p in plans]))
        return iter(())

    monkeypatch.setattr(reproduce, "execute_plans", plans_run)
    assert reproduce.main(argv) == 0
    assert seen == [(expected, [("99_demo.ipynb", argv[1])])]
    with pytest.raises(SystemExit):
        reproduce.main([*argv[:2], "--timeout", "0"])


def test_gpu_kernels_run_with_the_strict_weights_policy(fake_repo, monkeypatch):
    import os

    import papermill

    from restore_lib.weights import REQUIRE_ENV

    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    seen = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: seen.append(
        (os.environ.get(REQUIRE_ENV), k["execution_timeout"])))
    nb = fake_repo / "notebooks" / "99_demo.ipynb"
    for profile, timeout in (("gpu", None), ("smoke", 3600)):
        with pytest.raises(NotebookFailed, match="did not write"):
            run_notebook(nb, profile, params={"seed": 0}, timeout=timeout, root=fake_repo)
    assert seen == [("1", None), (None, 3600)] and REQUIRE_ENV not in os.environ
