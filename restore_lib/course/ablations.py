"""Ablation specs (``configs/ablations/<name>.yaml``) and the runner of their arms.

An *ablation* compares variants ("arms") of one notebook that differ in a few
parameters, on one metric. The spec is a flat, versioned YAML file::

    schema_version: 1
    name: promptir_prompt_block            # = the file name without .yaml
    title: "PromptIR: is the prompt block worth it?"
    notebook: 01_promptir_rain_snow        # notebooks/<notebook>.ipynb
    base: {run_ablations: false}           # overrides common to every arm
    arms:                                  # arm name -> its own overrides
      full: {use_prompt: true}
      no_prompt: {use_prompt: false}
    metric: main/average/PSNR              # a key of "metrics" in metrics.json
    higher_is_better: true
    expect:
      order: [full, no_prompt]             # best first
      min_gap: 0.1                         # each arm beats the next by >= this
      values: {full: 27.9, no_prompt: 27.4}
      tolerance: {abs: 0.05, rel: 0.1}
    published:
      source: "Potlapalli et al., PromptIR (NeurIPS 2023), Table 7"
      values: {full: 32.06, no_prompt: 31.52}
    protocol_keys: [train_steps, patch_size]

``configs/ablations/README.md`` documents every field.

**Noise band.** The grader compares a run with the mean of the reference
seeds within ``max(k x std, floor)`` (``expect.noise``, default ``k: 3,
floor: 0.01, min_seeds: 3``; see :mod:`restore_lib.course.references`). The
optional fields ``input_metric`` (what a run that does no work scores),
``seed``, ``device`` and ``points`` are documented in the README.

**Tolerance** (``expect.values`` only). A value ``v`` matches a reference ``r`` when
``|v - r| <= max(rel * |r|, abs)`` -- the rule of ``pytest.approx(r, rel=...,
abs=...)``. Without a ``tolerance`` block the spec uses ``rel=0.1, abs=0.05``;
a block that gives only one of the two sets the other to 0.

**Order.** ``order: [a, b, c]`` claims ``a`` is strictly better than ``b``,
and ``b`` than ``c``, each by at least ``min_gap`` (default 0): with
``higher_is_better`` the gap is ``v[a] - v[b]``, otherwise ``v[b] - v[a]``.

**Running.** ``python -m restore_lib.course.ablations run <name> [--seeds 0 1 2] [--profile gpu]``
(or ``python -m restore_lib.course.reproduce --ablation <name>``, one seed) calls
:func:`run_ablation`: every arm runs the notebook with the profile's
parameters, the spec's ``seed``, then ``base``, then the arm's overrides, and
``out_dir=results/ablations/<name>/<arm>``; all parameter names are checked
against the notebook before anything runs. With ``--seeds`` every arm also
runs at the other seeds (staged under ``build/ablation_seeds/``); once all of
an arm's runs succeeded they are copied to ``<arm>/seeds/seed<k>.json`` and
summarized in ``<arm>/seed_spread.json``. ``--check`` validates the specs,
their parameters and value types, the metric keys against recorded results,
and ``expect.order`` against the reference seeds (:func:`check_spec`);
``--list`` lists the specs.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..utils import atomic_write_json, repo_root
from .references import load_arm_reference, pair_verdicts, reference_dir, seeds_command
from .results import SPREAD_FILE, MetricsSchemaError, git_state_pinned, load_metrics, seed_records_dir, summarize_seed_runs
from .runner import (RECORDED_PROFILES, NotebookFailed, ParameterError, add_timeout_arg, cell_timeout,
                     check_parameters, load_profile_params, notebook_parameters, run_notebook)
from .weights_check import refuse_to_start

__all__ = ["SPEC_VERSION", "SpecError", "Tolerance", "DEFAULT_TOLERANCE", "AblationSpec", "OrderCheck",
           "load_spec", "list_specs", "specs_dir", "plan_ablation", "run_ablation", "check_spec", "publish_arm_seeds",
           "format_value", "main"]

SPEC_VERSION = 1
_FIELDS = {"schema_version", "name", "title", "description", "notebook", "base", "arms", "metric",
           "higher_is_better", "expect", "published", "protocol_keys", "input_metric", "points", "seed", "device"}
_REQUIRED = ("schema_version", "name", "title", "notebook", "arms", "metric", "higher_is_better")
_EXPECT_FIELDS = {"order", "min_gap", "values", "tolerance", "noise"}
_NOISE_FIELDS = {"k": 3.0, "floor": 0.01, "min_seeds": 3}
_DEVICES = ("cpu", "cuda")
_PUBLISHED_FIELDS = {"source", "values"}
_ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RUNNER_PARAMS = ("out_dir", "profile")  # set by the runner, never by a spec


class SpecError(ValueError):
    """An ablation spec that cannot be used; the message names the file and field."""


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """``|value - reference| <= max(rel * |reference|, abs)`` (pytest.approx's rule)."""

    rel: float = 0.1
    abs: float = 0.05

    def allowed(self, reference: float) -> float:
        """The largest accepted absolute difference from ``reference``."""
        return max(self.rel * abs(reference), self.abs)

    def accepts(self, value: float, reference: float) -> bool:
        """NaN never matches; infinities match only themselves (PSNR of identical images)."""
        if math.isnan(value) or math.isnan(reference):
            return False
        if math.isinf(value) or math.isinf(reference):
            return value == reference
        return abs(value - reference) <= self.allowed(reference)

    def describe(self) -> str:
        return f"max({self.rel:g} x |reference|, {self.abs:g})"


DEFAULT_TOLERANCE = Tolerance()


@dataclasses.dataclass(frozen=True)
class OrderCheck:
    """Whether values follow the spec's ``order``; ``details`` says why (per pair)."""

    ok: bool
    details: str


@dataclasses.dataclass(frozen=True)
class AblationSpec:
    """A validated ablation spec (see the module docstring for the fields)."""

    path: Path
    name: str
    title: str
    notebook: str
    arms: dict
    metric: str
    higher_is_better: bool
    base: dict = dataclasses.field(default_factory=dict)
    order: tuple = ()
    min_gap: float = 0.0
    values: dict = dataclasses.field(default_factory=dict)
    tolerance: Tolerance = DEFAULT_TOLERANCE
    published_source: str | None = None
    published: dict = dataclasses.field(default_factory=dict)
    protocol_keys: tuple = ()
    description: str = ""
    schema_version: int = SPEC_VERSION
    input_metric: str | None = None
    seed: int = 0
    device: str | None = None
    noise_k: float = 3.0
    noise_floor: float = 0.01
    min_seeds: int = 3
    arm_points: dict = dataclasses.field(default_factory=dict)
    order_points: float = 1.0

    def describe_band(self) -> str:
        return (f"max({self.noise_k:g} x std over >= {self.min_seeds} reference seeds, {self.noise_floor:g})")

    def arm_params(self, arm: str) -> dict:
        """``base`` then the arm's overrides (the profile's parameters come first at run time)."""
        if arm not in self.arms:
            raise KeyError(f"{self.path}: no arm {arm!r} (arms: {', '.join(self.arms)})")
        return {**self.base, **self.arms[arm]}

    def check_order(self, values: Mapping[str, float | None]) -> OrderCheck:
        """Check ``order`` on ``values`` (arm -> metric value)."""
        if not self.order:
            return OrderCheck(True, "no order expected")
        missing = [a for a in self.order if values.get(a) is None or math.isnan(values[a])]
        if missing:
            return OrderCheck(False, f"not checked: no value for {', '.join(missing)}")
        parts, ok = [], True
        for better, worse in zip(self.order, self.order[1:]):
            gap = values[better] - values[worse] if self.higher_is_better else values[worse] - values[better]
            holds = gap > 0 and gap >= self.min_gap
            ok &= holds
            need = "needs > 0" if self.min_gap == 0 else f"needs >= {self.min_gap:g}"
            parts.append(f"{better} vs {worse}: margin {gap:+.4g} ({need}){'' if holds else ' VIOLATED'}")
        return OrderCheck(ok, "; ".join(parts))

    def order_text(self) -> str:
        sign = " > " if self.higher_is_better else " < "
        gap = f" (min gap {self.min_gap:g})" if self.min_gap else ""
        return sign.join(self.order) + gap


# ---------------------------------------------------------------------- loading
def specs_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "configs" / "ablations"


def list_specs(root: Path | None = None) -> list[str]:
    """Names of the specs in ``configs/ablations/`` (sorted)."""
    return sorted(p.stem for p in specs_dir(root).glob("*.yaml"))


def _resolve(path_or_name: str | Path, root: Path | None) -> Path:
    p = Path(path_or_name)
    if p.suffix in (".yaml", ".yml") or len(p.parts) > 1:
        return p
    return specs_dir(root) / f"{p}.yaml"


def load_spec(path_or_name: str | Path, root: Path | None = None) -> AblationSpec:
    """Read and validate a spec given by path or by name (``configs/ablations/<name>.yaml``).

    Every problem found is reported at once, each naming the field.
    """
    path = _resolve(path_or_name, root)
    if not path.is_file():
        have = ", ".join(list_specs(root)) or "none"
        raise SpecError(f"{path}: no such ablation spec (specs in {specs_dir(root)}: {have})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: invalid YAML ({e})") from e
    return _parse(raw, path)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _mapping(raw: dict, key: str, problems: list[str], where: str | None = None) -> dict:
    v = raw.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        problems.append(f"field {where or key!r} must be a mapping, got {type(v).__name__}")
        return {}
    return v


def _check_params(d: dict, where: str, problems: list[str]) -> None:
    for k in d:
        if not isinstance(k, str):
            problems.append(f"field {where!r}: parameter name {k!r} is not a string")
        elif k in _RUNNER_PARAMS:
            problems.append(f"field {where!r}: {k!r} is set by the runner, not by the spec")


def _parse(raw: Any, path: Path) -> AblationSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: must be a YAML mapping of fields, got {type(raw).__name__}")
    problems: list[str] = []
    problems += [f"unknown field {k!r} (known: {', '.join(sorted(_FIELDS))})" for k in raw if k not in _FIELDS]
    problems += [f"missing field {k!r}" for k in _REQUIRED if k not in raw]
    version = raw.get("schema_version")
    if "schema_version" in raw and version != SPEC_VERSION:
        problems.append(f"field 'schema_version': {version!r} is not supported (expected {SPEC_VERSION})")
    for key in ("name", "title", "notebook", "metric", "description"):
        if key in raw and not isinstance(raw[key], str):
            problems.append(f"field {key!r} must be a string, got {type(raw[key]).__name__}")
    if isinstance(raw.get("name"), str) and raw["name"] != path.stem:
        problems.append(f"field 'name': {raw['name']!r} must equal the file name {path.stem!r}")
    if "higher_is_better" in raw and not isinstance(raw["higher_is_better"], bool):
        problems.append("field 'higher_is_better' must be true or false")

    base = _mapping(raw, "base", problems)
    _check_params(base, "base", problems)
    arms_raw = _mapping(raw, "arms", problems)
    if "arms" in raw and not arms_raw and isinstance(raw.get("arms"), dict):
        problems.append("field 'arms' has no arms")
    arms: dict[str, dict] = {}
    for arm, over in arms_raw.items():
        if not isinstance(arm, str) or not _ARM_NAME.match(arm):
            problems.append(f"field 'arms': arm name {arm!r} must be letters, digits, '_', '-' or '.'")
            continue
        if over is not None and not isinstance(over, dict):
            problems.append(f"field 'arms.{arm}' must be a mapping of parameter overrides")
            continue
        arms[arm] = dict(over or {})
        _check_params(arms[arm], f"arms.{arm}", problems)
    seen: dict[str, str] = {}
    for arm, over in arms.items():
        key = repr(sorted({**base, **over}.items(), key=lambda kv: str(kv[0])))
        if key in seen:
            problems.append(f"field 'arms': {seen[key]!r} and {arm!r} set the same parameters")
        seen[key] = arm

    expect = _mapping(raw, "expect", problems)
    problems += [f"unknown field 'expect.{k}' (known: {', '.join(sorted(_EXPECT_FIELDS))})"
                 for k in expect if k not in _EXPECT_FIELDS]
    order = _parse_order(expect.get("order"), arms, problems)
    min_gap = expect.get("min_gap", 0.0)
    if not _is_number(min_gap) or min_gap < 0:
        problems.append(f"field 'expect.min_gap' must be a number >= 0, got {min_gap!r}")
        min_gap = 0.0
    elif min_gap and not order:
        problems.append("field 'expect.min_gap' needs 'expect.order'")
    values = _parse_values(expect, "expect.values", arms, problems)
    tolerance = _parse_tolerance(expect.get("tolerance"), problems)

    published = _mapping(raw, "published", problems)
    problems += [f"unknown field 'published.{k}' (known: source, values)"
                 for k in published if k not in _PUBLISHED_FIELDS]
    pub_values = _parse_values(published, "published.values", arms, problems)
    source = published.get("source")
    if published and not (isinstance(source, str) and source.strip()):
        problems.append("field 'published.source' must say where the published values come from")

    keys = raw.get("protocol_keys") or []
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        problems.append("field 'protocol_keys' must be a list of parameter names")
        keys = []
    noise = _parse_noise(expect.get("noise"), problems)
    arm_points, order_points = _parse_points(raw.get("points"), arms, problems)
    input_metric = raw.get("input_metric")
    if input_metric is not None and not isinstance(input_metric, str):
        problems.append(f"field 'input_metric' must be a metric key (string), got {input_metric!r}")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        problems.append(f"field 'seed' must be an integer, got {seed!r}")
    device = raw.get("device")
    if device is not None and device not in _DEVICES:
        problems.append(f"field 'device' must be one of {', '.join(_DEVICES)}, got {device!r}")
    if problems:
        raise SpecError(f"{path}: invalid ablation spec: " + "; ".join(problems))
    return AblationSpec(path=path, name=raw["name"], title=raw["title"], notebook=raw["notebook"], arms=arms,
                        metric=raw["metric"], higher_is_better=raw["higher_is_better"], base=dict(base),
                        order=order, min_gap=float(min_gap), values=values, tolerance=tolerance,
                        published_source=source, published=pub_values, protocol_keys=tuple(keys),
                        description=raw.get("description", ""), schema_version=version,
                        input_metric=input_metric, seed=seed, device=device, noise_k=noise["k"],
                        noise_floor=noise["floor"], min_seeds=int(noise["min_seeds"]), arm_points=arm_points,
                        order_points=order_points)


def _parse_noise(block: Any, problems: list[str]) -> dict:
    """``expect.noise``: ``{k, floor, min_seeds}`` (defaults :data:`_NOISE_FIELDS`)."""
    if block is None:
        return dict(_NOISE_FIELDS)
    if not isinstance(block, dict):
        problems.append("field 'expect.noise' must be a mapping with k, floor and/or min_seeds")
        return dict(_NOISE_FIELDS)
    out = dict(_NOISE_FIELDS)
    for k, v in block.items():
        if k not in _NOISE_FIELDS:
            problems.append(f"unknown field 'expect.noise.{k}' (known: {', '.join(_NOISE_FIELDS)})")
        elif not _is_number(v) or v < 0 or (k == "min_seeds" and (v != int(v) or v < 2)):
            need = "an integer >= 2" if k == "min_seeds" else "a number >= 0"
            problems.append(f"field 'expect.noise.{k}' must be {need}, got {v!r}")
        else:
            out[k] = float(v)
    return out


def _parse_points(block: Any, arms: dict, problems: list[str]) -> tuple[dict, float]:
    """``points: {arms: <number or arm -> number>, order: <number>}`` (default 1 per arm, 1 for the order)."""
    if block is None:
        return {a: 1.0 for a in arms}, 1.0
    if not isinstance(block, dict):
        problems.append("field 'points' must be a mapping with 'arms' and/or 'order'")
        return {}, 0.0
    problems += [f"unknown field 'points.{k}' (known: arms, order)" for k in block if k not in ("arms", "order")]
    per_arm = block.get("arms", 1.0)
    if _is_number(per_arm) and per_arm >= 0:
        arm_points = {a: float(per_arm) for a in arms}
    elif isinstance(per_arm, dict):
        arm_points = {a: 0.0 for a in arms}
        for a, v in per_arm.items():
            if a not in arms:
                problems.append(f"field 'points.arms': unknown arm {a!r} (arms: {', '.join(arms)})")
            elif not _is_number(v) or v < 0:
                problems.append(f"field 'points.arms.{a}' must be a number >= 0, got {v!r}")
            else:
                arm_points[a] = float(v)
    else:
        problems.append(f"field 'points.arms' must be a number >= 0 or map arms to numbers, got {per_arm!r}")
        arm_points = {}
    order = block.get("order", 1.0)
    if not _is_number(order) or order < 0:
        problems.append(f"field 'points.order' must be a number >= 0, got {order!r}")
        order = 0.0
    return arm_points, float(order)


def _parse_order(order: Any, arms: dict, problems: list[str]) -> tuple:
    if order is None:
        return ()
    if not isinstance(order, list) or len(order) < 2:
        problems.append("field 'expect.order' must list at least two arms, best first")
        return ()
    unknown = [a for a in order if a not in arms]
    if unknown:
        problems.append(f"field 'expect.order': unknown arm(s) {', '.join(map(str, unknown))} "
                        f"(arms: {', '.join(arms)})")
    if len(set(map(str, order))) != len(order):
        problems.append("field 'expect.order' names an arm twice")
    return tuple(order)


def _parse_values(block: dict, where: str, arms: dict, problems: list[str]) -> dict:
    values = block.get("values") or {}
    if not isinstance(values, dict):
        problems.append(f"field {where!r} must map arm names to numbers")
        return {}
    out = {}
    for arm, v in values.items():
        if arm not in arms:
            problems.append(f"field {where!r}: unknown arm {arm!r} (arms: {', '.join(arms)})")
        elif not _is_number(v):
            problems.append(f"field '{where}.{arm}' must be a number, got {v!r}")
        else:
            out[arm] = float(v)
    return out


def _parse_tolerance(tol: Any, problems: list[str]) -> Tolerance:
    if tol is None:
        return DEFAULT_TOLERANCE
    if not isinstance(tol, dict) or not tol:
        problems.append("field 'expect.tolerance' must be a mapping with 'abs' and/or 'rel'")
        return DEFAULT_TOLERANCE
    bad = [k for k in tol if k not in ("abs", "rel")]
    if bad:
        problems.append(f"unknown field(s) {', '.join(f'expect.tolerance.{k}' for k in map(str, bad))} "
                        f"(known: abs, rel)")
    for k in ("abs", "rel"):
        if k in tol and (not _is_number(tol[k]) or tol[k] < 0):
            problems.append(f"field 'expect.tolerance.{k}' must be a number >= 0, got {tol[k]!r}")
            return DEFAULT_TOLERANCE
    return Tolerance(rel=float(tol.get("rel", 0.0)), abs=float(tol.get("abs", 0.0)))


# ---------------------------------------------------------------------- running
@dataclasses.dataclass(frozen=True)
class ArmRun:
    """One planned notebook execution; a run at another seed than the spec's is ``staged`` (its
    metrics.json is copied to ``<arm>/seeds/seed<k>.json`` once every seed of the arm ran)."""

    arm: str
    params: dict
    out_dir: Path
    executed: Path
    seed: int | None = None
    staged: bool = False


def ablation_dir(name: str, root: Path | None = None) -> Path:
    return (root or repo_root()) / "results" / "ablations" / name


def plan_ablation(spec: AblationSpec, root: Path | None = None, profile: str = "smoke",
                  seeds: list[int] | None = None) -> list[ArmRun]:
    """Parameters of every arm, all checked against the notebook (nothing runs).

    Raises :class:`SpecError` (missing notebook, unknown ``protocol_keys``) or
    ``restore_lib.course.reproduce.ParameterError`` (a parameter the notebook lacks).
    """
    root = root or repo_root()
    nb = root / "notebooks" / f"{spec.notebook}.ipynb"
    if not nb.is_file():
        raise SpecError(f"{spec.path}: field 'notebook': {nb} does not exist")
    known = notebook_parameters(nb)
    if not known:
        raise ParameterError(f"{nb}: no cell tagged 'parameters'")
    problems = []
    for where, over in [("base", spec.base)] + [(f"arms.{a}", o) for a, o in spec.arms.items()]:
        unknown = sorted(set(over) - set(known))
        if unknown:
            problems.append(f"field {where!r}: unknown parameter(s) {', '.join(unknown)}")
    unknown_keys = sorted(set(spec.protocol_keys) - set(known))
    if unknown_keys:
        problems.append(f"field 'protocol_keys': unknown parameter(s) {', '.join(unknown_keys)}")
    if problems:
        raise ParameterError(f"{spec.path}: " + "; ".join(problems) + f" for {nb.name}; known: "
                             f"{', '.join(sorted(known))}")
    profile_params = load_profile_params(nb, profile, root)
    if seeds and "seed" not in known:
        raise ParameterError(f"--seeds: {nb.name} has no 'seed' parameter")
    if seeds and spec.seed not in seeds:
        raise ParameterError(f"--seeds {' '.join(map(str, seeds))}: must include {spec.seed}, the seed of "
                             f"{spec.path} (field 'seed'), whose run is the arm's metrics.json")
    seed_params = {"seed": spec.seed} if "seed" in known else {}
    runs = []
    for arm in spec.arms:
        out_dir = ablation_dir(spec.name, root) / arm
        params = {**profile_params, **seed_params, **spec.arm_params(arm), "out_dir": str(out_dir)}
        check_parameters(nb, params, source=f"{spec.path} (arm {arm!r})")
        executed = root / "results" / "ablations" / "executed" / spec.name / f"{arm}.ipynb"
        runs.append(ArmRun(arm, params, out_dir, executed, seed=params.get("seed")))
        for s in sorted(set(seeds or ()) - {spec.seed}):
            staging = root / "build" / "ablation_seeds" / spec.name / arm / f"seed{s}"
            runs.append(ArmRun(arm, {**params, "seed": s, "out_dir": str(staging)}, staging,
                               staging / f"{arm}.ipynb", seed=s, staged=True))
    return runs


def publish_arm_seeds(spec: AblationSpec, arm: str, runs: list[ArmRun], root: Path) -> Path:
    """Copy the staged seeds' metrics.json of ``arm`` to ``<arm>/seeds/seed<k>.json`` (dropping records of
    seeds no longer run) and write ``<arm>/seed_spread.json`` over every seed of the arm."""
    arm_dir = ablation_dir(spec.name, root) / arm
    mine = [r for r in runs if r.arm == arm]
    records = [load_metrics(r.out_dir / "metrics.json") for r in mine]
    summary = summarize_seed_runs(records)          # checks the runs agree before anything is written
    seeds_dir = seed_records_dir(arm_dir)
    seeds_dir.mkdir(parents=True, exist_ok=True)
    keep = set()
    for run, rec in zip(mine, records):
        if run.staged:
            keep.add(atomic_write_json(seeds_dir / f"seed{run.seed}.json", rec).name)
    for old in seeds_dir.glob("seed*.json"):
        if old.name not in keep:
            old.unlink()
    return atomic_write_json(arm_dir / SPREAD_FILE, summary)


def _recorded_metric_files(spec: AblationSpec, root: Path, references: Path) -> list[Path]:
    files = [reference_dir(references, spec.name) / arm / "metrics.json" for arm in spec.arms]
    files.append(root / "results" / spec.notebook / "metrics.json")
    return [f for f in files if f.is_file()]


def check_spec(spec: AblationSpec, root: Path | None = None, profile: str = "smoke",
               references: Path | None = None) -> list[str]:
    """What ``--check`` finds wrong with a spec beyond its own fields: unknown parameters (raised, see
    :func:`plan_ablation`) or values of another type than the parameters cell's (also raised), metric keys
    that no recorded results file of the notebook has, and an ``expect.order`` the reference seeds do not
    support (separated beyond noise, in that direction)."""
    root = root or repo_root()
    references = references or root / "results"
    plan_ablation(spec, root, profile)      # unknown parameters, values of the wrong type
    problems = []
    files = _recorded_metric_files(spec, root, references)
    if not files:
        problems.append(f"no recorded results of {spec.notebook} to check the metric keys against (looked in "
                        f"{reference_dir(references, spec.name)}/<arm>/ and {root / 'results' / spec.notebook})")
    for field in ("metric", "input_metric"):
        key = getattr(spec, field)
        if key is None or not files:
            continue
        lacking = [f for f in files if key not in load_metrics(f)["metrics"]]
        if lacking:
            problems.append(f"field {field!r}: {key!r} is not a metric that {spec.notebook} records "
                            f"(absent from {', '.join(map(str, lacking))})")
    if spec.order and not problems:
        problems += _order_problems(spec, references)
    return problems


def _order_problems(spec: AblationSpec, references: Path) -> list[str]:
    refs = {a: load_arm_reference(references, spec.name, a) for a in spec.order}
    absent = [a for a, r in refs.items() if r is None]
    if absent:
        return [f"field 'expect.order': no reference run of {', '.join(absent)} under {references}"]
    verdicts = {(v.a, v.b): v for v in pair_verdicts(refs, spec.metric, spec.min_seeds)}
    problems = []
    for better, worse in zip(spec.order, spec.order[1:]):
        v = verdicts.get((better, worse)) or verdicts[(worse, better)]
        if v.better(spec.higher_is_better) != (better, worse):
            problems.append(f"field 'expect.order': {better} > {worse} is not supported by the references: "
                            f"{v.describe(spec.higher_is_better, spec.min_seeds)}"
                            + ("" if v.difference is not None else f" (run `{seeds_command(spec.name)}`)"))
    return problems


def _execute_arm(nb: Path, run: ArmRun, profile: str, timeout: int | None, log_output: bool) -> Path:
    """Execute one arm with papermill into its own folder; return its validated metrics.json."""
    return run_notebook(nb, profile, params=run.params, timeout=timeout, log_output=log_output,
                        out_dir=run.out_dir, executed=run.executed, label=f"arm {run.arm!r}")


def format_value(v: float | None) -> str:
    """Short display of a metric value (4 significant decimals near 1, 2 for dB-like values)."""
    if v is None:
        return "-"
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.4f}" if abs(v) < 1.5 else f"{v:.2f}"


