"""Re-execute the notebooks with papermill and regenerate ``results/``.

    python -m restore_lib.reproduce --profile smoke          # every notebook, CPU profile
    python -m restore_lib.reproduce --profile gpu --only 01  # one notebook, full configs
    python -m restore_lib.reproduce --readme-only            # only rebuild results/README.md
    python -m restore_lib.reproduce --profile smoke --update-notebooks   # also refresh committed outputs

For each ``notebooks/NN_name.ipynb`` the parameters come from
``configs/NN_name/<profile>.yaml`` (a flat YAML mapping; every key must be a
parameter of the notebook, or the run stops before executing anything). The
executed copy goes to ``results/NN_name/executed/<profile>.ipynb``
(git-ignored) and the notebook writes ``results/NN_name/metrics.json``
(profile ``smoke``) or ``results/NN_name/<profile>/metrics.json``; the runner
checks that file exists, is new and valid, then rebuilds ``results/README.md``.

A failing notebook is reported with its name and the failing cell, the other
notebooks still run, and the exit code is non-zero. The ``gpu`` profile
refuses to run without CUDA (it records nothing rather than falling back to
the CPU).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import yaml

from .results import MetricsSchemaError, load_metrics, render_report
from .utils import atomic_write_json, atomic_write_text, repo_root

__all__ = ["list_notebooks", "load_profile_params", "run_notebook", "write_results_readme", "main",
           "NotebookFailed", "ParameterError"]

PROFILES = ("smoke", "gpu")


class ParameterError(ValueError):
    """A profile YAML names a parameter the notebook does not have."""


class NotebookFailed(RuntimeError):
    """A notebook raised during execution, or did not write a valid metrics.json."""


def list_notebooks(root: Path | None = None) -> list[Path]:
    root = root or repo_root()
    return sorted(p for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def results_dir_for(stem: str, profile: str, root: Path | None = None) -> Path:
    base = (root or repo_root()) / "results" / stem
    return base if profile == "smoke" else base / profile


def notebook_parameters(nb_path: Path) -> dict:
    import papermill as pm

    return pm.inspect_notebook(str(nb_path))


def load_profile_params(nb_path: Path, profile: str, root: Path | None = None) -> dict:
    """The YAML parameters of ``profile`` for a notebook, checked against the
    notebook's parameters cell."""
    root = root or repo_root()
    cfg = root / "configs" / nb_path.stem / f"{profile}.yaml"
    if not cfg.is_file():
        if profile == "smoke":
            params = {}
        else:
            raise ParameterError(f"{cfg}: no '{profile}' profile for {nb_path.name}")
    else:
        try:
            params = yaml.safe_load(cfg.read_text()) or {}
        except yaml.YAMLError as e:
            raise ParameterError(f"{cfg}: invalid YAML ({e})") from e
        if not isinstance(params, dict):
            raise ParameterError(f"{cfg}: must be a flat mapping of parameter names to values")
    check_parameters(nb_path, params, source=str(cfg))
    params.setdefault("profile", profile)
    return params


def check_parameters(nb_path: Path, params: dict, source: str = "parameters") -> None:
    known = notebook_parameters(nb_path)
    if not known:
        raise ParameterError(f"{nb_path}: no cell tagged 'parameters'")
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ParameterError(f"{source}: unknown parameter(s) {', '.join(unknown)} for {nb_path.name}; "
                             f"known: {', '.join(sorted(known))}")
    wrong = [problem for name, value in params.items()
             if (problem := _type_problem(name, value, known[name].get("default"), known[name].get("help") or ""))]
    if wrong:
        raise ParameterError(f"{source}: wrong type for {nb_path.name}: " + "; ".join(wrong))


