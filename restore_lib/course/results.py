"""``metrics.json``: the versioned record every notebook writes, and its tables.

Schema (version 1)::

    {
      "schema_version": 1,
      "report": "01_promptir_rain_snow",        # the notebook's stem
      "title": "...",
      "profile": "smoke",                        # configs/<report>/<profile>.yaml
      "params": {...},                           # the notebook's parameters
      "provenance": {commit, dirty, lib_hash, device, torch, python, platform,
                     threads, seed, wall_time_s, started, data: {name, hash, split}},
      "protocol": {color_space, crop_border, data_range, ssim_variant, quantize, description},
      "tables": [{"id", "title", "columns", "rows", "source": "ours"|"published",
                  "citation"?, "protocol"?, "notes"?}],
      "metrics": {"<table>/<row>/<column>": number, ...},   # flat, for tests and the grader
      "figures": ["figures/....png"],
      "notes": ["..."]
    }

Numbers in "ours" tables come from the run that wrote the file; "published"
tables hold figures copied from a paper or course report and say so.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import math
import os
import platform
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..utils import (MAX_JSON_BYTES, atomic_path, atomic_write_json, atomic_write_text, git_info, lib_hash, read_json,
                     repo_root)

#: set by ``restore_lib.course.reproduce`` to the repository's git state when a run of several notebooks
#: *starts*, so that the results written by the first notebooks (tracked files) do not mark the
#: later ones as run from a modified tree
GIT_STATE_ENV = "RESTORE_GIT_STATE"


def run_git_state() -> dict:
    """``{"commit", "dirty"}`` of the code this run uses: the state recorded by
    the runner at its start (``$RESTORE_GIT_STATE``), else the current one."""
    import json

    raw = os.environ.get(GIT_STATE_ENV)
    if raw:
        try:
            state = json.loads(raw)
        except ValueError as e:
            raise ValueError(f"${GIT_STATE_ENV} is not valid JSON: {raw!r}") from e
        if not (isinstance(state, dict) and set(state) == {"commit", "dirty"}):
            raise ValueError(f"${GIT_STATE_ENV} must be a JSON object with 'commit' and 'dirty', got {raw!r}")
        return state
    return git_info()


@contextlib.contextmanager
def git_state_pinned(root=None):
    """Within the block, runs record the git state of *now* (see
    :data:`GIT_STATE_ENV`; an outer pin wins). The variable is restored after."""
    import json

    if os.environ.get(GIT_STATE_ENV):
        yield
        return
    os.environ[GIT_STATE_ENV] = json.dumps(git_info(root))
    try:
        yield
    finally:
        os.environ.pop(GIT_STATE_ENV, None)

__all__ = ["SCHEMA_VERSION", "MetricsSchemaError", "RunRecorder", "validate_metrics", "load_metrics",
           "table_to_markdown", "resolve_out_dir", "environment_provenance", "Spread", "SeedSpreadError",
           "seed_spread", "load_seed_spread", "summarize_seed_runs", "spread_path", "Difference", "paired_difference",
           "headline_metrics", "render_seed_spread"]

SCHEMA_VERSION = 1
_REQUIRED = {"schema_version": int, "report": str, "title": str, "profile": str, "params": dict,
             "provenance": dict, "protocol": dict, "tables": list, "metrics": dict, "figures": list}
_PROVENANCE_KEYS = ("commit", "dirty", "lib_hash", "device", "torch", "python", "seed", "wall_time_s", "data")
_PROTOCOL_KEYS = ("color_space", "crop_border", "data_range", "ssim_variant")


class MetricsSchemaError(ValueError):
    """A metrics.json that does not follow the schema; the message names the file."""


def resolve_out_dir(out_dir: str | os.PathLike, report: str) -> Path:
    """``"auto"`` -> ``$RESTORE_RESULTS_DIR/<report>`` if set, else ``<repo>/results/<report>``."""
    if str(out_dir) != "auto":
        return Path(out_dir)
    base = os.environ.get("RESTORE_RESULTS_DIR")
    return (Path(base) if base else repo_root() / "results") / report


def environment_provenance(device) -> dict:
    import torch

    dev = str(device)
    if getattr(device, "type", str(device)) == "cuda":
        dev = f"cuda ({torch.cuda.get_device_name(device)})"
    else:
        dev = f"{dev} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return {
        "device": dev,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "threads": torch.get_num_threads(),
    }


def _jsonable(v: Any) -> Any:
    """Plain JSON values (numpy/torch scalars -> float/int, tuples -> lists)."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 0) == 0:
        return v.item()
    if isinstance(v, Path):
        return str(v)
    return v


