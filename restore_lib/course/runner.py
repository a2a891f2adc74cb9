"""Running one notebook: its parameters (``configs/<notebook>/<profile>.yaml``),
papermill execution, the checks on the metrics.json it must write, and the
errors that name the notebook and the failing cell. Used by
:mod:`restore_lib.course.reproduce` and :mod:`restore_lib.course.ablations`."""
from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Iterator

import yaml

from ..utils import atomic_write_text, repo_root
from ..weights import REQUIRE_ENV
from .nbclean import _dump, clean_notebook
from .results import MetricsSchemaError, load_metrics

__all__ = ["PROFILES", "RECORDED_PROFILES", "PROFILE_BASE", "OVERLAY_KEY", "CUDA_PROFILES", "DEFAULT_CELL_TIMEOUT",
           "cell_timeout", "add_timeout_arg", "ParameterError", "NotebookFailed", "list_notebooks",
           "results_dir_for", "notebook_parameters", "notebook_defaults", "load_profile_params", "check_parameters",
           "previous_wall_time", "run_environment", "run_notebook", "environ"]

PROFILES = ("smoke", "gpu", "gpu-quick", "rehearsal")

#: profiles written as a few keys over another profile: ``configs/<nb>/gpu-quick.yaml`` and ``rehearsal.yaml``
#: hold only what differs from ``gpu.yaml`` (schedules, crops, batches, data), so the architectures, losses and
#: recipes they run are the gpu profile's by construction.
PROFILE_BASE = {"gpu-quick": "gpu", "rehearsal": "gpu"}
#: the parameters such an overlay may set: sizes of the run, never of a model (no preset, width, loss, prior...)
OVERLAY_KEY = re.compile(r"^(profile|device|threads|seed|data_root|resume|progress|run_\w+|\w*steps|\w*epochs"
                         r"|\w*patch|\w*patch_size|\w*crop|\w*batch|batch_size|\w*_size|\w*repeat|val_points"
                         r"|ckpt_every|monitor_every|monitor_crop|interrupt_at|test_limit|val_ratio|tile"
                         r"|r_train_stride|pairs)$")
#: the profiles whose results are recorded (reproduce, ablations); a rehearsal runs from
#: ``python -m restore_lib.course.rehearsal`` into its own folder, never into results/
RECORDED_PROFILES = ("smoke", "gpu", "gpu-quick")
#: profiles that need CUDA (a run without it refuses to start)
CUDA_PROFILES = ("gpu", "gpu-quick")

#: per-cell timeout (seconds) of each profile when ``--timeout`` is not given; None: no limit. A smoke cell
#: that runs an hour is stuck; a gpu cell trains for days; gpu-quick is sized for minutes per notebook and the
#: rehearsal for seconds, so a cell at these limits is stuck.
DEFAULT_CELL_TIMEOUT = {"smoke": 3600, "gpu": None, "gpu-quick": 1800, "rehearsal": 900}


def cell_timeout(profile: str, given: int | None = None) -> int | None:
    """The per-cell timeout of a run: ``given`` (``--timeout``) when set, else the profile's default."""
    if profile not in DEFAULT_CELL_TIMEOUT:
        raise ParameterError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    if given is None:
        return DEFAULT_CELL_TIMEOUT[profile]
    if given <= 0:
        raise ParameterError(f"--timeout must be a positive number of seconds, got {given}")
    return given