def _type_problem(name: str, value, default_src, help_text: str = "") -> str | None:
    """Why ``value`` cannot stand for a parameter whose default is the literal
    ``default_src`` (None when it can). A None default accepts anything, and
    None is accepted where the parameter's comment documents it; a float
    accepts whole numbers; bool and int never stand for each other."""
    import ast

    if value is None and "None" in help_text:
        return None
    try:
        default = ast.literal_eval(default_src) if isinstance(default_src, str) else None
    except (ValueError, SyntaxError):
        return None          # an expression: no literal type to check against
    if default is None:
        return None
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    else:
        ok = isinstance(value, type(default))
    if ok:
        return None
    return f"{name}: {value!r} is {type(value).__name__}, expected {type(default).__name__} (default {default_src})"


def previous_wall_time(nb_path: Path, profile: str, root: Path | None = None) -> float:
    """Wall time (s) of the notebook's recorded run in ``results/``; 0 when there is none or it is unreadable
    (only used to order parallel runs)."""
    metrics = results_dir_for(nb_path.stem, profile, root or repo_root()) / "metrics.json"
    try:
        return float(load_metrics(metrics)["provenance"].get("wall_time_s") or 0.0)
    except (MetricsSchemaError, TypeError, ValueError):
        return 0.0


def run_notebook(nb_path: Path, profile: str, *, params: dict | None = None, timeout: int = 3600,
                 root: Path | None = None, update_notebook: bool = False, log_output: bool = False,
                 out_dir: Path | None = None, executed: Path | None = None, label: str | None = None) -> Path:
    """Execute one notebook; return the path of its validated metrics.json.

    ``out_dir`` (default ``results/<stem>`` or ``results/<stem>/<profile>``) is
    where the notebook must write metrics.json; it is passed to the notebook as
    its ``out_dir`` parameter unless that is the default location of the smoke
    profile. ``executed`` is where the executed copy goes. ``label`` names the
    run in error messages (e.g. an ablation arm).
    """
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    root = root or repo_root()
    params = dict(load_profile_params(nb_path, profile, root) if params is None else params)
    check_parameters(nb_path, params)
    default_out = results_dir_for(nb_path.stem, profile, root)
    out_dir = Path(out_dir) if out_dir is not None else default_out
    if profile != "smoke" or out_dir != default_out:
        params["out_dir"] = os.path.relpath(out_dir, nb_path.parent)
    executed = executed or root / "results" / nb_path.stem / "executed" / f"{profile}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    name = nb_path.name + (f" ({label})" if label else "")
    metrics = out_dir / "metrics.json"
    started = time.time()
    try:
        pm.execute_notebook(str(nb_path), str(executed), parameters=params, kernel_name="python3",
                            cwd=str(nb_path.parent), progress_bar=False, log_output=log_output,
                            execution_timeout=timeout, report_mode=False)
    except PapermillExecutionError as e:
        index, first_line = _source_cell(executed, e.cell_index)
        raise NotebookFailed(f"{name}: cell {index} ({first_line!r}) raised {e.ename}: {e.evalue}\n"
                             f"  executed copy: {executed}") from e
    except (CellTimeoutError, DeadKernelError) as e:
        what = f"ran past the per-cell timeout of {timeout} s (--timeout)" if isinstance(e, CellTimeoutError) \
            else "lost its kernel (it died: out of memory, a crash in native code, or os._exit)"
        where = _running_cell(executed)
        raise NotebookFailed(f"{name}: {where}{what}\n  executed copy: {executed}") from e
    if not metrics.is_file() or metrics.stat().st_mtime < started:
        raise NotebookFailed(f"{name}: ran but did not write {metrics}")
    try:
        obj = load_metrics(metrics)
    except MetricsSchemaError as e:
        raise NotebookFailed(str(e)) from e
    if obj["profile"] != profile:
        raise NotebookFailed(f"{metrics}: records profile {obj['profile']!r}, expected {profile!r}")
    if update_notebook:
        from .nbclean import clean_notebook, _dump

        nb = json.loads(executed.read_text(encoding="utf-8"))
        atomic_write_text(nb_path, _dump(clean_notebook(nb)))
    return metrics


