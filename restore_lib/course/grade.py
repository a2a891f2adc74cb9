"""Grade ablation results against reference runs: noise bands, order, protocol, provenance, copying.

    python -m restore_lib.course.grade SUBMISSION [SUBMISSION ...] --references DIR
                                [--spec NAME_OR_PATH ...] [--out DIR] [--class]

``--references DIR`` is the instructor's reference results folder, kept outside
the students' tree (default: ``$RESTORE_REFERENCES``; there is no silent
default: the ``results/ablations`` committed to the repository are CI examples
that every student can read). ``--reference`` is an alias.

A SUBMISSION is a folder laid out like ``results/ablations/<name>/<arm>/metrics.json``
(the folder given may be the ``results/`` folder itself, its ``ablations/``
folder, a folder holding ``<name>/<arm>/`` or the ``<name>`` folder), or an
explicit ``metrics.json``. For an explicit file the ablation and arm come from
the file: among the specs whose ``notebook`` equals the file's ``report``, the
arms whose own overrides (``arms.<arm>``, not ``base``) all equal the file's
``params`` match; the arm with the most overrides wins (so an arm ``{}``
catches what no other arm claims), and a tie is an error.

Per arm, in this order (the first that applies is the status; every finding is listed):

* **copied**: the file is byte-identical to a reference record of the arm, or
  carries a reference record's start stamp (``provenance.started``);
* **protocol mismatch**: metric protocol, notebook, profile, data,
  ``protocol_keys`` or the arm's own overrides differ from the reference;
* **provenance flagged**: run from a dirty tree, another library hash than
  the reference's, another seed than the spec's ``seed``, another device kind
  than the spec's ``device`` (default: the reference's), or a headline metric
  that disagrees with the table it comes from;
* **no work**: the metric does not beat the degraded input's value
  (``input_metric``, from the reference runs) by more than the band
  (at least the spec's noise floor);
* **band unknown**: the reference has fewer seeds than ``expect.noise.min_seeds``;
* **pass** when ``|submitted - mean of the reference seeds| <= band``, with the
  band ``max(k x std over the seeds, floor)`` (``expect.noise``), else **fail**.

An arm without a reference run is compared with ``expect.values.<arm>`` of the
spec, within ``expect.tolerance`` (no protocol or noise checks then).

**Order**: every pair of arms that the reference seeds separate beyond noise
(:mod:`restore_lib.course.references`) must come out in the same direction in
the submission; the other pairs are reported as "indistinguishable at this
profile" (or unknown, with too few seeds) and not graded.

**Points**: a passing arm earns ``points.arms`` of the spec, a holding order
``points.order``; everything else earns 0.

Outputs ``grade_report.md`` and ``grade_report.csv`` in ``--out``; with
``--class`` also ``score_sheet.csv``, ``score_sheet.md`` and
``feedback/<student>.md`` (the student's report and the written answers of
the notebooks in the submission, for manual grading). Files are written
atomically, so re-running replaces them. Exit code: 0 when every check
passes, 1 when one fails, 2 for a usage error or a malformed or missing input
file (the message names the file). ``--class``: every positional argument is a
class folder whose sub-folders are one submission each; a student's
malformed, huge or hostile file gives that student zero with the reason and
the others are still graded (exit code 2 then).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from .ablations import AblationSpec, SpecError, format_value, list_specs, load_spec
from .references import ArmReference, PairVerdict, load_arm_reference, pair_verdicts, reference_dir
from .results import MetricsSchemaError, load_metrics
from ..utils import MAX_JSON_BYTES, atomic_write_text, read_json, repo_root, sha256_file

__all__ = ["GradeError", "BadReference", "Difference", "ArmGrade", "AblationGrade", "SubmissionGrade", "Reference",
           "RefValue", "PASS", "FAIL", "MISMATCH", "MISSING", "ERROR", "COPIED", "FLAGGED", "NO_WORK", "NO_BAND",
           "REFERENCES_ENV", "locate_ablation", "protocol_differences", "provenance_flags", "collect_submission",
           "collect_answers", "grade_submission", "render_markdown", "render_csv", "score_sheet",
           "write_reports", "write_class_outputs", "main"]

PASS, FAIL, MISMATCH, MISSING, ERROR = "pass", "fail", "protocol mismatch", "missing", "error"
COPIED, FLAGGED, NO_WORK, NO_BAND = "copied", "provenance flagged", "no work", "band unknown"
STATUSES = (PASS, FAIL, MISMATCH, MISSING, COPIED, FLAGGED, NO_WORK, NO_BAND, ERROR)
ORDER_ROW = "(order)"
CSV_COLUMNS = ("submission", "ablation", "arm", "metric", "submitted", "reference", "reference_source",
               "seeds", "band", "difference", "status", "points", "max_points", "details", "file")
#: where the instructor's reference results are, when --references is not given
REFERENCES_ENV = "RESTORE_REFERENCES"
#: a student notebook larger than this is not read for written answers
MAX_NOTEBOOK_BYTES = 16 * 2 ** 20
MAX_NOTEBOOKS = 20


class GradeError(ValueError):
    """Unusable input (a usage error or a malformed or missing file); exit code 2."""


class BadReference(GradeError):
    """The reference itself is unusable (fatal even when grading a class)."""


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()


@dataclasses.dataclass(frozen=True)
class Difference:
    """One field that differs between a submission and its reference."""

    field: str
    submitted: Any
    reference: Any

    def describe(self) -> str:
        return f"{self.field}: submitted {_show(self.submitted)}, reference {_show(self.reference)}"


def _show(v: Any) -> str:
    return "(absent)" if v is ABSENT else json.dumps(v, ensure_ascii=False)


@dataclasses.dataclass
class ArmGrade:
    arm: str
    status: str
    submitted: float | None = None
    reference: float | None = None
    reference_source: str = ""
    allowed: float | None = None        # the band; None when unknown
    seeds: tuple = ()
    file: Path | None = None
    max_points: float = 0.0
    details: list = dataclasses.field(default_factory=list)
    differences: list = dataclasses.field(default_factory=list)

    @property
    def points(self) -> float:
        return self.max_points if self.status == PASS else 0.0

    @property
    def difference(self) -> float | None:
        if self.submitted is None or self.reference is None:
            return None
        if math.isinf(self.submitted) and self.submitted == self.reference:
            return 0.0
        return self.submitted - self.reference


@dataclasses.dataclass
class AblationGrade:
    spec: AblationSpec
    arms: list
    order_ok: bool | None       # None: the references separate no pair of arms
    order_details: str
    verdicts: list = dataclasses.field(default_factory=list)   # PairVerdict of every pair (reference seeds)

    @property
    def ok(self) -> bool:
        return all(a.status == PASS for a in self.arms) and self.order_ok is not False

    @property
    def points(self) -> float:
        return sum(a.points for a in self.arms) + (self.spec.order_points if self.order_ok else 0.0)

    @property
    def max_points(self) -> float:
        return sum(a.max_points for a in self.arms) + (self.spec.order_points if self.order_ok is not None else 0.0)


@dataclasses.dataclass
class SubmissionGrade:
    name: str
    ablations: list
    error: str | None = None
    answers: list = dataclasses.field(default_factory=list)         # (notebook, grade_id, text)
    answer_problems: list = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and all(a.ok for a in self.ablations)

    @property
    def points(self) -> float:
        return 0.0 if self.error else sum(a.points for a in self.ablations)


# ---------------------------------------------------------------------- locating files
def locate_ablation(base: Path, name: str) -> Path | None:
    """The folder holding ``<arm>/metrics.json`` of ablation ``name`` under ``base``
    (``base`` may be a repo, its ``results/``, ``results/ablations/`` or the
    ablation folder itself); None if there is none."""
    for d in (base / "results" / "ablations" / name, base / "ablations" / name, base / name):
        if d.is_dir():
            return d
    if base.name == name and base.is_dir():
        return base
    return None


def _load(path: Path, cache: dict) -> dict:
    if path not in cache:
        try:
            cache[path] = load_metrics(path, max_bytes=MAX_JSON_BYTES)
        except MetricsSchemaError as e:
            raise GradeError(str(e)) from e
    return cache[path]


def _match_file(obj: dict, path: Path, specs: list[AblationSpec]) -> tuple[AblationSpec, str]:
    """(spec, arm) of an explicit metrics.json: the rule in the module docstring."""
    same_nb = [s for s in specs if s.notebook == obj["report"]]
    if not same_nb:
        raise GradeError(f"{path}: report {obj['report']!r} is the notebook of no spec "
                         f"(specs: {', '.join(f'{s.name} -> {s.notebook}' for s in specs)})")
    scored = []
    for spec in same_nb:
        for arm, over in spec.arms.items():
            if all(obj["params"].get(k, ABSENT) == v for k, v in over.items()):
                scored.append((len(over), spec, arm))
    if not scored:
        raise GradeError(f"{path}: its params match no arm of {', '.join(s.name for s in same_nb)} "
                         f"(arms are told apart by their overrides; put the file in "
                         f"ablations/<name>/<arm>/ to name the arm)")
    best = max(n for n, _, _ in scored)
    top = [(s, a) for n, s, a in scored if n == best]
    if len(top) > 1:
        raise GradeError(f"{path}: matches several arms equally well ({', '.join(f'{s.name}/{a}' for s, a in top)});"
                         f" put it in ablations/<name>/<arm>/ or pass --spec")
    return top[0]


def collect_submission(paths: list[Path], specs: list[AblationSpec], cache: dict | None = None
                       ) -> dict[tuple[str, str], Path]:
    """``{(ablation, arm): metrics.json path}`` of one submission. A folder laid out
    for an ablation but lacking an arm gives that arm's expected (absent) path."""
    cache = {} if cache is None else cache
    files: dict[tuple[str, str], Path] = {}      # existing files
    expected: dict[tuple[str, str], Path] = {}   # where a missing arm should have been

    def put(key, path):
        if key in files and files[key].resolve() != path.resolve():
            raise GradeError(f"two files for {key[0]}/{key[1]}: {files[key]} and {path}")
        files[key] = path

    for p in paths:
        if not p.exists():
            raise GradeError(f"{p}: no such file or folder")
        if p.is_file():
            spec, arm = _match_file(_load(p, cache), p, specs)
            put((spec.name, arm), p)
            continue
        found = False
        for spec in specs:
            d = locate_ablation(p, spec.name)
            for arm in spec.arms if d is not None else ():
                f = d / arm / "metrics.json"
                if f.is_file():
                    put((spec.name, arm), f)
                    found = True
                else:
                    expected.setdefault((spec.name, arm), f)
        if not found:
            looked = ", ".join(f"{s.name}/<arm>/metrics.json" for s in specs)
            raise GradeError(f"{p}: holds no results of the ablations graded (looked for {looked} under "
                             f"{p}, {p / 'ablations'} and {p / 'results' / 'ablations'})")
    return {**expected, **files}


