"""Sentences that interpret a result, generated from the numbers.

A notebook never writes "A beats B" by hand. Its ``configs/<notebook>/published.yaml``
lists the comparisons it interprets::

    findings:
      - id: fsrcnn_vs_bicubic
        what: "FSRCNN over MATLAB bicubic, Y-PSNR"
        a: sr/FSRCNN/PSNR                    # metrics keys of the notebook's record ("<notebook>:<key>":
                                             # another notebook's, paired seed by seed)
        b: sr/bicubic (MATLAB)/PSNR
        unit: dB                             # optional (default dB)
        report:                              # optional: what the report or paper claims
          expects: higher                    # a above b ("higher") or below ("lower")
          says: "FSRCNN restores detail bicubic cannot (Table 1)"

and :func:`render_findings` writes one sentence per comparison: this run's ``a - b``, then
the verdict over the recorded seeds of the profile (``results/<notebook>/seed_spread.json``),
by the project's rule (:attr:`restore_lib.course.results.Difference.beyond_noise`: every seed
has the same sign and the mean is more than 3 standard errors from 0):

* inside the noise it says **within noise**, and that the report is neither confirmed nor refuted;
* beyond it, the report is **agreed with** only when the sign is the report's, else **contradicted**.

A run whose settings differ from the recorded runs' is told so: the recorded spread is about
those settings, not about it.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Mapping, Sequence

from .published import PublishedError, _other_record, load_published
from .results import Difference, SeedSpreadError, load_seed_spread, spread_of

__all__ = ["Finding", "Verdict", "WITHIN", "BEYOND", "AGREES", "CONTRADICTS", "UNDECIDED", "SETTINGS_IGNORED",
           "load_findings", "judge", "recorded_verdict", "render_findings"]

WITHIN, BEYOND = "within noise", "beyond noise"
AGREES, CONTRADICTS, UNDECIDED = ("agrees with the report", "contradicts the report",
                                  "neither confirms nor refutes the report")
#: parameters that do not change what a run computes (or are the seed itself)
SETTINGS_IGNORED = frozenset({"seed", "out_dir", "progress", "device", "threads", "resume", "profile"})
_FIELDS = {"id", "what", "a", "b", "unit", "report"}


@dataclasses.dataclass(frozen=True)
class Finding:
    id: str
    what: str
    a: str
    b: str
    unit: str = "dB"
    expects: str | None = None        # "higher" | "lower" | None
    says: str = ""

    def fmt(self, v: float) -> str:
        if math.isnan(v):
            return "n/a"
        if v == 0 or abs(v) < 5e-7:
            return f"+0 {self.unit}".rstrip()         # never "-0.00"
        digits = (2 if abs(v) >= 0.01 else 4) if self.unit == "dB" else (4 if abs(v) >= 0.0001 else 6)
        return f"{v:+.{digits}f} {self.unit}".rstrip()


@dataclasses.dataclass(frozen=True)
class Verdict:
    noise: str                        # WITHIN | BEYOND
    report: str | None                # AGREES | CONTRADICTS | UNDECIDED | None (the report says nothing)
    difference: Difference


def load_findings(report: str, root: str | Path | None = None) -> list[Finding]:
    pub = load_published(report, root)
    out, problems = [], []
    for i, raw in enumerate(pub.findings):
        where = f"findings[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where} must be a mapping")
            continue
        problems += [f"{where}: unknown field {k!r} (known: {', '.join(sorted(_FIELDS))})" for k in raw
                     if k not in _FIELDS]
        missing = [k for k in ("id", "what", "a", "b") if not isinstance(raw.get(k), str) or not raw[k]]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        rep = raw.get("report") or {}
        if not isinstance(rep, dict) or rep.get("expects") not in (None, "higher", "lower"):
            problems.append(f"{where} ({raw['id']}): report.expects must be 'higher' or 'lower'")
            continue
        if rep.get("expects") and not str(rep.get("says") or "").strip():
            problems.append(f"{where} ({raw['id']}): report.says must quote what the report claims")
            continue
        out.append(Finding(raw["id"], raw["what"], raw["a"], raw["b"], str(raw.get("unit", "dB")),
                           rep.get("expects"), str(rep.get("says") or "")))
    ids = [f.id for f in out]
    problems += [f"finding id {x!r} is used twice" for x in sorted({x for x in ids if ids.count(x) > 1})]
    if problems:
        raise PublishedError(f"{pub.path}: " + "; ".join(problems))
    return out


def judge(finding: Finding, seeds: Sequence[int], differences: Sequence[float]) -> Verdict:
    """The verdict on ``a - b`` measured at ``seeds`` (one difference per seed)."""
    d = Difference(finding.a, finding.b, spread_of(f"{finding.a} - {finding.b}", seeds, differences))
    noise = BEYOND if d.beyond_noise else WITHIN
    if finding.expects is None:
        report = None
    elif noise == WITHIN:
        report = UNDECIDED
    else:
        report = AGREES if (d.mean > 0) == (finding.expects == "higher") else CONTRADICTS
    return Verdict(noise, report, d)


def recorded_verdict(report: str, finding: Finding, profile: str = "smoke",
                     root: str | Path | None = None) -> Verdict:
    """The verdict over the seeds recorded for ``profile`` (raises SeedSpreadError if none). A key
    ``<notebook>:<key>`` is read from that notebook's seed runs, which must have the same seeds."""
    seeds, values = None, []
    for key in (finding.a, finding.b):
        owner, key = _split(report, key)
        spread = load_seed_spread(owner, profile, root)
        if key not in spread["metrics"]:
            raise SeedSpreadError(f"results/{owner} ({profile}): the seed spread has no metric {key!r} "
                                  f"(finding {finding.id!r})")
        if seeds is not None and list(spread["seeds"]) != list(seeds):
            raise SeedSpreadError(f"finding {finding.id!r}: results/{owner} has seeds {spread['seeds']}, "
                                  f"the other side {list(seeds)}; record both at the same seeds")
        seeds = spread["seeds"]
        values.append(spread["metrics"][key]["values"])
    return judge(finding, seeds, [x - y for x, y in zip(*values)])