# ---------------------------------------------------------------------- runs and seed sweeps
@dataclasses.dataclass
class RunPlan:
    """One notebook execution. A plan with ``staging`` is a run at another seed
    than the notebook's default: it writes under ``staging`` (build/, git-ignored),
    keeps its checkpoints apart in ``staging/runs``, and its metrics.json is
    published to ``results/<notebook>/seeds/`` only once every run of the sweep
    succeeded."""
    notebook: Path
    profile: str
    params: dict
    seed: int
    update_notebook: bool = False
    staging: Path | None = None

    @property
    def label(self) -> str | None:
        return f"seed {self.seed}" if self.staging else None

    @property
    def out_dir(self) -> Path | None:
        return self.staging / "results" / self.notebook.stem if self.staging else None


def default_seed(nb_path: Path, params: dict) -> int:
    """The seed a run of ``nb_path`` with ``params`` uses (the profile's, else the notebook's default)."""
    import ast

    if "seed" in params:
        return int(params["seed"])
    known = notebook_parameters(nb_path)
    if "seed" not in known:
        raise ParameterError(f"{nb_path}: the parameters cell has no 'seed'")
    return int(ast.literal_eval(known["seed"]["default"]))


def seed_plans(nb_path: Path, profile: str, params: dict, seeds: list[int] | None, *, root: Path,
               update_notebook: bool = False) -> list[RunPlan]:
    """The runs of one notebook: its default run, plus one per other seed of ``seeds``."""
    base = default_seed(nb_path, params)
    plans = [RunPlan(nb_path, profile, dict(params), base, update_notebook=update_notebook)]
    if not seeds:
        return plans
    if base not in seeds:
        raise ParameterError(f"--seeds {' '.join(map(str, seeds))}: must include {base}, the seed of "
                             f"{nb_path.name}'s recorded run (results/{nb_path.stem}/metrics.json)")
    for s in sorted(set(seeds) - {base}):
        staging = root / "build" / "seeds" / profile / f"seed{s}"
        plans.append(RunPlan(nb_path, profile, {**params, "seed": s}, s, staging=staging))
    return plans


def _execute(plan: RunPlan, timeout: int, root: Path, log_output: bool) -> str | None:
    """Run one plan in this process; return None or the failure's message. A
    staged run's kernel gets its own ``$RESTORE_RUNS_DIR`` (checkpoints of
    different seeds never mix)."""
    env = {"RESTORE_RUNS_DIR": str(plan.staging / "runs")} if plan.staging else {}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    t0 = time.perf_counter()
    name = plan.notebook.stem + (f" ({plan.label})" if plan.label else "")
    print(f"[{name}] running ({plan.profile}) ...", flush=True)
    try:
        executed = plan.staging / "executed" / f"{plan.notebook.stem}.ipynb" if plan.staging else None
        m = run_notebook(plan.notebook, plan.profile, params=plan.params, timeout=timeout, root=root,
                         update_notebook=plan.update_notebook, log_output=log_output, out_dir=plan.out_dir,
                         executed=executed, label=plan.label)
    except NotebookFailed as e:
        print(f"[{name}] FAILED: {e}", file=sys.stderr, flush=True)
        return str(e)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    print(f"[{name}] ok in {time.perf_counter() - t0:.0f} s -> {m.relative_to(root) if m.is_relative_to(root) else m}",
          flush=True)
    return None