# ---------------------------------------------------------------------- reference
@dataclasses.dataclass(frozen=True)
class RefValue:
    """What an arm is graded against: its reference runs (None when the value comes from the spec),
    the value (mean over the seeds), where it comes from and the band (None: unknown)."""

    runs: ArmReference | None
    value: float
    source: str
    band: float | None
    band_note: str = ""


class Reference:
    """Reference runs under a ``results/``-like folder, at one or more seeds per arm (loaded once)."""

    def __init__(self, base: Path):
        self.base = Path(base)
        self._cache: dict = {}
        self._arms: dict = {}

    def _load(self, path: Path) -> dict:
        try:
            return _load(path, self._cache)
        except GradeError as e:
            raise BadReference(f"reference run: {e}") from e

    def runs(self, spec: AblationSpec, arm: str) -> ArmReference | None:
        key = (spec.name, arm)
        if key not in self._arms:
            try:
                self._arms[key] = load_arm_reference(self.base, spec.name, arm, self._load)
            except ValueError as e:
                raise BadReference(f"reference run: {e}") from e
        return self._arms[key]

    def get(self, spec: AblationSpec, arm: str) -> RefValue:
        runs = self.runs(spec, arm)
        if runs is not None:
            try:
                spread = runs.spread(spec.metric)
            except KeyError as e:
                raise BadReference(f"reference run: {e.args[0]}") from e
            band = runs.band(spec.metric, spec.noise_k, spec.noise_floor, spec.min_seeds)
            note = runs.too_few_seeds(spec.min_seeds) if band is None else (
                f"band {spec.describe_band()} = ±{band:.3g} over seeds {', '.join(map(str, spread.seeds))}")
            value = sum(spread.values) / spread.n      # (Spread.mean is NaN when a value is infinite)
            return RefValue(runs, value, f"reference, {spread.n} seed(s)", band, note)
        if arm in spec.values:
            v = spec.values[arm]
            return RefValue(None, v, "spec expect.values", spec.tolerance.allowed(v) if math.isfinite(v) else 0.0,
                            f"tolerance {spec.tolerance.describe()} of the spec (no reference run)")
        path = reference_dir(self.base, spec.name) / arm / "metrics.json"
        raise BadReference(f"no reference for {spec.name}/{arm}: neither {path} (run `python -m "
                           f"restore_lib.course.ablations run {spec.name} --seeds 0 1 2`) nor expect.values.{arm} "
                           f"in {spec.path}")

    def verdicts(self, spec: AblationSpec) -> list[PairVerdict]:
        refs = {a: self.runs(spec, a) for a in spec.arms}
        return pair_verdicts({a: r for a, r in refs.items() if r is not None}, spec.metric, spec.min_seeds)