class RunRecorder:
    """Collects what a notebook run produced and publishes it into ``out_dir``
    only when the run succeeds.

    Until :meth:`save`, ``rec.out_dir`` is a staging folder beside the final one
    (``.<name>.staging``): figures and any file a notebook writes under
    ``rec.out_dir`` land there, so a run that fails half-way leaves the
    previous results as they were. :meth:`save` writes ``metrics.json`` and
    ``table.md``, moves every staged file into the final folder (``metrics.json``
    last; figures of the previous run that this run did not make are removed),
    and points ``rec.out_dir`` at the final folder."""

    def __init__(self, report: str, title: str, *, params: dict, out_dir: str | os.PathLike, seed: int,
                 device, profile: str, protocol=None, data: dict | None = None):
        import shutil

        self.report, self.title, self.profile = report, title, profile
        self.final_dir = resolve_out_dir(out_dir, report)
        self.out_dir = self.final_dir.parent / f".{self.final_dir.name}.staging"
        if self.out_dir.exists():          # left by a run that failed: never published, safe to drop
            shutil.rmtree(self.out_dir)
        self.published = False
        self.params = _jsonable(dict(params))
        self.seed = seed
        self.device = device
        self.protocol = protocol
        self.data = data or {"name": "unspecified", "hash": "unknown", "split": "unspecified"}
        self.tables: list[dict] = []
        self.metrics: dict[str, float] = {}
        self.figures: list[str] = []
        self.notes: list[str] = []
        self._t0 = time.perf_counter()
        self._started = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()

    # -------------------------------------------------------------- content
    def set_data(self, name: str, hash: str, split: str) -> None:  # noqa: A002 - field name
        self.data = {"name": name, "hash": hash, "split": split}

    def add_table(self, id: str, title: str, table, *, source: str = "ours", citation: str | None = None,  # noqa: A002
                  protocol=None, notes: Iterable[str] = (), metric_columns: Sequence[str] | None = None,
                  row_key: str | None = None) -> dict:
        """Add a table (a pandas DataFrame or ``(columns, rows)``).

        For ``source="ours"`` the numeric cells also go to the flat ``metrics``
        dict as ``<id>/<row label>/<column>``; the row label is ``row_key``'s
        value or the first column. ``source="published"`` tables need a citation.
        """
        if source not in ("ours", "published"):
            raise ValueError(f"source must be 'ours' or 'published', got {source!r}")
        if source == "published" and not citation:
            raise ValueError(f"published table {id!r} needs a citation")
        if any(t["id"] == id for t in self.tables):
            raise ValueError(f"table id {id!r} already used")
        if hasattr(table, "to_dict"):
            columns = [str(c) for c in table.columns]
            rows = [[_jsonable(x) for x in r] for r in table.itertuples(index=False, name=None)]
        else:
            columns, rows = list(table[0]), [list(map(_jsonable, r)) for r in table[1]]
        entry = {"id": id, "title": title, "columns": columns, "rows": rows, "source": source}
        if citation:
            entry["citation"] = citation
        if protocol is not None:
            entry["protocol"] = _protocol_dict(protocol)
        if notes:
            entry["notes"] = list(notes)
        self.tables.append(entry)
        if source == "ours":
            key_idx = columns.index(row_key) if row_key else 0
            for r in rows:
                label = str(r[key_idx])
                for c, v in zip(columns, r):
                    if (metric_columns is None or c in metric_columns) and isinstance(v, (int, float)) \
                            and not isinstance(v, bool) and c != columns[key_idx]:
                        self.metrics[f"{id}/{label}/{c}"] = float(v)
        return entry

    def set_metric(self, key: str, value: float) -> None:
        self.metrics[key] = float(value)

    def add_figure(self, fig, name: str, dpi: int = 100) -> Path:
        """Save a matplotlib figure under ``figures/<name>.png`` (and record it)."""
        path = self.out_dir / "figures" / f"{name}.png"
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
        rel = str(path.relative_to(self.out_dir))
        if rel not in self.figures:
            self.figures.append(rel)
        return path

    def register_figure(self, path: str | os.PathLike) -> str:
        """Record an image file written under ``out_dir`` by other means
        (e.g. the slider's static PNG)."""
        rel = str(Path(path).resolve().relative_to(self.out_dir.resolve()))
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: figure file not found")
        if rel not in self.figures:
            self.figures.append(rel)
        return rel

    def note(self, text: str) -> None:
        self.notes.append(text)

    # -------------------------------------------------------------- output
    def to_dict(self) -> dict:
        prov = {**run_git_state(), "lib_hash": lib_hash(), **environment_provenance(self.device), "seed": self.seed,
                "wall_time_s": round(time.perf_counter() - self._t0, 1), "started": self._started,
                "data": self.data}
        return {
            "schema_version": SCHEMA_VERSION,
            "report": self.report,
            "title": self.title,
            "profile": self.profile,
            "params": self.params,
            "provenance": prov,
            "protocol": _protocol_dict(self.protocol),
            "tables": self.tables,
            "metrics": self.metrics,
            "figures": self.figures,
            "notes": self.notes,
        }

    def save(self) -> Path:
        """Validate the record, then publish the staged run into the final folder;
        returns the path of the published ``metrics.json``."""
        import shutil

        if self.published:
            raise RuntimeError(f"{self.final_dir}: this run was already saved")
        obj = self.to_dict()
        validate_metrics(obj, "<in memory>")
        stage = self.out_dir
        stage.mkdir(parents=True, exist_ok=True)
        atomic_write_json(stage / "metrics.json", obj)
        atomic_write_text(stage / "table.md", render_report(obj, heading_level=1))
        staged = sorted(p for p in stage.rglob("*") if p.is_file() and p.name != "metrics.json")
        for src in staged:
            dst = self.final_dir / src.relative_to(stage)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        old_figures = self.final_dir / "figures"
        if old_figures.is_dir():
            for f in old_figures.iterdir():
                if f.is_file() and f"figures/{f.name}" not in self.figures:
                    f.unlink()
        os.replace(stage / "metrics.json", self.final_dir / "metrics.json")
        shutil.rmtree(stage)
        self.out_dir, self.published = self.final_dir, True
        return self.final_dir / "metrics.json"