def execute_plans(plans: list[RunPlan], *, jobs: int, timeout: int, root: Path, log_output: bool = False):
    """Run the plans, ``jobs`` at a time, each in its own process (and kernel);
    yield ``(plan, error message or None)`` as they finish."""
    if jobs == 1:
        for plan in plans:
            yield plan, _execute(plan, timeout, root, log_output)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_execute, plan, timeout, root, log_output): plan for plan in plans}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def publish_seed_spread(plans: list[RunPlan], root: Path) -> Path:
    """After every run of one notebook's sweep succeeded: copy the other seeds'
    metrics.json to ``results/<notebook>/seeds/seed<k>.json`` (and drop records of
    seeds no longer swept), then write ``seed_spread.json`` over all of them."""
    from .results import SPREAD_FILE, load_metrics, seed_records_dir, summarize_seed_runs

    main = next(p for p in plans if p.staging is None)
    results = results_dir_for(main.notebook.stem, main.profile, root)
    records = [load_metrics(results / "metrics.json")]
    records += [load_metrics(p.out_dir / "metrics.json") for p in plans if p.staging is not None]
    summary = summarize_seed_runs(records)      # checks the runs agree before anything is written
    seeds_dir = seed_records_dir(results)
    seeds_dir.mkdir(parents=True, exist_ok=True)
    keep = set()
    for rec in records[1:]:
        path = seeds_dir / f"seed{rec['provenance']['seed']}.json"
        atomic_write_json(path, rec)
        keep.add(path)
    for old in seeds_dir.glob("seed*.json"):
        if old not in keep:
            old.unlink()
    return atomic_write_json(results / SPREAD_FILE, summary)