# ---------------------------------------------------------------------- comparison
def _metric_table(obj: dict, metric: str) -> dict | None:
    tables = [t for t in obj["tables"] if isinstance(t, dict) and t.get("source") == "ours"
              and metric.startswith(f"{t.get('id')}/")]
    return max(tables, key=lambda t: len(str(t["id"])), default=None)


def _table_cells(obj: dict, metric: str) -> list:
    """The cells of the "ours" table that ``metric`` (``<table>/<row label>/<column>``) can name; the row label
    is the value of one column of the row (the recorder's ``row_key``, not recorded in the file)."""
    t = _metric_table(obj, metric)
    if t is None:
        return []
    rest = metric[len(str(t["id"])) + 1:]
    cols = [str(c) for c in t["columns"]]
    cells = []
    for row in t["rows"]:
        for label in row if isinstance(row, list) else ():
            col = rest[len(str(label)) + 1:]
            if rest.startswith(f"{label}/") and col in cols and col != str(label):
                cells.append(row[cols.index(col)])
    return cells


def _diff_dicts(prefix: str, sub: dict, ref: dict, skip=("description",)) -> list[Difference]:
    keys = [k for k in dict.fromkeys([*ref, *sub]) if k not in skip]
    return [Difference(f"{prefix}.{k}", sub.get(k, ABSENT), ref.get(k, ABSENT)) for k in keys
            if sub.get(k, ABSENT) != ref.get(k, ABSENT)]