def summary_table(spec: AblationSpec, values: Mapping[str, float | None]) -> str:
    """Markdown table of one ablation's results against the spec's expectations."""
    head = ["arm", "overrides", spec.metric, "expected", "within tolerance"]
    if spec.published:
        head.append("published")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm in spec.arms:
        v, ref = values.get(arm), spec.values.get(arm)
        ok = "" if ref is None or v is None else ("yes" if spec.tolerance.accepts(v, ref) else "NO")
        over = ", ".join(f"{k}={val!r}" for k, val in spec.arms[arm].items()) or "(base only)"
        row = [arm, over, format_value(v) if v is not None else "not run",
               format_value(ref) if ref is not None else "", ok]
        if spec.published:
            row.append(format_value(spec.published.get(arm)) if arm in spec.published else "")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def run_ablation(name: str, root: Path | None = None, timeout: int | None = 3600, profile: str = "smoke",
                 log_output: bool = False, seeds: list[int] | None = None) -> int:
    """Run every arm of ``configs/ablations/<name>.yaml``; print a summary table.

    Returns 0 when every arm ran and the spec's expectations (``order``,
    ``values`` within tolerance) hold, 1 when an arm failed or an expectation
    does not hold, 2 when the spec or a parameter is wrong (nothing ran then).
    """
    root = root or repo_root()
    try:
        spec = load_spec(name, root)
        runs = plan_ablation(spec, root, profile, seeds)
    except (SpecError, ParameterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    nb = root / "notebooks" / f"{spec.notebook}.ipynb"
    refusal = refuse_to_start(profile, [(nb, run.params) for run in runs])
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    values: dict[str, float | None] = {}
    failures: list[str] = []
    with git_state_pinned(root):  # every arm records the tree as it was before the first arm wrote results
        failed_arms = _run_arms(spec, runs, nb, root, timeout, profile, log_output, values, failures)
    if seeds:
        for arm in spec.arms:
            if arm in failed_arms:
                print(f"[{spec.name}/{arm}] seed spread not updated: a run failed", file=sys.stderr)
                continue
            path = publish_arm_seeds(spec, arm, runs, root)
            print(f"[{spec.name}/{arm}] seeds {', '.join(map(str, sorted(seeds)))} -> {path}", flush=True)
    return _summarize_ablation(spec, profile, values, failures)


def _run_arms(spec, runs, nb, root, timeout, profile, log_output, values, failures) -> set:
    """Execute the runs in order, filling ``values`` (arm -> metric at the spec's seed) and
    ``failures``; the names of the arms with a failed run."""
    failed = set()
    for run in runs:
        t0 = time.perf_counter()
        label = f"{spec.name}/{run.arm}" + (f" seed {run.seed}" if run.staged else "")
        print(f"[{label}] running {nb.name} ({profile}) ...", flush=True)
        try:
            metrics = _execute_arm(nb, run, profile, timeout, log_output)
        except NotebookFailed as e:
            failures.append(str(e))
            failed.add(run.arm)
            print(f"[{label}] FAILED: {e}", file=sys.stderr, flush=True)
            continue
        obj = load_metrics(metrics)
        if spec.metric not in obj["metrics"]:
            failures.append(f"{metrics}: has no metric {spec.metric!r} (has: {', '.join(obj['metrics'])})")
            failed.add(run.arm)
            print(f"[{label}] FAILED: {failures[-1]}", file=sys.stderr, flush=True)
            continue
        if not run.staged:
            values[run.arm] = obj["metrics"][spec.metric]
        print(f"[{label}] ok in {time.perf_counter() - t0:.0f} s -> {metrics}", flush=True)
    return failed


def _summarize_ablation(spec, profile: str, values: dict, failures: list) -> int:
    """Print the summary table and the checks of the spec's expectations; the exit code."""
    print(f"\n{spec.title} ({spec.name}, profile {profile})\n")
    print(summary_table(spec, values))
    unmet = []
    if spec.order:
        check = spec.check_order(values)
        print(f"\nexpected order {spec.order_text()}: {'holds' if check.ok else 'DOES NOT HOLD'} -- "
              f"{check.details}")
        if not check.ok:
            unmet.append("order")
    off = [a for a, ref in spec.values.items() if a in values and not spec.tolerance.accepts(values[a], ref)]
    if off:
        unmet.append(f"values of {', '.join(off)} outside {spec.tolerance.describe()}")
    if spec.published_source:
        print(f"\npublished values (not graded): {spec.published_source}")
    if failures:
        print(f"\n{len(failures)} arm(s) failed:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    if unmet:
        print(f"\nthe spec's expectations do not hold: {'; '.join(unmet)}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m restore_lib.course.ablations",
                                 description="Run, check or list the ablations of configs/ablations/.")
    ap.add_argument("names", nargs="*", help="spec names or paths (default with --check/--list: all); "
                    "a first word 'run' is allowed: `ablations run NAME --seeds 0 1 2`")
    ap.add_argument("--seeds", type=int, nargs="+", help="run every arm at each of these seeds (>= 2, including "
                    "the spec's seed, whose run is <arm>/metrics.json); the others go to <arm>/seeds/seed<k>.json "
                    "and their spread to <arm>/seed_spread.json")
    ap.add_argument("--references", type=Path, default=None, help="--check: the reference results folder whose "
                    "seeds must support each expect.order (default: <repo>/results)")
    ap.add_argument("--profile", default="smoke", choices=RECORDED_PROFILES)
    add_timeout_arg(ap)
    ap.add_argument("--check", action="store_true", help="validate specs and parameters; run nothing")
    ap.add_argument("--list", action="store_true", help="list the specs")
    ap.add_argument("--log-output", action="store_true", help="stream notebook output")
    ap.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        timeout = cell_timeout(args.profile, args.timeout)
    except ParameterError as e:
        ap.error(str(e))
    root = args.root or repo_root()
    if args.names[:1] == ["run"]:
        args.names = args.names[1:]
    if args.seeds is not None and (len(set(args.seeds)) < 2 or len(set(args.seeds)) != len(args.seeds)):
        ap.error(f"--seeds needs at least 2 distinct seeds, got {args.seeds}")
    if not args.names and not (args.check or args.list):
        ap.error("name an ablation to run (or use --list / --check)")
    names = args.names or list_specs(root)
    if not names:
        print(f"no ablation specs in {specs_dir(root)}")
        return 0
    if args.check or args.list:
        bad = 0
        for n in names:
            try:
                spec = load_spec(n, root)
                problems = check_spec(spec, root, args.profile, args.references) if args.check else []
                if problems:
                    raise SpecError(f"{spec.path}: " + "; ".join(problems))
            except (SpecError, ParameterError, MetricsSchemaError) as e:
                bad += 1
                print(f"error: {e}", file=sys.stderr)
                continue
            print(f"{spec.name}: {spec.title} -- notebook {spec.notebook}, arms {', '.join(spec.arms)}, "
                  f"metric {spec.metric}" + (" (ok)" if args.check else ""))
        return 2 if bad else 0
    # one pin around every spec: the results the first spec writes must not make the next ones record a dirty tree
    with git_state_pinned(root):
        return max([run_ablation(n, root=root, timeout=timeout, profile=args.profile, log_output=args.log_output,
                                 seeds=args.seeds) for n in names])


if __name__ == "__main__":
    sys.exit(main())