def add_timeout_arg(ap) -> None:
    """The ``--timeout`` option of the commands that run notebooks (read it with :func:`cell_timeout`)."""
    ap.add_argument("--timeout", type=int, default=None,
                    help="per-cell timeout in seconds (default: " + ", ".join(
                        f"{p} {t} s" if t else f"{p} none" for p, t in DEFAULT_CELL_TIMEOUT.items()) + ")")


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
    notebook's parameters cell. An overlay profile (:data:`PROFILE_BASE`) is
    its base profile's parameters with the overlay's keys replaced; an overlay
    key outside :data:`OVERLAY_KEY` (one that would change a model) is refused."""
    root = root or repo_root()
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    cfg = root / "configs" / nb_path.stem / f"{profile}.yaml"
    if not cfg.is_file() and profile != "smoke":
        raise ParameterError(f"{cfg}: no '{profile}' profile for {nb_path.name}")
    params = _read_yaml(cfg) if cfg.is_file() else {}
    if profile in PROFILE_BASE:
        changed = sorted(k for k in params if not OVERLAY_KEY.match(k))
        if changed:
            raise ParameterError(f"{cfg}: {', '.join(changed)} would change the model or recipe of the "
                                 f"'{PROFILE_BASE[profile]}' profile it overlays; an overlay sets only run sizes "
                                 f"(steps, crops, batches, data, device)")
        if params.get("profile", profile) != profile:
            raise ParameterError(f"{cfg}: profile: {params['profile']!r}, expected {profile!r}")
        params = {**load_profile_params(nb_path, PROFILE_BASE[profile], root), **params}
        params["profile"] = profile
    check_parameters(nb_path, params, source=str(cfg))
    params.setdefault("profile", profile)
    return params


def _read_yaml(cfg: Path) -> dict:
    try:
        params = yaml.safe_load(cfg.read_text()) or {}
    except yaml.YAMLError as e:
        raise ParameterError(f"{cfg}: invalid YAML ({e})") from e
    if not isinstance(params, dict):
        raise ParameterError(f"{cfg}: must be a flat mapping of parameter names to values")
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


_NO_LITERAL = object()


def _literal(default_src):
    """The value of a parameter's default as written in the parameters cell,
    or ``_NO_LITERAL`` for an expression (``Path(...)``, arithmetic)."""
    import ast

    try:
        return ast.literal_eval(default_src) if isinstance(default_src, str) else None
    except (ValueError, SyntaxError):
        return _NO_LITERAL


def notebook_defaults(nb_path: Path) -> dict:
    """``{name: default}`` of the notebook's parameters cell; an expression
    default (no literal value) reads as None."""
    return {name: (None if (v := _literal(info.get("default") or "None")) is _NO_LITERAL else v)
            for name, info in notebook_parameters(nb_path).items()}


def _type_problem(name: str, value, default_src, help_text: str = "") -> str | None:
    """Why ``value`` cannot stand for a parameter whose default is the literal
    ``default_src`` (None when it can). A None default accepts anything, and
    None is accepted where the parameter's comment documents it; a float
    accepts whole numbers; bool and int never stand for each other."""
    if value is None and "None" in help_text:
        return None
    default = _literal(default_src)
    if default is None or default is _NO_LITERAL:  # an expression: no literal type to check against
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


def run_environment(profile: str, root: Path) -> dict[str, str]:
    """What a profile's kernels get in their environment: a gpu run raises on
    missing pretrained weights (``$RESTORE_REQUIRE_WEIGHTS=1``) instead of
    recording a fallback; every profile but smoke keeps its checkpoints in
    ``runs/<profile>/`` (unless ``$RESTORE_RUNS_DIR`` says otherwise), so a
    smoke or gpu-quick run never overwrites, or resumes from, days of gpu training."""
    env = {REQUIRE_ENV: "1"} if profile == "gpu" else {}
    if profile != "smoke" and not os.environ.get("RESTORE_RUNS_DIR"):
        env["RESTORE_RUNS_DIR"] = str(root / "runs" / profile)
    return env


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (a notebook's kernel inherits them) for the
    ``with`` block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_notebook(nb_path: Path, profile: str, *, params: dict | None = None, timeout: int | None = 3600,
                 root: Path | None = None, update_notebook: bool = False, log_output: bool = False,
                 out_dir: Path | None = None, executed: Path | None = None, label: str | None = None) -> Path:
    """Execute one notebook; return the path of its validated metrics.json.

    ``timeout``: seconds a cell may run (None: no limit; see :func:`cell_timeout`).
    ``out_dir`` (default ``results/<stem>`` or ``results/<stem>/<profile>``) is
    where the notebook must write metrics.json; it is passed to the notebook as
    its ``out_dir`` parameter unless that is the default location of the smoke
    profile. ``executed`` is where the executed copy goes. ``label`` names the
    run in error messages (e.g. an ablation arm). A gpu-profile kernel runs
    with ``$RESTORE_REQUIRE_WEIGHTS=1``: a loss or metric whose pretrained
    weights are missing raises instead of falling back (restore_lib.weights).
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
        with environ(run_environment(profile, root)):
            for attempt in range(KERNEL_START_TRIES):
                try:
                    pm.execute_notebook(str(nb_path), str(executed), parameters=params, kernel_name="python3",
                                        cwd=str(nb_path.parent), progress_bar=False, log_output=log_output,
                                        execution_timeout=timeout, report_mode=False)
                    break
                except RuntimeError as e:
                    # two kernels started at the same moment can pick the same TCP port; the loser dies before
                    # it answers, before any cell ran: start it again (a kernel that dies later is DeadKernelError)
                    if _KERNEL_START_FAILED not in str(e) or attempt + 1 == KERNEL_START_TRIES:
                        raise
                    print(f"{name}: the kernel died while starting ({e}); starting another", file=sys.stderr)
                    time.sleep(1.0 + attempt)
    except PapermillExecutionError as e:
        index, first_line = _source_cell(executed, e.cell_index)
        raise NotebookFailed(f"{name}: cell {index} ({first_line!r}) raised {e.ename}: {e.evalue}\n"
                             f"  executed copy: {executed}") from e
    except (CellTimeoutError, DeadKernelError) as e:
        what = f"ran past the per-cell timeout of {timeout} s (--timeout)" if isinstance(e, CellTimeoutError) \
            else "lost its kernel (it died: out of memory, a crash in native code, or os._exit)"
        raise NotebookFailed(f"{name}: {_running_cell(executed)}{what}\n  executed copy: {executed}") from e
    except RuntimeError as e:      # after DeadKernelError, a RuntimeError too: only a kernel that never started
        if _KERNEL_START_FAILED not in str(e):
            raise
        raise NotebookFailed(f"{name}: no kernel could be started ({KERNEL_START_TRIES} tries): {e}") from e
    if not metrics.is_file() or metrics.stat().st_mtime < started:
        raise NotebookFailed(f"{name}: ran but did not write {metrics}")
    try:
        obj = load_metrics(metrics)
    except MetricsSchemaError as e:
        raise NotebookFailed(str(e)) from e
    if obj["profile"] != profile:
        raise NotebookFailed(f"{metrics}: records profile {obj['profile']!r}, expected {profile!r}")
    if update_notebook:
        nb = json.loads(executed.read_text(encoding="utf-8"))
        atomic_write_text(nb_path, _dump(clean_notebook(nb)))
    return metrics


#: nbclient's message when a kernel dies before its first reply, and how often a run starts one
_KERNEL_START_FAILED = "before replying to kernel_info"
KERNEL_START_TRIES = 3


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