def protocol_differences(sub: dict, ref: dict, spec: AblationSpec) -> list[Difference]:
    """Every protocol field in which a submission differs from its reference run."""
    diffs = [Difference(k, sub[k], ref[k]) for k in ("report", "profile") if sub[k] != ref[k]]
    diffs += _diff_dicts("protocol", sub["protocol"], ref["protocol"])
    ts, tr = _metric_table(sub, spec.metric), _metric_table(ref, spec.metric)
    if (ts and "protocol" in ts) or (tr and "protocol" in tr):
        tid = (tr or ts)["id"]
        diffs += _diff_dicts(f"tables[{tid}].protocol", (ts or {}).get("protocol", {}),
                             (tr or {}).get("protocol", {}))
    ds, dr = sub["provenance"].get("data") or {}, ref["provenance"].get("data") or {}
    diffs += [Difference(f"provenance.data.{k}", ds.get(k, ABSENT), dr.get(k, ABSENT))
              for k in ("name", "hash", "split") if ds.get(k, ABSENT) != dr.get(k, ABSENT)]
    diffs += [Difference(f"params.{k}", sub["params"].get(k, ABSENT), ref["params"].get(k, ABSENT))
              for k in spec.protocol_keys if sub["params"].get(k, ABSENT) != ref["params"].get(k, ABSENT)]
    return diffs


def _device_kind(device: Any) -> str:
    return str(device).split()[0].split(":")[0] if device else ""