def _protocol_dict(protocol) -> dict:
    if protocol is None:
        return {"color_space": "n/a", "crop_border": 0, "data_range": 1.0, "ssim_variant": "n/a",
                "description": "no image metric"}
    if isinstance(protocol, dict):
        return dict(protocol)
    d = protocol.as_dict()
    d["description"] = protocol.describe()
    return d


# ---------------------------------------------------------------------- validation
def validate_metrics(obj: Any, source: str | os.PathLike = "metrics.json") -> dict:
    """Check ``obj`` against schema version 1; raise :class:`MetricsSchemaError`
    naming ``source`` and every problem found."""
    problems: list[str] = []
    if not isinstance(obj, dict):
        raise MetricsSchemaError(f"{source}: top level must be a JSON object, got {type(obj).__name__}")
    for key, typ in _REQUIRED.items():
        if key not in obj:
            problems.append(f"missing field {key!r}")
        elif not isinstance(obj[key], typ) or (typ is int and isinstance(obj[key], bool)):
            problems.append(f"field {key!r} must be {typ.__name__}, got {type(obj[key]).__name__}")
    if isinstance(obj.get("schema_version"), int) and obj["schema_version"] != SCHEMA_VERSION:
        problems.append(f"schema_version {obj['schema_version']} is not supported (expected {SCHEMA_VERSION})")
    prov = obj.get("provenance")
    if isinstance(prov, dict):
        problems += [f"provenance lacks {k!r}" for k in _PROVENANCE_KEYS if k not in prov]
        if isinstance(prov.get("data"), dict):
            problems += [f"provenance.data lacks {k!r}" for k in ("name", "hash", "split") if k not in prov["data"]]
        elif "data" in prov:
            problems.append(f"provenance.data must be an object, got {type(prov['data']).__name__}")
    proto = obj.get("protocol")
    if isinstance(proto, dict):
        problems += [f"protocol lacks {k!r}" for k in _PROTOCOL_KEYS if k not in proto]
    for i, t in enumerate(obj.get("tables") or []):
        where = f"tables[{i}]"
        if not isinstance(t, dict):
            problems.append(f"{where} must be an object")
            continue
        for k in ("id", "title", "columns", "rows", "source"):
            if k not in t:
                problems.append(f"{where} lacks {k!r}")
        if t.get("source") not in ("ours", "published"):
            problems.append(f"{where}.source must be 'ours' or 'published'")
        if t.get("source") == "published" and not t.get("citation"):
            problems.append(f"{where} is published but has no citation")
        cols = t.get("columns") or []
        for j, r in enumerate(t.get("rows") or []):
            if not isinstance(r, list) or len(r) != len(cols):
                problems.append(f"{where}.rows[{j}] has {len(r) if isinstance(r, list) else '?'} cells for "
                                f"{len(cols)} columns")
    for k, v in (obj.get("metrics") or {}).items() if isinstance(obj.get("metrics"), dict) else ():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            problems.append(f"metrics[{k!r}] must be a number, got {type(v).__name__}")
        elif isinstance(v, int) and abs(v) > 2 ** 63:
            problems.append(f"metrics[{k!r}] is an integer too large to be a measurement")
    if problems:
        raise MetricsSchemaError(f"{source}: invalid metrics file: " + "; ".join(problems))
    return obj


