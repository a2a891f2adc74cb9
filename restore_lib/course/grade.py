"""Grade ablation results against reference runs: tolerances, order, protocol.

    python -m restore_lib.course.grade SUBMISSION [SUBMISSION ...] [--reference results/]
                                [--spec NAME_OR_PATH ...] [--out DIR] [--class]

A SUBMISSION is a folder laid out like ``results/ablations/<name>/<arm>/metrics.json``
(the folder given may be the ``results/`` folder itself, its ``ablations/``
folder, a folder holding ``<name>/<arm>/`` or the ``<name>`` folder), or an
explicit ``metrics.json``. For an explicit file the ablation and arm come from
the file: among the specs whose ``notebook`` equals the file's ``report``, the
arms whose own overrides (``arms.<arm>``, not ``base``) all equal the file's
``params`` match; the arm with the most overrides wins (so an arm ``{}``
catches what no other arm claims), and a tie is an error.

For every arm the grader compares the submitted value of the spec's ``metric``
with the reference: the value in the reference run
(``<reference>/ablations/<name>/<arm>/metrics.json``) or, when there is no
reference run for that arm, ``expect.values.<arm>`` of the spec. It passes
when ``|submitted - reference| <= max(rel * |reference|, abs)`` (the spec's
``expect.tolerance``, default ``rel=0.1, abs=0.05``). Before that it checks
that the submission used the reference's protocol: the metric protocol
(``protocol``, and the ``protocol`` of the table holding the metric), the
notebook (``report``), the ``profile``, the data (``provenance.data`` name,
hash and split), the spec's ``protocol_keys`` parameters, and the arm's own
overrides. Any difference marks the arm "protocol mismatch" and is listed
(field, submitted value, reference value).

Outputs ``grade_report.md`` and ``grade_report.csv`` in ``--out``. Exit code:
0 when every check passes, 1 when one fails (fail, protocol mismatch, missing
arm or metric, order violated), 2 for a usage error or a malformed or missing
input file (the message names the file). ``--class``: every positional
argument is a class folder whose sub-folders are one submission each (one
report for the class; a student's malformed file is reported for that
student and the others are still graded; exit code 2 then).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

from .ablations import AblationSpec, SpecError, format_value, list_specs, load_spec
from .results import MetricsSchemaError, load_metrics
from ..utils import atomic_write_text, repo_root

__all__ = ["GradeError", "BadReference", "Difference", "ArmGrade", "AblationGrade", "SubmissionGrade", "Reference",
           "PASS", "FAIL", "MISMATCH", "MISSING", "ERROR", "locate_ablation", "protocol_differences",
           "collect_submission", "grade_submission", "render_markdown", "render_csv", "write_reports", "main"]

PASS, FAIL, MISMATCH, MISSING, ERROR = "pass", "fail", "protocol mismatch", "missing", "error"
ORDER_ROW = "(order)"
CSV_COLUMNS = ("submission", "ablation", "arm", "metric", "submitted", "reference", "reference_source",
               "allowed_difference", "difference", "status", "details", "file")


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
    allowed: float | None = None
    file: Path | None = None
    details: list = dataclasses.field(default_factory=list)
    differences: list = dataclasses.field(default_factory=list)

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
    order_ok: bool | None       # None: the spec expects no order
    order_details: str

    @property
    def ok(self) -> bool:
        return all(a.status == PASS for a in self.arms) and self.order_ok is not False


@dataclasses.dataclass
class SubmissionGrade:
    name: str
    ablations: list
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(a.ok for a in self.ablations)


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
            cache[path] = load_metrics(path)
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
class Reference:
    """Reference values and runs under a ``results/``-like folder (loaded once)."""

    def __init__(self, base: Path):
        self.base = Path(base)
        self._cache: dict = {}

    def path(self, spec: AblationSpec, arm: str) -> Path:
        d = locate_ablation(self.base, spec.name) or self.base / "ablations" / spec.name
        return d / arm / "metrics.json"

    def get(self, spec: AblationSpec, arm: str) -> tuple[dict | None, float, str]:
        """``(reference metrics.json or None, value, where the value comes from)``."""
        path = self.path(spec, arm)
        if path.is_file():
            try:
                obj = _load(path, self._cache)
            except GradeError as e:
                raise BadReference(f"reference run: {e}") from e
            if spec.metric not in obj["metrics"]:
                raise BadReference(f"{path}: reference has no metric {spec.metric!r} "
                                 f"(has: {', '.join(list(obj['metrics'])[:12])})")
            return obj, float(obj["metrics"][spec.metric]), "reference run"
        if arm in spec.values:
            return None, spec.values[arm], "spec expect.values"
        raise BadReference(f"no reference for {spec.name}/{arm}: neither {path} (run `python -m "
                         f"restore_lib.course.reproduce --ablation {spec.name}`) nor expect.values.{arm} in {spec.path}")


# ---------------------------------------------------------------------- comparison
def _metric_table(obj: dict, metric: str) -> dict | None:
    tables = [t for t in obj["tables"] if isinstance(t, dict) and t.get("source") == "ours"
              and metric.startswith(f"{t.get('id')}/")]
    return max(tables, key=lambda t: len(str(t["id"])), default=None)


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


def _arm_setting_differences(sub: dict, spec: AblationSpec, arm: str) -> list[Difference]:
    return [Difference(f"params.{k} (arm setting)", sub["params"].get(k, ABSENT), v)
            for k, v in spec.arms[arm].items() if sub["params"].get(k, ABSENT) != v]


def _grade_arm(spec: AblationSpec, arm: str, path: Path | None, reference: Reference, cache: dict) -> ArmGrade:
    ref_obj, ref_value, source = reference.get(spec, arm)
    g = ArmGrade(arm, MISSING, reference=ref_value, reference_source=source,
                 allowed=spec.tolerance.allowed(ref_value) if math.isfinite(ref_value) else 0.0, file=path)
    if path is None or not path.is_file():
        g.details.append(f"no file {path}" if path else "no metrics.json submitted for this arm")
        return g
    sub = _load(path, cache)
    if spec.metric not in sub["metrics"]:
        g.details.append(f"{path} has no metric {spec.metric!r} (has: {', '.join(list(sub['metrics'])[:12])})")
        return g
    g.submitted = float(sub["metrics"][spec.metric])
    g.differences = _arm_setting_differences(sub, spec, arm)
    if ref_obj is not None:
        g.differences += protocol_differences(sub, ref_obj, spec)
    else:
        g.details.append("protocol not checked: the reference value comes from the spec, not a run")
    if g.differences:
        g.status = MISMATCH
        g.details += [d.describe() for d in g.differences]
    elif spec.tolerance.accepts(g.submitted, ref_value):
        g.status = PASS
    else:
        g.status = FAIL
        g.details.append(f"differs from the reference by {g.difference:+.4g}; allowed "
                         f"{spec.tolerance.describe()} = {g.allowed:.4g}")
    return g


def grade_ablation(spec: AblationSpec, files: dict, reference: Reference, cache: dict) -> AblationGrade:
    arms = [_grade_arm(spec, arm, files.get((spec.name, arm)), reference, cache) for arm in spec.arms]
    if not spec.order:
        return AblationGrade(spec, arms, None, "")
    check = spec.check_order({a.arm: a.submitted for a in arms})
    return AblationGrade(spec, arms, check.ok, check.details)


def grade_submission(name: str, paths: list[Path], specs: list[AblationSpec], reference: Reference,
                     only: set[str] | None = None) -> SubmissionGrade:
    """Grade one submission. ``only``: names of the ablations to grade (default: the
    ones the submission has results for)."""
    cache: dict = {}
    files = collect_submission(paths, specs, cache)
    present = {n for (n, _), f in files.items() if f.is_file()}
    chosen = [s for s in specs if s.name in (present if only is None else only)]
    return SubmissionGrade(name, [grade_ablation(s, files, reference, cache) for s in chosen])


# ---------------------------------------------------------------------- reports
def _counts(subs: list[SubmissionGrade]) -> dict:
    c = {PASS: 0, FAIL: 0, MISMATCH: 0, MISSING: 0, ERROR: 0}
    for s in subs:
        if s.error:
            c[ERROR] += 1
        for a in s.ablations:
            for g in a.arms:
                c[g.status] += 1
            if a.order_ok is not None:
                c[PASS if a.order_ok else FAIL] += 1
    return c


def _num(v: float | None) -> str:
    return "" if v is None else format_value(v)


def render_markdown(subs: list[SubmissionGrade], reference: Reference) -> str:
    c = _counts(subs)
    overall = "PASS" if all(s.ok for s in subs) else "FAIL"
    out = ["# Grade report", "",
           f"Reference runs: `{reference.base}`. A value passes when |submitted - reference| <= "
           f"max(rel x |reference|, abs) with the spec's tolerance. An arm whose protocol differs from "
           f"the reference (metric protocol, data, profile, protocol parameters, arm settings) is marked "
           f"*protocol mismatch* and not compared.", "",
           f"**Overall: {overall}** ({c[PASS]} passed, {c[FAIL]} failed, {c[MISMATCH]} protocol mismatch, "
           f"{c[MISSING]} missing" + (f", {c[ERROR]} unreadable submission(s)" if c[ERROR] else "") + ").", ""]
    for s in subs:
        out += [f"## Submission `{s.name}`: {'PASS' if s.ok else 'FAIL'}", ""]
        if s.error:
            out += [f"**Error:** {s.error}", ""]
        if not s.ablations and not s.error:
            out += ["No ablation graded.", ""]
        for a in s.ablations:
            out += _ablation_markdown(a)
    return "\n".join(out).rstrip() + "\n"


def _ablation_markdown(a: AblationGrade) -> list[str]:
    spec = a.spec
    direction = "higher is better" if spec.higher_is_better else "lower is better"
    out = [f"### {spec.title} (`{spec.name}`)", "",
           f"Notebook `{spec.notebook}`, metric `{spec.metric}` ({direction}), tolerance "
           f"{spec.tolerance.describe()}, spec `{spec.path}`.", ""]
    head = ["arm", "submitted", "reference", "reference from", "allowed difference", "difference", "status"]
    if spec.published:
        head.insert(4, "published")
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in a.arms:
        diff = g.difference
        row = [f"`{g.arm}`", _num(g.submitted) or "-", _num(g.reference), g.reference_source,
               f"±{g.allowed:.4g}" if g.allowed is not None else "", "" if diff is None else f"{diff:+.4g}",
               f"**{g.status}**"]
        if spec.published:
            row.insert(4, _num(spec.published.get(g.arm)))
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    if spec.published:
        out += [f"Published values: {spec.published_source} (shown for comparison, not graded).", ""]
    if a.order_ok is not None:
        out += [f"Expected order (best first) {spec.order_text()}: **{PASS if a.order_ok else FAIL}** -- "
                f"{a.order_details}.", ""]
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
            rows.append({"submission": s.name, "status": ERROR, "details": s.error})
        for a in s.ablations:
            for g in a.arms:
                rows.append({"submission": s.name, "ablation": a.spec.name, "arm": g.arm, "metric": a.spec.metric,
                             "submitted": "" if g.submitted is None else repr(g.submitted),
                             "reference": repr(g.reference), "reference_source": g.reference_source,
                             "allowed_difference": "" if g.allowed is None else repr(g.allowed),
                             "difference": "" if g.difference is None else repr(round(g.difference, 9)),
                             "status": g.status, "details": " | ".join(g.details),
                             "file": "" if g.file is None else str(g.file)})
            if a.order_ok is not None:
                rows.append({"submission": s.name, "ablation": a.spec.name, "arm": ORDER_ROW,
                             "metric": a.spec.metric, "status": PASS if a.order_ok else FAIL,
                             "details": f"{a.spec.order_text()}: {a.order_details}"})
    return rows


def render_csv(subs: list[SubmissionGrade]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
    w.writeheader()
    w.writerows(_csv_rows(subs))
    return buf.getvalue()


def write_reports(subs: list[SubmissionGrade], reference: Reference, out: Path) -> tuple[Path, Path]:
    md = atomic_write_text(Path(out) / "grade_report.md", render_markdown(subs, reference))
    cs = atomic_write_text(Path(out) / "grade_report.csv", render_csv(subs))
    return md, cs


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
    """One grade per member folder; a member's unusable input is recorded, not fatal."""
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m restore_lib.course.grade",
                                 description="Grade ablation results (metrics.json) against reference runs.")
    ap.add_argument("submissions", nargs="+", type=Path,
                    help="submission folder(s) or metrics.json file(s); with --class, class folders")
    ap.add_argument("--reference", type=Path, default=None, help="reference results folder (default: <repo>/results)")
    ap.add_argument("--spec", action="append", help="ablation spec name or path (repeatable; default: all specs "
                    "in configs/ablations/ that the submission has results for)")
    ap.add_argument("--out", type=Path, default=Path("."), help="folder for grade_report.md and .csv (default: .)")
    ap.add_argument("--class", dest="class_mode", action="store_true",
                    help="each argument is a class folder with one sub-folder per submission")
    args = ap.parse_args(argv)
    root = repo_root()
    reference = Reference(args.reference if args.reference is not None else root / "results")
    try:
        if not reference.base.is_dir():
            raise GradeError(f"{reference.base}: reference folder does not exist")
        specs = _load_specs(args.spec, root)
        only = {s.name for s in specs} if args.spec else None
        if args.class_mode:
            subs = _grade_class(_class_members(args.submissions), specs, reference, only)
        else:
            name = ", ".join(str(p) for p in args.submissions)
            subs = [grade_submission(name, args.submissions, specs, reference, only)]
    except GradeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    md, cs = write_reports(subs, reference, args.out)
    c = _counts(subs)
    print(f"{c[PASS]} passed, {c[FAIL]} failed, {c[MISMATCH]} protocol mismatch, {c[MISSING]} missing"
          + (f", {c[ERROR]} unreadable" if c[ERROR] else "") + f"; wrote {md} and {cs}")
    for s in subs:
        if s.error:
            print(f"error: {s.name}: {s.error}", file=sys.stderr)
    if c[ERROR]:
        return 2
    return 0 if all(s.ok for s in subs) else 1


if __name__ == "__main__":
    sys.exit(main())