def _same_number(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a == b or (math.isnan(a) and math.isnan(b))
    return False


def provenance_flags(sub: dict, spec: AblationSpec, ref: dict | None) -> list[Difference]:
    """What in a submission's provenance says it is not an honest run of the spec (each with its values):
    a dirty (or unknown) tree, another library hash than the reference's, another seed than the spec's,
    another device kind than the spec's (default: the reference's), and headline metrics (the spec's
    ``metric`` and ``input_metric``) that disagree with the table they come from."""
    prov = sub["provenance"]
    flags = []
    if prov.get("dirty") is not False:
        flags.append(Difference("provenance.dirty (run from a modified working tree)", prov.get("dirty"), False))
    if ref is not None and prov.get("lib_hash") != ref["provenance"].get("lib_hash"):
        flags.append(Difference("provenance.lib_hash", prov.get("lib_hash"), ref["provenance"].get("lib_hash")))
    if prov.get("seed") != spec.seed:
        flags.append(Difference("provenance.seed (the spec's seed)", prov.get("seed"), spec.seed))
    want = spec.device or (_device_kind(ref["provenance"].get("device")) if ref is not None else "")
    if want and _device_kind(prov.get("device")) != want:
        flags.append(Difference("provenance.device (kind)", prov.get("device"), want))
    for key in (spec.metric, spec.input_metric):
        if key is None or key not in sub["metrics"]:
            continue
        cells = _table_cells(sub, key)
        if not any(_same_number(sub["metrics"][key], c) for c in cells):
            flags.append(Difference(f"metrics[{key!r}] vs its table cell", sub["metrics"][key],
                                    cells[0] if len(cells) == 1 else cells or ABSENT))
    return flags


def _arm_setting_differences(sub: dict, spec: AblationSpec, arm: str) -> list[Difference]:
    return [Difference(f"params.{k} (arm setting)", sub["params"].get(k, ABSENT), v)
            for k, v in spec.arms[arm].items() if sub["params"].get(k, ABSENT) != v]


def _copy_evidence(path: Path, sub: dict, runs: ArmReference | None) -> list[str]:
    if runs is None:
        return []
    found = []
    digest = sha256_file(path)
    started = sub["provenance"].get("started")
    for f, rec in zip(runs.files, runs.records):
        if sha256_file(f) == digest:
            found.append(f"copied: byte-identical to the reference record {f.name} of seed {rec['provenance']['seed']}")
        elif started is not None and rec["provenance"].get("started") == started:
            found.append(f"copied: carries the start stamp {started!r} of the reference run at seed "
                         f"{rec['provenance']['seed']}")
    return found


def _input_value(spec: AblationSpec, sub: dict, runs: ArmReference | None) -> tuple[float | None, str]:
    """The degraded input's value of the metric: mean over the reference seeds, else the submission's own."""
    if spec.input_metric is None:
        return None, ""
    if runs is not None and all(spec.input_metric in r["metrics"] for r in runs.records):
        values = runs.spread(spec.input_metric).values
        return sum(values) / len(values), "reference"
    if spec.input_metric in sub["metrics"]:
        return float(sub["metrics"][spec.input_metric]), "submission"
    return None, ""


def _no_work(spec: AblationSpec, value: float, sub: dict, runs: ArmReference | None, band: float | None) -> str:
    inp, where = _input_value(spec, sub, runs)
    if inp is None or not math.isfinite(inp):
        return ""
    margin = max(band if band is not None and math.isfinite(band) else 0.0, spec.noise_floor)
    gain = value - inp if spec.higher_is_better else inp - value
    if gain > margin:
        return ""
    return (f"no work: {spec.metric} = {format_value(value)} is at the degraded input's level "
            f"({spec.input_metric} = {format_value(inp)} in the {where}); a result must beat it by more than "
            f"{margin:.3g}")


def _within(value: float, reference: float, band: float) -> bool:
    if math.isnan(value) or math.isnan(reference) or math.isnan(band):
        return False
    if math.isinf(value) or math.isinf(reference):
        return value == reference
    return abs(value - reference) <= band


def _grade_arm(spec: AblationSpec, arm: str, path: Path | None, reference: Reference, cache: dict) -> ArmGrade:
    ref = reference.get(spec, arm)
    g = ArmGrade(arm, MISSING, reference=ref.value, reference_source=ref.source, allowed=ref.band,
                 seeds=ref.runs.seeds if ref.runs else (), file=path, max_points=spec.arm_points.get(arm, 0.0))
    if path is None or not path.is_file():
        g.details.append(f"no file {path}" if path else "no metrics.json submitted for this arm")
        return g
    sub = _load(path, cache)
    if spec.metric not in sub["metrics"]:
        g.details.append(f"{path} has no metric {spec.metric!r} (has: {', '.join(list(sub['metrics'])[:12])})")
        return g
    g.submitted = float(sub["metrics"][spec.metric])
    copied = _copy_evidence(path, sub, ref.runs)
    g.differences = _arm_setting_differences(sub, spec, arm)
    flags: list[Difference] = []
    if ref.runs is not None:
        g.differences += protocol_differences(sub, ref.runs.main, spec)
        flags = provenance_flags(sub, spec, ref.runs.main)
    else:
        g.details.append("protocol and provenance not checked: the reference value comes from the spec, not a run")
    no_work = _no_work(spec, g.submitted, sub, ref.runs, ref.band)
    within = ref.band is not None and _within(g.submitted, ref.value, ref.band)
    for status, found in ((COPIED, copied), (MISMATCH, g.differences), (FLAGGED, flags), (NO_WORK, no_work),
                          (NO_BAND, ref.band is None), (PASS, within), (FAIL, True)):
        if found:
            g.status = status
            break
    g.details += copied + [d.describe() for d in g.differences]
    g.details += [f"flag: {d.describe()}" for d in flags]
    g.details += [no_work] if no_work else []
    if ref.band is None:
        g.details.append(ref.band_note)
    elif not within:
        diff = "" if g.difference is None else f"by {g.difference:+.4g} "
        g.details.append(f"differs from the reference {diff}outside the {ref.band_note}")
    return g


def _order_check(spec: AblationSpec, verdicts: list[PairVerdict], arms: list[ArmGrade]) -> tuple[bool | None, str]:
    """The submission against every pair the reference seeds separate (None: no such pair)."""
    pairs = [p for p in (v.better(spec.higher_is_better) for v in verdicts) if p is not None]
    if not pairs:
        return None, ""
    values = {a.arm: a.submitted for a in arms}
    parts, ok = [], True
    for better, worse in pairs:
        vb, vw = values.get(better), values.get(worse)
        if vb is None or vw is None or math.isnan(vb) or math.isnan(vw):
            ok = False
            parts.append(f"{better} > {worse}: not checked, no value for "
                         f"{', '.join(a for a, v in ((better, vb), (worse, vw)) if v is None or math.isnan(v))}")
            continue
        gap = vb - vw if spec.higher_is_better else vw - vb
        ok &= gap > 0
        parts.append(f"{better} better than {worse}: margin {gap:+.4g}{'' if gap > 0 else ' VIOLATED'}")
    return ok, "; ".join(parts)


def grade_ablation(spec: AblationSpec, files: dict, reference: Reference, cache: dict) -> AblationGrade:
    arms = [_grade_arm(spec, arm, files.get((spec.name, arm)), reference, cache) for arm in spec.arms]
    verdicts = reference.verdicts(spec)
    ok, details = _order_check(spec, verdicts, arms)
    return AblationGrade(spec, arms, ok, details, verdicts)


def grade_submission(name: str, paths: list[Path], specs: list[AblationSpec], reference: Reference,
                     only: set[str] | None = None) -> SubmissionGrade:
    """Grade one submission. ``only``: names of the ablations to grade (default: the
    ones the submission has results for)."""
    cache: dict = {}
    files = collect_submission(paths, specs, cache)
    present = {n for (n, _), f in files.items() if f.is_file()}
    chosen = [s for s in specs if s.name in (present if only is None else only)]
    sub = SubmissionGrade(name, [grade_ablation(s, files, reference, cache) for s in chosen])
    for p in paths:
        if p.is_dir():
            answers, problems = collect_answers(p)
            sub.answers += answers
            sub.answer_problems += problems
    return sub


def collect_answers(folder: Path) -> tuple[list, list]:
    """Written answers in the notebooks under ``folder``: markdown cells with nbgrader metadata
    ``solution: true`` (``[(notebook, grade_id, text)]``), and a line per notebook that could not be read."""
    answers, problems = [], []
    notebooks = sorted(p for p in Path(folder).rglob("*.ipynb") if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    if len(notebooks) > MAX_NOTEBOOKS:
        problems.append(f"{folder}: {len(notebooks)} notebooks; only the first {MAX_NOTEBOOKS} were read")
    for nb_path in notebooks[:MAX_NOTEBOOKS]:
        try:
            nb = read_json(nb_path, GradeError, what="notebook", max_bytes=MAX_NOTEBOOK_BYTES)
        except GradeError as e:
            problems.append(str(e))
            continue
        cells = nb.get("cells") if isinstance(nb, dict) else None
        if not isinstance(cells, list):
            problems.append(f"{nb_path}: not a notebook (no list of cells)")
            continue
        for cell in (c for c in cells if isinstance(c, dict)):
            meta = cell.get("metadata")
            nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
            if cell.get("cell_type") != "markdown" or not isinstance(nbg, dict) or nbg.get("solution") is not True:
                continue
            src = cell.get("source", "")
            text = "".join(map(str, src)) if isinstance(src, list) else str(src)
            answers.append((nb_path.name, str(nbg.get("grade_id", "?")), text.strip()))
    return answers, problems


# ---------------------------------------------------------------------- reports
def _counts(subs: list[SubmissionGrade]) -> dict:
    c = dict.fromkeys(STATUSES, 0)
    for s in subs:
        if s.error:
            c[ERROR] += 1
        for a in s.ablations:
            for g in a.arms:
                c[g.status] += 1
            if a.order_ok is not None:
                c[PASS if a.order_ok else FAIL] += 1
    return c


def _count_text(c: dict) -> str:
    return ", ".join(f"{n} {'unreadable' if k == ERROR else k}" for k, n in c.items() if n or k in (PASS, FAIL))


def _num(v: float | None) -> str:
    return "" if v is None else format_value(v)


def _pts(v: float) -> str:
    return f"{v:g}"


def render_markdown(subs: list[SubmissionGrade], reference: Reference | None) -> str:
    overall = "PASS" if all(s.ok for s in subs) else "FAIL"
    out = ["# Grade report", ""]
    if reference is not None:
        out += [f"Reference runs: `{reference.base}`. A value passes when |submitted - mean of the reference seeds| "
                f"<= the band max(k x std over the seeds, floor) of the spec's `expect.noise`; with too few "
                f"reference seeds the band is unknown and nothing passes. An arm whose protocol differs from the "
                f"reference is *protocol mismatch*; a copied file, a flagged provenance or a result at the "
                f"degraded input's level earns nothing.", ""]
    out += [f"**Overall: {overall}** ({_count_text(_counts(subs))}).", ""]
    for s in subs:
        out += [f"## Submission `{s.name}`: {'PASS' if s.ok else 'FAIL'} ({_pts(s.points)} of "
                f"{_pts(sum(a.max_points for a in s.ablations))} points)", ""]
        if s.error:
            out += [f"**Error (0 points):** {s.error}", ""]
        if not s.ablations and not s.error:
            out += ["No ablation graded.", ""]
        for a in s.ablations:
            out += _ablation_markdown(a)
    return "\n".join(out).rstrip() + "\n"


def _verdict_lines(a: AblationGrade) -> list[str]:
    spec = a.spec
    if not a.verdicts:
        return ["Order: no verdict, fewer than two arms have reference runs.", ""]
    out = [f"Order from the reference seeds (beyond noise: every seed agrees on the sign and |mean| > 3 "
           f"standard errors):", ""]
    out += [f"- {v.describe(spec.higher_is_better, spec.min_seeds)}" for v in a.verdicts]
    out.append("")
    if a.order_ok is None:
        if all(v.difference is not None for v in a.verdicts):
            out += ["All arms are indistinguishable at this profile: no order is graded.", ""]
        else:
            out += ["No order is graded (too few reference seeds to separate the arms).", ""]
    else:
        out += [f"Order check: **{PASS if a.order_ok else FAIL}** ({_pts(spec.order_points)} points) -- "
                f"{a.order_details}.", ""]
    return out


def _ablation_markdown(a: AblationGrade) -> list[str]:
    spec = a.spec
    direction = "higher is better" if spec.higher_is_better else "lower is better"
    out = [f"### {spec.title} (`{spec.name}`)", "",
           f"Notebook `{spec.notebook}`, metric `{spec.metric}` ({direction}), band {spec.describe_band()}, "
           f"spec `{spec.path}`. Points: {_pts(a.points)} of {_pts(a.max_points)}.", ""]
    head = ["arm", "submitted", "reference", "reference from", "band", "difference", "status", "points"]
    if spec.published:
        head.insert(4, "published")
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in a.arms:
        diff = g.difference
        band = "unknown" if g.allowed is None else f"±{g.allowed:.3g}"
        row = [f"`{g.arm}`", _num(g.submitted) or "-", _num(g.reference), g.reference_source, band,
               "" if diff is None else f"{diff:+.4g}", f"**{g.status}**", f"{_pts(g.points)}/{_pts(g.max_points)}"]
        if spec.published:
            row.insert(4, _num(spec.published.get(g.arm)))
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    if spec.published:
        out += [f"Published values: {spec.published_source} (shown for comparison, not graded).", ""]
    out += _verdict_lines(a)
    notes = [(g, d) for g in a.arms for d in g.details]
    if notes:
        out += ["Details:", ""]
        out += [f"- `{g.arm}`: {d}" for g, d in notes]
        out.append("")
    return out


def _csv_rows(subs: list[SubmissionGrade]) -> list[dict]:
    rows = []
    for s in subs:
        if s.error:
            rows.append({"submission": s.name, "status": ERROR, "points": 0, "details": s.error})
        for a in s.ablations:
            for g in a.arms:
                rows.append({"submission": s.name, "ablation": a.spec.name, "arm": g.arm, "metric": a.spec.metric,
                             "submitted": "" if g.submitted is None else repr(g.submitted),
                             "reference": repr(g.reference), "reference_source": g.reference_source,
                             "seeds": " ".join(map(str, g.seeds)),
                             "band": "unknown" if g.allowed is None else repr(g.allowed),
                             "difference": "" if g.difference is None else repr(round(g.difference, 9)),
                             "status": g.status, "points": g.points, "max_points": g.max_points,
                             "details": " | ".join(g.details), "file": "" if g.file is None else str(g.file)})
            if a.order_ok is not None:
                rows.append({"submission": s.name, "ablation": a.spec.name, "arm": ORDER_ROW,
                             "metric": a.spec.metric, "status": PASS if a.order_ok else FAIL,
                             "points": a.spec.order_points if a.order_ok else 0.0, "max_points": a.spec.order_points,
                             "details": a.order_details})
    return rows


def render_csv(subs: list[SubmissionGrade]) -> str:
    return pd.DataFrame(_csv_rows(subs), columns=list(CSV_COLUMNS)).to_csv(index=False, lineterminator="\n")


def write_reports(subs: list[SubmissionGrade], reference: Reference, out: Path) -> tuple[Path, Path]:
    md = atomic_write_text(Path(out) / "grade_report.md", render_markdown(subs, reference))
    cs = atomic_write_text(Path(out) / "grade_report.csv", render_csv(subs))
    return md, cs


def score_sheet(subs: list[SubmissionGrade], specs: list[AblationSpec]) -> pd.DataFrame:
    """One row per student: points per ablation, total, maximum, and the reason of a zero."""
    names = [s.name for s in specs if any(a.spec.name == s.name for sub in subs for a in sub.ablations)]
    maxima = {n: max((a.max_points for sub in subs for a in sub.ablations if a.spec.name == n), default=0.0)
              for n in names}
    rows = []
    for sub in subs:
        got = {a.spec.name: a.points for a in sub.ablations}
        row = {"student": sub.name, **{n: (0.0 if sub.error else got.get(n, 0.0)) for n in names}}
        row["total"] = sub.points
        row["max"] = sum(maxima.values())
        row["notes"] = f"error: {sub.error}" if sub.error else _status_summary(sub)
        rows.append(row)
    return pd.DataFrame(rows, columns=["student", *names, "total", "max", "notes"])


def _status_summary(sub: SubmissionGrade) -> str:
    bad = [f"{a.spec.name}/{g.arm}: {g.status}" for a in sub.ablations for g in a.arms if g.status != PASS]
    bad += [f"{a.spec.name}/order: fail" for a in sub.ablations if a.order_ok is False]
    return "; ".join(bad) if bad else "all checks pass"


def frame_markdown(df: pd.DataFrame) -> str:
    """A pipe table of ``df`` (pandas' to_markdown needs tabulate, which the course does not install)."""
    def cell(v):
        return (f"{v:g}" if isinstance(v, float) else str(v)).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def render_feedback(sub: SubmissionGrade) -> str:
    """A student's feedback: their part of the report, then their written answers for manual grading."""
    out = [render_markdown([sub], None).replace("# Grade report", f"# Feedback for `{sub.name}`", 1).rstrip(), "",
           "## Written answers (graded by hand)", ""]
    if not sub.answers:
        out += ["No written answers found (markdown cells with nbgrader metadata `solution: true` in the "
                "submitted notebooks).", ""]
    for nb, gid, text in sub.answers:
        out += [f"### {nb}: `{gid}`", "", text or "*(empty)*", ""]
    out += [f"- could not read: {p}" for p in sub.answer_problems]
    return "\n".join(out).rstrip() + "\n"


def _feedback_name(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".")
    return (safe or "_") + ".md"


def write_class_outputs(subs: list[SubmissionGrade], specs: list[AblationSpec], out: Path) -> list[Path]:
    """``score_sheet.csv``, ``score_sheet.md`` and ``feedback/<student>.md`` (feedback files of students no
    longer graded are removed, so that re-running gives the same folder)."""
    out = Path(out)
    df = score_sheet(subs, specs)
    written = [atomic_write_text(out / "score_sheet.csv", df.to_csv(index=False, lineterminator="\n")),
               atomic_write_text(out / "score_sheet.md", "# Score sheet\n\n" + frame_markdown(df))]
    fb = out / "feedback"
    names = {_feedback_name(s.name) for s in subs}
    if len(names) != len(subs):
        raise GradeError(f"two submissions map to one feedback file name in {fb}: "
                         f"{', '.join(s.name for s in subs)}")
    written += [atomic_write_text(fb / _feedback_name(s.name), render_feedback(s)) for s in subs]
    for old in fb.glob("*.md"):
        if old.name not in names:
            old.unlink()
    return written


# ---------------------------------------------------------------------- CLI
def _load_specs(names: list[str] | None, root: Path) -> list[AblationSpec]:
    names = names or list_specs(root)
    if not names:
        raise GradeError(f"no ablation specs: none in {root / 'configs' / 'ablations'} and no --spec given")
    try:
        specs = [load_spec(n, root) for n in names]
    except SpecError as e:
        raise GradeError(str(e)) from e
    dup = {s.name for s in specs if sum(t.name == s.name for t in specs) > 1}
    if dup:
        raise GradeError(f"spec(s) given twice: {', '.join(sorted(dup))}")
    return specs


def _class_members(folders: list[Path]) -> list[Path]:
    members = []
    for f in folders:
        if not f.is_dir():
            raise GradeError(f"{f}: --class needs folders whose sub-folders are the submissions")
        subs = sorted(d for d in f.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not subs:
            raise GradeError(f"{f}: has no sub-folders (one per submission)")
        members += subs
    return members


def _grade_class(members: list[Path], specs: list[AblationSpec], reference: Reference,
                 only: set[str] | None) -> list[SubmissionGrade]:
    """One grade per member folder; a member's unusable input is recorded (zero points), not fatal."""
    collected: dict[Path, Any] = {}
    for m in members:
        try:
            collected[m] = collect_submission([m], specs, {})
        except GradeError as e:
            collected[m] = e
    if only is None:  # everybody is graded on every ablation that anybody submitted
        only = {n for c in collected.values() if isinstance(c, dict) for (n, _), f in c.items() if f.is_file()}
    subs = []
    for m in members:
        if isinstance(collected[m], GradeError):
            subs.append(SubmissionGrade(m.name, [], error=str(collected[m])))
            continue
        try:
            subs.append(grade_submission(m.name, [m], specs, reference, only))
        except BadReference:
            raise
        except GradeError as e:
            subs.append(SubmissionGrade(m.name, [], error=str(e)))
    return subs


def _reference_base(given: Path | None) -> Path:
    if given is not None:
        base = given
    elif os.environ.get(REFERENCES_ENV):
        base = Path(os.environ[REFERENCES_ENV])
    else:
        raise GradeError(f"no reference folder: pass --references DIR or set ${REFERENCES_ENV} (keep the "
                         f"instructor's references outside the students' tree; the results/ablations committed "
                         f"to the repository are CI examples)")
    if not base.is_dir():
        raise GradeError(f"{base}: reference folder does not exist")
    return base


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m restore_lib.course.grade",
                                 description="Grade ablation results (metrics.json) against reference runs.")
    ap.add_argument("submissions", nargs="+", type=Path,
                    help="submission folder(s) or metrics.json file(s); with --class, class folders")
    ap.add_argument("--references", "--reference", dest="references", type=Path, default=None,
                    help=f"the instructor's reference results folder (default: ${REFERENCES_ENV})")
    ap.add_argument("--spec", action="append", help="ablation spec name or path (repeatable; default: all specs "
                    "in configs/ablations/ that the submission has results for)")
    ap.add_argument("--out", type=Path, default=Path("."), help="folder for the reports (default: .)")
    ap.add_argument("--class", dest="class_mode", action="store_true",
                    help="each argument is a class folder with one sub-folder per submission; also writes "
                         "score_sheet.csv/.md and feedback/<student>.md")
    args = ap.parse_args(argv)
    root = repo_root()
    try:
        reference = Reference(_reference_base(args.references))
        specs = _load_specs(args.spec, root)
        only = {s.name for s in specs} if args.spec else None
        if args.class_mode:
            subs = _grade_class(_class_members(args.submissions), specs, reference, only)
            extra = write_class_outputs(subs, specs, args.out)
        else:
            name = ", ".join(str(p) for p in args.submissions)
            subs = [grade_submission(name, args.submissions, specs, reference, only)]
            extra = []
    except GradeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    md, cs = write_reports(subs, reference, args.out)
    c = _counts(subs)
    print(f"{_count_text(c)}; wrote {', '.join(str(p) for p in [md, cs, *extra[:2]])}"
          + (f" and {len(extra) - 2} feedback file(s)" if extra else ""))
    for s in subs:
        if s.error:
            print(f"error: {s.name}: {s.error}", file=sys.stderr)
    if c[ERROR]:
        return 2
    return 0 if all(s.ok for s in subs) else 1


if __name__ == "__main__":
    sys.exit(main())