def load_metrics(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """Read and validate a metrics.json; errors name the file (oversized, absurdly
    nested or unreadable files included, see :func:`restore_lib.utils.read_json`)."""
    return validate_metrics(read_json(path, MetricsSchemaError, max_bytes=max_bytes), Path(path))


# ---------------------------------------------------------------------- rendering
def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞"
        return f"{v:.4f}" if abs(v) < 1.5 else f"{v:.2f}"
    return str(v).replace("|", "\\|")


def table_to_markdown(table: dict) -> str:
    cols = table["columns"]
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in table["rows"]]
    return "\n".join(lines)


def render_report(obj: dict, heading_level: int = 2, figure_prefix: str = "") -> str:
    """Markdown for one metrics.json: our tables with provenance, published
    tables labelled as such."""
    h = "#" * heading_level
    prov = obj["provenance"]
    data = prov.get("data", {})
    dirty = " (uncommitted changes)" if prov.get("dirty") else ""
    out = [f"{h} {obj['title']}", "",
           f"*Provenance:* commit `{str(prov.get('commit'))[:10]}`{dirty}, lib `{prov.get('lib_hash')}`, "
           f"profile **{obj['profile']}**, device {prov.get('device')}, torch {prov.get('torch')}, "
           f"seed {prov.get('seed')}, wall time {prov.get('wall_time_s')} s, data {data.get('name')} "
           f"(`{str(data.get('hash'))[:12]}`, split: {data.get('split')}), run {prov.get('started', '?')}.",
           ""]
    if obj["protocol"].get("description"):
        out += [f"*Protocol:* {obj['protocol']['description']}.", ""]
    for t in obj["tables"]:
        label = "Published figures (copied from the source, not run here)" if t["source"] == "published" \
            else "Our run"
        out.append(f"**{t['title']}** — {label}" + (f"; source: {t['citation']}" if t.get("citation") else ""))
        out.append("")
        if t.get("protocol", {}).get("description"):
            out += [f"Protocol: {t['protocol']['description']}.", ""]
        out.append(table_to_markdown(t))
        out.append("")
        for n in t.get("notes", []):
            out += [f"> {n}", ""]
    for n in obj.get("notes", []):
        out += [f"- {n}"]
    if obj.get("notes"):
        out.append("")
    for f in obj.get("figures", []):
        out.append(f"![{Path(f).stem}]({figure_prefix}{f})")
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------- seed spread
#: the seed sweep's records: ``results/<report>/seeds/seed<k>.json`` (whole metrics.json files of the runs
#: at the other seeds) and their summary ``results/<report>/seed_spread.json``
SPREAD_FILE = "seed_spread.json"
SPREAD_VERSION = 1