def _running_cell(executed: Path) -> str:
    """"cell N ('first line') " of the last cell papermill started before
    execution stopped, or "" when the executed copy does not say."""
    try:
        nb = json.loads(executed.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    started = [i for i, c in enumerate(nb.get("cells", []))
               if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    if not started:
        return ""
    index, first = _source_cell(executed, started[-1])
    return f"cell {index} ({first!r}) "


def _source_cell(executed: Path, cell_index: int) -> tuple[int, str]:
    """Map a cell index of the executed copy (which has papermill's injected
    parameters cell) back to the source notebook; also return its first line."""
    nb = json.loads(executed.read_text(encoding="utf-8"))
    cells = [c for c in nb.get("cells", [])  # papermill prepends an error banner cell on failure
             if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
    injected = [i for i, c in enumerate(cells) if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    source = "".join(cells[cell_index].get("source", "")) if 0 <= cell_index < len(cells) else ""
    first = next((ln for ln in source.splitlines() if ln.strip()), "")[:80]
    shift = 1 if injected and cell_index > injected[0] else 0
    return cell_index - shift, first


READ_ME_HEAD = """# Results

Regenerated by `make reproduce` (`python -m restore_lib.reproduce`); do not edit by hand.
Every table below was written by the notebook run it names, with its provenance (code commit at run
time, profile, device, torch version, seed, wall time and the dataset hash). Tables headed
"Published figures" are copied from the papers or course reports for comparison and were not run here.

Profiles: **smoke** = the notebooks' default parameters (small models, embedded data, a few minutes on a
2-core CPU; numbers show the method works, not paper-level quality). **gpu** = the full configs in
`configs/*/gpu.yaml`, run only on a CUDA machine.
"""


def write_results_readme(root: Path | None = None) -> Path:
    """Rebuild ``results/README.md`` from every ``results/*/metrics.json``."""
    root = root or repo_root()
    parts = [READ_ME_HEAD]
    stems = [p.stem for p in list_notebooks(root)]
    for stem in stems:
        found = False
        for profile in PROFILES:
            m = results_dir_for(stem, profile, root) / "metrics.json"
            if m.is_file():
                obj = load_metrics(m)
                prefix = f"{stem}/" if profile == "smoke" else f"{stem}/{profile}/"
                parts.append(render_report(obj, heading_level=2, figure_prefix=prefix))
                found = True
            elif profile == "gpu" and found:
                parts.append(f"*{stem}: the gpu profile has not been run (it needs a CUDA machine).*\n")
        if not found:
            parts.append(f"## {stem}\n\n*No results yet: run `python -m restore_lib.reproduce --only "
                         f"{stem[:2]}`.*\n")
    bench = root / "results" / "benchmarks" / "README.md"
    if bench.is_file():
        parts.append("## Benchmarks\n\nSee [benchmarks/README.md](benchmarks/README.md).\n")
    return atomic_write_text(root / "results" / "README.md", "\n".join(parts))


def _select(notebooks: list[Path], only: list[str] | None) -> list[Path]:
    if not only:
        return notebooks
    chosen = [nb for nb in notebooks if any(nb.stem.startswith(o) or nb.stem == o for o in only)]
    missing = [o for o in only if not any(nb.stem.startswith(o) for nb in notebooks)]
    if missing:
        raise SystemExit(f"no notebook matches {', '.join(missing)}; have: "
                         f"{', '.join(nb.stem for nb in notebooks)}")
    return chosen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m restore_lib.reproduce", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smoke", choices=PROFILES)
    ap.add_argument("--only", nargs="*", help="notebook numbers or stems, e.g. 00 01")
    ap.add_argument("--timeout", type=int, default=3600, help="per-cell timeout in seconds")
    ap.add_argument("--update-notebooks", action="store_true",
                    help="write the executed, cleaned notebooks back to notebooks/ (smoke profile only)")
    ap.add_argument("--readme-only", action="store_true", help="only rebuild results/README.md")
    ap.add_argument("--ablation", help="run the arms of configs/ablations/<name>.yaml")
    ap.add_argument("--log-output", action="store_true", help="stream notebook output")
    ap.add_argument("--seeds", type=int, nargs="+",
                    help="run every notebook at each of these seeds (at least 2, including the notebook's default "
                         "seed, whose run is the one in results/<notebook>/); the other seeds' metrics go to "
                         "results/<notebook>/seeds/ and their spread to results/<notebook>/seed_spread.json")
    ap.add_argument("--jobs", type=int, default=1,
                    help="notebooks executed at the same time (each in its own kernel; on a CPU, at most one per "
                         "core, since the notebooks use one thread each)")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.seeds is not None and (len(set(args.seeds)) < 2 or len(set(args.seeds)) != len(args.seeds)):
        ap.error(f"--seeds needs at least 2 distinct seeds, got {args.seeds}")
    root = repo_root()

    if args.ablation:
        from .ablations import run_ablation

        return run_ablation(args.ablation, root=root, timeout=args.timeout, profile=args.profile,
                            log_output=args.log_output)
    if args.readme_only:
        print(f"wrote {write_results_readme(root)}")
        return 0
    if args.update_notebooks and args.profile != "smoke":
        raise SystemExit("--update-notebooks only with --profile smoke (committed outputs are the CPU profile)")
    if args.profile == "gpu":
        import torch

        if not torch.cuda.is_available():
            print("profile 'gpu' needs CUDA and none is available: nothing was run, nothing recorded.",
                  file=sys.stderr)
            return 2

    notebooks = _select(list_notebooks(root), args.only)

    # check every parameter file (and the seeds) before running anything
    plans = []
    for nb in notebooks:
        params = load_profile_params(nb, args.profile, root)
        plans += seed_plans(nb, args.profile, params, args.seeds, root=root, update_notebook=args.update_notebooks)
    failures, failed = [], set()

    from .results import git_state_pinned

    # every notebook records the tree as it was here, before the first one writes into results/
    with git_state_pinned(root):
        # longest first (by the wall time of its last recorded run) keeps parallel workers evenly loaded
        ordered = sorted(plans, key=lambda p: -previous_wall_time(p.notebook, args.profile, root))
        for plan, error in execute_plans(ordered, jobs=args.jobs, timeout=args.timeout, root=root,
                                         log_output=args.log_output):
            if error:
                failures.append(error)
                failed.add(plan.notebook)
    if args.seeds:
        for nb in notebooks:
            if nb in failed:
                print(f"[{nb.stem}] seed spread not updated: a run failed", file=sys.stderr)
                continue
            path = publish_seed_spread([p for p in plans if p.notebook == nb], root)
            print(f"[{nb.stem}] seed spread over seeds {', '.join(map(str, sorted(args.seeds)))} -> "
                  f"{path.relative_to(root)}", flush=True)
    write_results_readme(root)
    if failures:
        print(f"{len(failures)} notebook run(s) failed:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    print(f"all {len(plans)} notebook run(s) ok; results/README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