def _split(report: str, key: str) -> tuple[str, str]:
    """(the notebook whose record holds ``key``, the plain key)."""
    head = key.split("/", 1)[0]
    return tuple(key.split(":", 1)) if ":" in head else (report, key)


def _this_run(report: str, key: str, metrics: Mapping[str, float], records: dict, profile: str, root) -> float:
    """This run's ``key``, or another notebook's committed value (NaN where it has none); ``records`` caches
    the other notebooks' records for one rendering (a corrupt record is an error, as in the published tables)."""
    owner, plain = _split(report, key)
    if owner == report:
        return metrics.get(plain, math.nan)
    if owner not in records:
        records[owner] = _other_record(owner, profile, root)
    return math.nan if records[owner] is None else records[owner]["metrics"].get(plain, math.nan)


def _settings_changed(report: str, params: Mapping, profile: str, root) -> list[str]:
    recorded = _other_record(report, profile, root)
    if recorded is None:
        return []
    keys = (set(params) | set(recorded["params"])) - SETTINGS_IGNORED
    return sorted(k for k in keys if params.get(k) != recorded["params"].get(k))


def _sentence(report: str, f: Finding, metrics: Mapping[str, float], changed: list[str], records: dict,
              profile: str, root) -> str:
    a, b = (_this_run(report, k, metrics, records, profile, root) for k in (f.a, f.b))
    now = "not measured in this run" if math.isnan(a) or math.isnan(b) else f"this run {f.fmt(a - b)}"
    others = sorted({_split(report, k)[0] for k in (f.a, f.b)} - {report})
    if others and not math.isnan(a - b):
        now += f" (with notebook {', '.join(others)}'s committed run)"
    head = f"- **{f.what}**: {now}."
    try:
        v = recorded_verdict(report, f, profile, root)
    except SeedSpreadError:
        return (f"{head} No seed spread is recorded for the {profile} profile, so no verdict (record one with "
                f"`python -m restore_lib.course.reproduce --profile {profile} --seeds 0 1 2`).")
    d = v.difference
    seeds = ", ".join(map(str, d.spread.seeds))
    text = (f"{head} Over the recorded seeds {seeds} ({profile}): {f.fmt(d.mean)} "
            f"({f.fmt(min(d.values))} to {f.fmt(max(d.values))}), **{v.noise}**")
    if v.report is not None:
        text += f"; it **{v.report}** ({f.says})"
    text += "."
    if changed:
        text += (" This run's settings differ from the recorded runs' in " + ", ".join(f"`{k}`" for k in changed) +
                 ": the verdict is about the recorded settings, not this run.")
    return text


def render_findings(rec=None, *, report: str | None = None, metrics: Mapping[str, float] | None = None,
                    params: Mapping | None = None, profile: str | None = None, root: str | Path | None = None) -> str:
    """Markdown, one sentence per finding of the report: pass the notebook's ``RunRecorder`` (or
    ``report``, ``metrics``, ``params`` and ``profile``)."""
    if rec is not None:
        report, metrics, params = rec.report, rec.metrics, rec.params
        profile = profile or rec.profile
    if report is None or metrics is None:
        raise ValueError("render_findings needs a RunRecorder, or report= and metrics=")
    profile = profile or "smoke"
    changed = _settings_changed(report, params, profile, root) if params is not None else []
    records: dict = {}
    lines = [_sentence(report, f, metrics, changed, records, profile, root) for f in load_findings(report, root)]
    rule = ("*The rule:* a difference is beyond noise when every recorded seed gives it the same sign and its "
            "mean is more than 3 standard errors from 0; a report's claim is agreed with only beyond noise and "
            "with the report's sign.")
    return "\n".join(lines + ["", rule]) + "\n"