class SeedSpreadError(KeyError):
    """No seed spread recorded for a report or metric (the message names the file)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class Spread:
    """One metric over the seeds of a sweep: ``std`` is the sample standard
    deviation (n - 1), ``values[i]`` was measured at ``seeds[i]``."""
    metric: str
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    mean: float
    std: float
    min: float
    max: float

    @property
    def n(self) -> int:
        return len(self.values)

    def tolerance(self, k: float = 3.0, floor: float = 0.0) -> float:
        """How far a value may move and still be "within noise": ``max(k * std, floor)``."""
        return max(k * self.std, floor)


def spread_of(metric: str, seeds: Sequence[int], values: Sequence[float]) -> Spread:
    vals = tuple(float(v) for v in values)
    if len(vals) != len(seeds) or not vals:
        raise ValueError(f"{metric}: {len(vals)} values for {len(seeds)} seeds")
    finite = [v for v in vals if math.isfinite(v)]
    if len(finite) != len(vals):     # inf/nan (e.g. PSNR of identical images) carry no spread
        mean = std = math.nan
    else:
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else math.nan
    return Spread(metric, tuple(int(s) for s in seeds), vals, mean, std, min(vals), max(vals))


def seed_records_dir(results_dir: str | os.PathLike) -> Path:
    return Path(results_dir) / "seeds"


def summarize_seed_runs(records: Sequence[dict]) -> dict:
    """The ``seed_spread.json`` object for the records (metrics.json objects) of
    one report's runs at different seeds: per metric mean, std, min, max and
    the values per seed; per run its provenance. Every record must be of the
    same report, profile and data, with distinct seeds and the same metric keys."""
    if len(records) < 2:
        raise ValueError(f"a seed spread needs at least 2 runs, got {len(records)}")
    first = records[0]
    seeds = [r["provenance"]["seed"] for r in records]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{first['report']}: seeds repeat: {seeds}")
    for r in records[1:]:
        for field in ("report", "profile"):
            if r[field] != first[field]:
                raise ValueError(f"seed runs disagree on {field}: {first[field]!r} vs {r[field]!r}")
        if r["provenance"]["data"]["hash"] != first["provenance"]["data"]["hash"]:
            raise ValueError(f"{first['report']}: seed {r['provenance']['seed']} ran on other data")
        if set(r["metrics"]) != set(first["metrics"]):
            odd = sorted(set(r["metrics"]) ^ set(first["metrics"]))[:5]
            raise ValueError(f"{first['report']}: seed {r['provenance']['seed']} has other metrics ({odd} ...)")
    order = sorted(range(len(records)), key=lambda i: seeds[i])
    records = [records[i] for i in order]
    seeds = [seeds[i] for i in order]
    keep = ("commit", "dirty", "lib_hash", "device", "torch", "python", "threads", "seed", "wall_time_s",
            "started", "data")
    metrics = {}
    for key in first["metrics"]:
        s = spread_of(key, seeds, [r["metrics"][key] for r in records])
        metrics[key] = {"mean": s.mean, "std": s.std, "min": s.min, "max": s.max, "values": list(s.values)}
    return {"schema_version": SPREAD_VERSION, "report": first["report"], "profile": first["profile"],
            "seeds": seeds, "runs": [{k: r["provenance"].get(k) for k in keep} for r in records],
            "metrics": metrics}


def spread_path(report: str, profile: str = "smoke", root: str | os.PathLike | None = None) -> Path:
    base = Path(root or repo_root()) / "results" / report
    return (base if profile == "smoke" else base / profile) / SPREAD_FILE


def load_seed_spread(report: str, profile: str = "smoke", root: str | os.PathLike | None = None) -> dict:
    """The recorded ``seed_spread.json`` of a report (errors name the file)."""
    import json

    path = spread_path(report, profile, root)
    if not path.is_file():
        raise SeedSpreadError(f"{path}: no seed spread recorded (run `make notebooks`, which runs every "
                              f"notebook at several seeds)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SeedSpreadError(f"{path}: not valid JSON ({e})") from e
    if obj.get("schema_version") != SPREAD_VERSION or not isinstance(obj.get("metrics"), dict):
        raise SeedSpreadError(f"{path}: not a seed spread of schema version {SPREAD_VERSION}")
    return obj


def seed_spread(report: str, metric: str, profile: str = "smoke",
                root: str | os.PathLike | None = None) -> Spread:
    """How much ``metric`` of ``report`` moved across the recorded seeds, e.g.
    ``seed_spread("00_quickstart", "main/mean/PSNR restored").std``."""
    obj = load_seed_spread(report, profile, root)
    entry = obj["metrics"].get(metric)
    if entry is None:
        raise SeedSpreadError(f"{spread_path(report, profile, root)}: no metric {metric!r}")
    return spread_of(metric, obj["seeds"], entry["values"])


#: tables whose PSNR rows the seed-spread summary in results/README.md shows (rows labelled as an aggregate
#: -- mean, average, all test photos -- where a table has them, else every row)
HEADLINE_TABLES = ("main", "main_sr", "main_deblur", "sr", "deblur", "summary")
AGGREGATE_ROWS = ("mean", "average", "all test photos")


def headline_metrics(record: dict) -> list[str]:
    """The metric keys of ``record`` the seed-spread summary shows: PSNR columns of the headline tables."""
    keys = []
    for t in record["tables"]:
        if t["source"] != "ours" or t["id"] not in HEADLINE_TABLES:
            continue
        cols = [c for c in t["columns"] if c == "PSNR" or c.startswith("PSNR ")]
        in_table = [k for k in record["metrics"] if k.startswith(t["id"] + "/") and any(k.endswith("/" + c) for c in cols)]
        aggregate = [k for k in in_table if k.split("/")[1] in AGGREGATE_ROWS]
        keys += aggregate or in_table
    return keys


def render_seed_spread(spread: dict, keys: Sequence[str], heading_level: int = 3) -> str:
    """Markdown: each metric's value per seed, mean, standard deviation and range."""
    seeds = spread["seeds"]
    head = ["metric", *(f"seed {s}" for s in seeds), "mean", "std", "min–max"]
    lines = [f"{'#' * heading_level} Seed spread ({len(seeds)} seeds: {', '.join(map(str, seeds))})", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in keys:
        e = spread["metrics"][k]
        if all(isinstance(v, float) and math.isnan(v) for v in e["values"]):
            continue                      # a row the profile does not run (e.g. the gpu profile's placeholder)
        cells = [k, *(_fmt(v) for v in e["values"]), _fmt(e["mean"]), f"{e['std']:.3f}",
                 f"{_fmt(e['min'])}–{_fmt(e['max'])}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class Difference:
    """``a - b`` of two metrics of one report, paired seed by seed (``spread``
    is the spread of those per-seed differences)."""
    a: str
    b: str
    spread: Spread

    @property
    def values(self) -> tuple[float, ...]:
        return self.spread.values

    @property
    def mean(self) -> float:
        return self.spread.mean

    @property
    def stderr(self) -> float:
        return self.spread.std / math.sqrt(self.spread.n)

    @property
    def beyond_noise(self) -> bool:
        """Every seed agrees on the sign and the mean is more than 3 standard errors from 0."""
        same_sign = all(v > 0 for v in self.values) or all(v < 0 for v in self.values)
        return same_sign and abs(self.mean) > 3 * self.stderr

    def verdict(self, unit: str = "dB") -> str:
        lo, hi = min(self.values), max(self.values)
        span = f"{self.mean:+.2f} {unit} (seeds: {lo:+.2f} to {hi:+.2f})"
        if self.beyond_noise:
            return f"{self.a} {'above' if self.mean > 0 else 'below'} {self.b} by {span}: beyond noise"
        return f"{self.a} vs {self.b}: {span}: within noise"


def paired_difference(report: str, a: str, b: str, profile: str = "smoke",
                      root: str | os.PathLike | None = None) -> Difference:
    """``a - b`` over the recorded seeds (each seed's runs give both), with its spread;
    ``.beyond_noise`` is the project's rule for calling a difference real."""
    sa, sb = seed_spread(report, a, profile, root), seed_spread(report, b, profile, root)
    return Difference(a, b, spread_of(f"{a} - {b}", sa.seeds, [x - y for x, y in zip(sa.values, sb.values)]))
