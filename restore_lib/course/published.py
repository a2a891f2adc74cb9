"""Published figures as data, shown beside ours in the report's layout.

Each report notebook's published figures live in ``configs/<notebook>/published.yaml``
(never in a code cell)::

    schema_version: 1
    tables:
      - id: report_table3                  # recorded as the table "published_report_table3"
        title: "x4 SR on Set14 and Urban100"
        source: {document: "Course report 003 (RestoraVision)", section: "4.2", table: "Table 3"}
        protocol: "PSNR on Y, crop 4; LPIPS (AlexNet)"
        columns: [method, Set14 PSNR, Set14 LPIPS]    # the report's layout; the first column names the rows
        rows:
          - [SRGAN, 26.84, 0.1327]
        notes: ["..."]
        ours:                              # optional: our measured column beside each mapped published one
          data: "the 4 embedded test photos (stand-ins, not Set14)"
          rows: {SRGAN: sr/SRGAN}          # published row -> our metrics key prefix
          columns: {Set14 PSNR: PSNR}      # published column -> our column; the key is "<prefix>/<column>"
          cells: {SRGAN: {Set14 LPIPS: sr/SRGAN/LPIPS}}   # single cells, where rows x columns does not fit
          extra_rows: {bicubic: sr/bicubic (MATLAB)}      # rows we measure that the report has not (a key
                                                          # prefix, or {published column: key})
          same_data: {this: deblur/blurred input/PSNR, 04_diffir_two_stage: main_deblur/blurred input/PSNR}

A key ``<notebook>:<key>`` reads another notebook's committed ``results/`` record of the
same profile (named in the caption). ``same_data`` names, for this run and each other
record used, the degraded input's score: they must be equal, or the table refuses to
mix them. ``findings`` (see :mod:`restore_lib.course.findings`) lists the comparisons
whose sentences are generated from the numbers.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..utils import repo_root
from .results import MetricsSchemaError, _fmt, load_metrics
from .runner import results_dir_for

__all__ = ["PUBLISHED_VERSION", "PublishedError", "PublishedTable", "Published", "published_path",
           "load_published", "add_published", "beside", "beside_markdown", "show_published"]

PUBLISHED_VERSION = 1
_TABLE_FIELDS = {"id", "title", "source", "protocol", "columns", "rows", "notes", "ours"}
_SOURCE_FIELDS = {"document", "section", "table"}
_OURS_FIELDS = {"data", "rows", "columns", "cells", "extra_rows", "same_data"}
THIS = "this"


class PublishedError(ValueError):
    """A published.yaml that cannot be used (the message names the file and every problem)."""


@dataclasses.dataclass(frozen=True)
class PublishedTable:
    id: str
    title: str
    source: dict
    protocol: str
    columns: tuple[str, ...]
    rows: tuple[tuple, ...]
    notes: tuple[str, ...] = ()
    ours: dict | None = None

    @property
    def citation(self) -> str:
        s = self.source
        return ", ".join(x for x in (s["document"], s.get("section"), s.get("table")) if x)

    def cells(self) -> dict[str, dict[str, str]]:
        """Published row -> {published column: our metrics key} (``extra_rows`` not included)."""
        if not self.ours:
            return {}
        out: dict[str, dict[str, str]] = {}
        for row, prefix in (self.ours.get("rows") or {}).items():
            out[row] = {col: f"{prefix}/{ours}" for col, ours in (self.ours.get("columns") or {}).items()}
        for row, cols in (self.ours.get("cells") or {}).items():
            out.setdefault(row, {}).update(cols)
        return out


@dataclasses.dataclass(frozen=True)
class Published:
    report: str
    path: Path
    tables: tuple[PublishedTable, ...]
    findings: tuple[dict, ...]

    def table(self, table_id: str) -> PublishedTable:
        for t in self.tables:
            if t.id == table_id:
                return t
        raise KeyError(f"{self.path}: no table {table_id!r} (tables: {', '.join(t.id for t in self.tables)})")


def published_path(report: str, root: str | Path | None = None) -> Path:
    return Path(root or repo_root()) / "configs" / report / "published.yaml"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_table(i: int, raw: Any, problems: list[str]) -> PublishedTable | None:
    where = f"tables[{i}]"
    if not isinstance(raw, dict):
        problems.append(f"{where} must be a mapping")
        return None
    problems += [f"{where}: unknown field {k!r} (known: {', '.join(sorted(_TABLE_FIELDS))})"
                 for k in raw if k not in _TABLE_FIELDS]
    for k in ("id", "title", "source", "columns", "rows"):
        if k not in raw:
            problems.append(f"{where}: missing field {k!r}")
    if any(k not in raw for k in ("id", "title", "source", "columns", "rows")):
        return None
    where = f"table {raw['id']!r}"
    src = raw["source"]
    if not isinstance(src, dict) or not str(src.get("document") or "").strip():
        problems.append(f"{where}: source must be a mapping with a 'document' (and section, table)")
        src = {"document": "?"}
    else:
        problems += [f"{where}: unknown source field {k!r} (known: document, section, table)"
                     for k in src if k not in _SOURCE_FIELDS]
    cols = raw["columns"]
    if not (isinstance(cols, list) and len(cols) >= 2 and all(isinstance(c, str) for c in cols)):
        problems.append(f"{where}: columns must be a list of at least two names")
        return None
    rows = raw["rows"]
    if not isinstance(rows, list) or not rows:
        problems.append(f"{where}: rows must be a non-empty list")
        return None
    for j, r in enumerate(rows):
        if not (isinstance(r, list) and len(r) == len(cols)):
            problems.append(f"{where}: row {j} has {len(r) if isinstance(r, list) else '?'} cells, "
                            f"the columns are {len(cols)}")
        elif not all(v is None or _is_number(v) or isinstance(v, str) for v in r):
            problems.append(f"{where}: row {j} has a cell that is not a number, text or null")
    labels = [str(r[0]) for r in rows if isinstance(r, list) and r]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        problems.append(f"{where}: row labels (first column) repeat: {dupes}")
    ours = raw.get("ours")
    before = len(problems)
    if ours is not None:
        if not isinstance(ours, dict):
            problems.append(f"{where}: ours must be a mapping")
            ours = None
        else:
            problems += [f"{where}: unknown field 'ours.{k}' (known: {', '.join(sorted(_OURS_FIELDS))})"
                         for k in ours if k not in _OURS_FIELDS]
            if not str(ours.get("data") or "").strip():
                problems.append(f"{where}: ours.data must say what we measured on (stand-ins are labelled)")
            for k in ("rows", "columns", "cells", "extra_rows", "same_data"):
                if k in ours and not isinstance(ours[k], dict):
                    problems.append(f"{where}: ours.{k} must be a mapping")
            if len(problems) > before:
                return None
            unknown_rows = sorted((set(ours.get("rows") or {}) | set(ours.get("cells") or {})) - set(labels))
            problems += [f"{where}: ours names row {r!r}, which the table does not have" for r in unknown_rows]
            extra = [v for v in (ours.get("extra_rows") or {}).values() if isinstance(v, dict)]
            mapped_cols = set(ours.get("columns") or {}) | {c for v in (ours.get("cells") or {}).values()
                                                             for c in v} | {c for v in extra for c in v}
            problems += [f"{where}: ours names column {c!r}, which the table does not have"
                         for c in sorted(mapped_cols - set(cols[1:]))]
    return PublishedTable(id=str(raw["id"]), title=str(raw["title"]), source=dict(src),
                          protocol=str(raw.get("protocol") or ""), columns=tuple(cols),
                          rows=tuple(tuple(r) for r in rows), notes=tuple(map(str, raw.get("notes") or ())),
                          ours=ours)


def load_published(report: str, root: str | Path | None = None) -> Published:
    """``configs/<report>/published.yaml``, validated; errors name the file and every problem."""
    path = published_path(report, root)
    if not path.is_file():
        raise PublishedError(f"{path}: no published figures for {report}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise PublishedError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(raw, dict):
        raise PublishedError(f"{path}: the top level must be a mapping")
    problems = []
    if raw.get("schema_version") != PUBLISHED_VERSION:
        problems.append(f"schema_version must be {PUBLISHED_VERSION}, got {raw.get('schema_version')!r}")
    problems += [f"unknown top-level field {k!r} (known: schema_version, tables, findings)"
                 for k in raw if k not in ("schema_version", "tables", "findings")]
    tables = [_check_table(i, t, problems) for i, t in enumerate(raw.get("tables") or [])]
    ids = [t.id for t in tables if t is not None]
    problems += [f"table id {x!r} is used twice" for x in sorted({x for x in ids if ids.count(x) > 1})]
    findings = raw.get("findings") or []
    if not isinstance(findings, list):
        problems.append("findings must be a list")
        findings = []
    if problems:
        raise PublishedError(f"{path}: " + "; ".join(problems))
    return Published(report, path, tuple(t for t in tables if t is not None), tuple(findings))


def add_published(rec, report: str | None = None, root: str | Path | None = None) -> Published:
    """Record every published table of ``report`` (default: the recorder's) in ``rec`` as
    ``published_<id>``, with its citation, protocol and notes."""
    pub = load_published(report or rec.report, root)
    for t in pub.tables:
        rec.add_table(f"published_{t.id}", t.title, (list(t.columns), [list(r) for r in t.rows]),
                      source="published", citation=t.citation,
                      protocol={"description": t.protocol} if t.protocol else None, notes=t.notes)
    return pub


def _other_record(report: str, profile: str, root) -> dict | None:
    """Another notebook's committed record of ``profile``; None when it has none (its cells stay empty and
    the caption says so); an unreadable file is an error."""
    path = results_dir_for(report, profile, Path(root) if root else None) / "metrics.json"
    if not path.is_file():
        return None
    try:
        return load_metrics(path)
    except (OSError, MetricsSchemaError) as e:
        raise PublishedError(f"{path}: needed for a row of the published comparison, but unreadable "
                             f"({e}); re-run notebook {report}") from e


def _lookup(key: str, metrics: Mapping[str, float], others: dict, profile: str, root) -> float:
    """The value of ``key`` (NaN when the run, or the other notebook's record, has no such metric)."""
    if ":" in key.split("/")[0]:
        report, key = key.split(":", 1)
        if report not in others:
            others[report] = _other_record(report, profile, root)
        return math.nan if others[report] is None else others[report]["metrics"].get(key, math.nan)
    return metrics.get(key, math.nan)


def beside(table: PublishedTable, metrics: Mapping[str, float], *, profile: str = "smoke",
           root: str | Path | None = None):
    """The published table in its own layout, with our measured value beside every mapped
    column: returns ``(DataFrame, sources)`` where ``sources`` maps each other notebook used to
    its record (None if it has no run of ``profile``; for the caption). Rows the report has not (``extra_rows``) come last."""
    import pandas as pd

    ours_label = f"ours ({profile})"
    cells = table.cells()
    extra = (table.ours or {}).get("extra_rows") or {}
    extra_cols = {c for v in extra.values() for c in (v if isinstance(v, dict) else (table.ours.get("columns") or {}))}
    mapped = [c for c in table.columns[1:] if any(c in v for v in cells.values()) or c in extra_cols]
    others: dict[str, dict] = {}
    same = (table.ours or {}).get("same_data") or {}
    if same:      # runs that measured the degraded input must agree on it (missing runs show no cells)
        values = {who: _lookup(key if who == THIS else f"{who}:{key}", metrics, others, profile, root)
                  for who, key in same.items()}
        values = {k: v for k, v in values.items() if not math.isnan(v)}
        if len({round(v, 9) for v in values.values()}) > 1:
            raise PublishedError(f"table {table.id!r}: the degraded inputs differ, so the runs used different "
                                 f"data and cannot share a table: " +
                                 ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
    header = [table.columns[0]]
    for c in table.columns[1:]:
        header += [f"{c} · published", f"{c} · {ours_label}"] if c in mapped else [f"{c} · published"]
    out = []
    for r in table.rows:
        row = [r[0]]
        for c, v in zip(table.columns[1:], r[1:]):
            row.append(v)
            if c in mapped:
                key = cells.get(str(r[0]), {}).get(c)
                row.append(_lookup(key, metrics, others, profile, root) if key else None)
        out.append(row)
    for label, where in ((table.ours or {}).get("extra_rows") or {}).items():
        keys = where if isinstance(where, dict) else \
            {c: f"{where}/{ours}" for c, ours in (table.ours.get("columns") or {}).items()}
        row = [f"{label} (not in the report)"]
        for c in table.columns[1:]:
            row.append(None)
            if c in mapped:
                row.append(_lookup(keys[c], metrics, others, profile, root) if c in keys else None)
        out.append(row)
    return pd.DataFrame(out, columns=header), others


def beside_markdown(table: PublishedTable, metrics: Mapping[str, float], *, profile: str = "smoke",
                    root: str | Path | None = None) -> str:
    """Markdown: title, source, the side-by-side table, what we measured on, and the notes."""
    frame, others = beside(table, metrics, profile=profile, root=root)
    cols = list(frame.columns)
    lines = [f"**{table.title}** (published: {table.citation})", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in frame.itertuples(index=False, name=None):
        lines.append("| " + " | ".join("" if v is None else _fmt(v) for v in r) + " |")
    lines.append("")
    if table.ours:
        what = [f"*ours ({profile})*: {table.ours['data']}"]
        for rep, rec in sorted(others.items()):
            if rec is None:
                what.append(f"rows from notebook {rep}: empty, it has no recorded {profile} run")
                continue
            prov = rec["provenance"]
            what.append(f"rows from notebook {rep}: its committed run (commit `{str(prov.get('commit'))[:10]}`, "
                        f"seed {prov.get('seed')}, {prov.get('started')})")
        if table.ours.get("same_data"):
            what.append("the degraded inputs score the same in " +
                        " and ".join("this run" if k == THIS else k for k in table.ours["same_data"]) +
                        " (same photos, same degradation)")
        lines.append("; ".join(what) + ". Empty: not measured here.")
    if table.protocol:
        lines.append(f"*Published protocol:* {table.protocol}.")
    lines += [f"*Note:* {n}" for n in table.notes]
    return "\n".join(lines) + "\n"


def show_published(rec, *, profile: str | None = None, root: str | Path | None = None,
                   tables: list[str] | None = None) -> str:
    """Record the published tables of the recorder's report and return the Markdown of each one
    (``tables``: their ids, default all) with our measured values beside it, for ``display(Markdown(...))``."""
    pub = add_published(rec, root=root)
    chosen = [pub.table(t) for t in tables] if tables is not None else list(pub.tables)
    return "\n".join(beside_markdown(t, rec.metrics, profile=profile or rec.profile, root=root) for t in chosen)
