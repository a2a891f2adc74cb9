"""Re-execute the notebooks with papermill and regenerate ``results/``.

    python -m restore_lib.course.reproduce --profile smoke          # every notebook, CPU profile
    python -m restore_lib.course.reproduce --profile gpu --only 01  # one notebook, full configs (no cell timeout)
    python -m restore_lib.course.reproduce --readme-only            # only rebuild results/README.md
    python -m restore_lib.course.reproduce --profile smoke --update-notebooks   # also refresh committed outputs

For each ``notebooks/NN_name.ipynb`` the parameters come from
``configs/NN_name/<profile>.yaml`` (a flat YAML mapping; every key must be a
parameter of the notebook, or the run stops before executing anything). The
executed copy goes to ``results/NN_name/executed/<profile>.ipynb``
(git-ignored) and the notebook writes ``results/NN_name/metrics.json``
(profile ``smoke``) or ``results/NN_name/<profile>/metrics.json``; the runner
checks that file exists, is new and valid, then rebuilds ``results/README.md``.

A failing notebook is reported with its name and the failing cell, the other
notebooks still run, and the exit code is non-zero. A cell may run 3600 s in
the smoke profile and without limit in the gpu profile (days of training in
one cell), unless ``--timeout SECONDS`` says otherwise. The ``gpu`` profile
refuses to start while a notebook needs pretrained weights this machine lacks
(:mod:`restore_lib.course.weights_check`; the list names each file and where
to put it), and its kernels run with ``$RESTORE_REQUIRE_WEIGHTS=1``. It also
refuses to run without CUDA (it records nothing rather than falling back to
the CPU).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import yaml

from ..utils import atomic_write_json, atomic_write_text, repo_root
from .ablations import run_ablation
from .results import (SPREAD_FILE, MetricsSchemaError, git_state_pinned, load_metrics, render_report,
                      seed_records_dir, summarize_seed_runs)
from .runner import (PROFILES, RECORDED_PROFILES, NotebookFailed, ParameterError, add_timeout_arg, cell_timeout,
                     environ, list_notebooks, load_profile_params, notebook_parameters, previous_wall_time,
                     results_dir_for, run_notebook)
from .weights_check import refuse_to_start

__all__ = ["list_notebooks", "load_profile_params", "run_notebook", "write_results_readme", "main",
           "NotebookFailed", "ParameterError"]

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


def _execute(plan: RunPlan, timeout: int | None, root: Path, log_output: bool) -> str | None:
    """Run one plan in this process; return None or the failure's message. A
    staged run's kernel gets its own ``$RESTORE_RUNS_DIR`` (checkpoints of
    different seeds never mix)."""
    env = {"RESTORE_RUNS_DIR": str(plan.staging / "runs")} if plan.staging else {}
    t0 = time.perf_counter()
    name = plan.notebook.stem + (f" ({plan.label})" if plan.label else "")
    print(f"[{name}] running ({plan.profile}) ...", flush=True)
    try:
        executed = plan.staging / "executed" / f"{plan.notebook.stem}.ipynb" if plan.staging else None
        with environ(env):
            m = run_notebook(plan.notebook, plan.profile, params=plan.params, timeout=timeout, root=root,
                             update_notebook=plan.update_notebook, log_output=log_output, out_dir=plan.out_dir,
                             executed=executed, label=plan.label)
    except NotebookFailed as e:
        print(f"[{name}] FAILED: {e}", file=sys.stderr, flush=True)
        return str(e)
    print(f"[{name}] ok in {time.perf_counter() - t0:.0f} s -> {m.relative_to(root) if m.is_relative_to(root) else m}",
          flush=True)
    return None


#: seconds between the starts of the first parallel runs
KERNEL_START_STAGGER_S = 5.0


def execute_plans(plans: list[RunPlan], *, jobs: int, timeout: int | None, root: Path, log_output: bool = False):
    """Run the plans, ``jobs`` at a time, each in its own process (and kernel);
    yield ``(plan, error message or None)`` as they finish."""
    if jobs == 1:
        for plan in plans:
            yield plan, _execute(plan, timeout, root, log_output)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {}
        for i, plan in enumerate(plans):
            futures[pool.submit(_execute, plan, timeout, root, log_output)] = plan
            if i < jobs - 1:
                time.sleep(KERNEL_START_STAGGER_S)   # the first wave's kernels do not all start at once
        for fut in as_completed(futures):
            plan = futures[fut]
            try:
                error = fut.result()
            except Exception as e:  # noqa: BLE001 - a failure of the worker itself: reported, the others go on
                error = f"{plan.notebook.name}{f' ({plan.label})' if plan.label else ''}: {type(e).__name__}: {e}"
                print(f"[{plan.notebook.stem}] FAILED: {error}", file=sys.stderr, flush=True)
            yield plan, error


def publish_seed_spread(plans: list[RunPlan], root: Path) -> Path:
    """After every run of one notebook's sweep succeeded: copy the other seeds'
    metrics.json to ``results/<notebook>/seeds/seed<k>.json`` (and drop records of
    seeds no longer swept), then write ``seed_spread.json`` over all of them."""
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


#: the cells whose output depends on other committed records (another notebook's run, the seed spread) as well
#: as on this run: their call, and how to render it from the committed run
REFRESHED_CELLS = ("show_published(rec", "render_findings(rec")


def refresh_findings(nb_path: Path, root: Path) -> bool:
    """Re-render the outputs of ``nb_path``'s cells that read other committed records -- the findings cell
    (``render_findings(rec)``: the seed spread) and the published-beside-measured cell (``show_published(rec)``:
    other notebooks' runs) -- from the committed run's ``metrics.json`` and today's ``results/``.

    A sweep runs the default seed first, so its notebook rendered its findings against the spread of the
    previous sweep, and a notebook can run before the other notebook whose rows it shows; the cells' code and
    this run's numbers and parameters are the same, only those records are new. The refreshed output is what
    re-executing the notebook now would print. Returns whether such a cell was found."""
    from .findings import render_findings
    from .nbclean import _dump
    from .published import beside_markdown, load_published

    report = nb_path.stem
    record = load_metrics(results_dir_for(report, "smoke", root) / "metrics.json")
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    found = False
    for call in REFRESHED_CELLS:
        cells = [c for c in nb["cells"] if c["cell_type"] == "code" and call in "".join(c["source"])]
        if not cells:
            continue
        if call.startswith("render_findings"):
            text = render_findings(report=report, metrics=record["metrics"], params=record["params"],
                                   profile="smoke", root=root)
        else:
            text = "\n".join(beside_markdown(t, record["metrics"], profile="smoke", root=root)
                             for t in load_published(report, root).tables)
        for cell in cells:
            shown = [o for o in cell.get("outputs", []) if "text/markdown" in o.get("data", {})]
            if len(shown) != 1:
                raise ValueError(f"{nb_path}: the cell calling {call}) has {len(shown)} Markdown outputs, "
                                 "expected 1 (execute the notebook first)")
            shown[0]["data"]["text/markdown"] = text.splitlines(keepends=True)
        found = True
    if found:
        atomic_write_text(nb_path, _dump(nb))
    return found


READ_ME_HEAD = """# Results

Regenerated by `make reproduce` (`python -m restore_lib.course.reproduce`); do not edit by hand.
Every table below was written by the notebook run it names, with its provenance (code commit at run
time, profile, device, torch version, seed, wall time and the dataset hash). Tables headed
"Published figures" are copied from the papers or course reports for comparison and were not run here.

Profiles: **smoke** = the notebooks' default parameters (small models, embedded data, a few minutes on a
2-core CPU; numbers show the method works, not paper-level quality). **gpu** = the full configs in
`configs/*/gpu.yaml`, run only on a CUDA machine.
"""


def write_results_readme(root: Path | None = None) -> Path:
    """Rebuild ``results/README.md`` from every ``results/*/metrics.json``, with each report's findings
    (:mod:`restore_lib.course.findings`) judged over its recorded seeds."""
    from .findings import render_findings
    from .published import published_path

    root = root or repo_root()
    parts = [READ_ME_HEAD, _spread_overview(root)]
    stems = [p.stem for p in list_notebooks(root)]
    for stem in stems:
        found = False
        for profile in PROFILES:
            m = results_dir_for(stem, profile, root) / "metrics.json"
            if m.is_file():
                obj = load_metrics(m)
                prefix = f"{stem}/" if profile == "smoke" else f"{stem}/{profile}/"
                parts.append(render_report(obj, heading_level=2, figure_prefix=prefix))
                if published_path(stem, root).is_file():
                    parts.append(f"### What the numbers say ({stem}, {profile})\n\n" +
                                 render_findings(report=stem, metrics=obj["metrics"], profile=profile, root=root))
                found = True
            elif profile == "gpu" and found:
                parts.append(f"*{stem}: the gpu profile has not been run (it needs a CUDA machine).*\n")
        if not found:
            parts.append(f"## {stem}\n\n*No results yet: run `python -m restore_lib.course.reproduce --only "
                         f"{stem[:2]}`.*\n")
    bench = root / "results" / "benchmarks" / "README.md"
    if bench.is_file():
        parts.append("## Benchmarks\n\nSee [benchmarks/README.md](benchmarks/README.md).\n")
    return atomic_write_text(root / "results" / "README.md", "\n".join(parts))


def _spread_overview(root: Path) -> str:
    """The seed-spread table of results/README.md: every notebook's headline rows over the recorded seeds of
    the smoke profile, or a line saying why a notebook has none (never run at several seeds, or its recorded
    run is newer than its spread)."""
    from .results import SeedSpreadError, headline_metrics, load_seed_spread, render_seed_spread

    out = ["## Seed spread (smoke profile)", "",
           "Each notebook's smoke profile was run at several seeds with the same code, data and environment "
           "(`make notebooks`). The tables show the headline rows; `results/<notebook>/seed_spread.json` has every "
           "metric and `results/<notebook>/seeds/` the other seeds' records. Claims and reproduction tolerances "
           "rest on these spreads: a re-run may move a metric by 3 standard deviations, and a difference "
           "between two rows counts as real only when every seed agrees on its sign and its mean exceeds 3 "
           "standard errors (`restore_lib.course.results.paired_difference`); otherwise it is within noise.", ""]
    for nb in list_notebooks(root):
        metrics = results_dir_for(nb.stem, "smoke", root) / "metrics.json"
        if not metrics.is_file():
            continue
        record = load_metrics(metrics)
        try:
            spread = load_seed_spread(nb.stem, root=root)
        except SeedSpreadError:
            out += [f"*{nb.stem}: not run at several seeds yet.*", ""]
            continue
        if record["provenance"]["started"] not in [r["started"] for r in spread["runs"]]:
            out += [f"*{nb.stem}: the recorded run is newer than its seed spread; re-run `make notebooks`.*", ""]
            continue
        run = spread["runs"][0]
        out += [render_seed_spread(spread, headline_metrics(record), heading_level=3).replace(
            "### Seed spread", f"### {nb.stem}: seed spread", 1).rstrip("\n"),
            "", f"*Runs:* commit `{str(run['commit'])[:10]}`, torch {run['torch']}, device {run['device']}, "
                f"wall times {', '.join(str(r['wall_time_s']) for r in spread['runs'])} s.", ""]
    return "\n".join(out)


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
    ap = argparse.ArgumentParser(prog="python -m restore_lib.course.reproduce", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smoke", choices=RECORDED_PROFILES)
    ap.add_argument("--only", nargs="*", help="notebook numbers or stems, e.g. 00 01")
    add_timeout_arg(ap)
    ap.add_argument("--update-notebooks", action="store_true",
                    help="write the executed, cleaned notebooks back to notebooks/ (smoke profile only)")
    ap.add_argument("--readme-only", action="store_true", help="only rebuild results/README.md")
    ap.add_argument("--refresh-findings", action="store_true",
                    help="only re-render the committed notebooks' findings and published-beside-measured cells from "
                         "results/ (after a sweep, whose seed spread is newer than the default seed's run, or after "
                         "re-running a notebook whose rows another one shows; --update-notebooks does it)")
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
    try:
        timeout = cell_timeout(args.profile, args.timeout)
    except ParameterError as e:
        ap.error(str(e))
    root = repo_root()

    if args.ablation:
        return run_ablation(args.ablation, root=root, timeout=timeout, profile=args.profile,
                            log_output=args.log_output)
    if args.readme_only:
        print(f"wrote {write_results_readme(root)}")
        return 0
    if args.refresh_findings:
        for nb in _select(list_notebooks(root), args.only):
            if refresh_findings(nb, root):
                print(f"[{nb.stem}] findings and published tables re-rendered from results/")
        return 0
    if args.update_notebooks and args.profile != "smoke":
        raise SystemExit("--update-notebooks only with --profile smoke (committed outputs are the CPU profile)")
    notebooks = _select(list_notebooks(root), args.only)

    # check every parameter file (and the seeds) before running anything
    plans = []
    for nb in notebooks:
        params = load_profile_params(nb, args.profile, root)
        plans += seed_plans(nb, args.profile, params, args.seeds, root=root, update_notebook=args.update_notebooks)
    refusal = refuse_to_start(args.profile, [(p.notebook, p.params) for p in plans])
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    failures, failed = [], set()

    # every notebook records the tree as it was here, before the first one writes into results/
    with git_state_pinned(root):
        # longest first (by the wall time of its last recorded run) keeps parallel workers evenly loaded
        ordered = sorted(plans, key=lambda p: -previous_wall_time(p.notebook, args.profile, root))
        for plan, error in execute_plans(ordered, jobs=args.jobs, timeout=timeout, root=root,
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
            if args.update_notebooks and refresh_findings(nb, root):
                print(f"[{nb.stem}] findings and published tables re-rendered from results/", flush=True)
    write_results_readme(root)
    if failures:
        print(f"{len(failures)} notebook run(s) failed:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    print(f"all {len(plans)} notebook run(s) ok; results/README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
