"""Reference runs of an ablation's arms, at one or several seeds, and the noise rules built on them.

Layout (mirrors the notebooks' seed sweeps, see :mod:`restore_lib.course.reproduce`)::

    <references>/ablations/<spec>/<arm>/metrics.json          # the run at the spec's seed
    <references>/ablations/<spec>/<arm>/seeds/seed<k>.json    # the runs at the other seeds
    <references>/ablations/<spec>/<arm>/seed_spread.json      # their summary (for people; recomputed here)

**Noise band** of an arm's metric: ``max(k x std, floor)`` where ``std`` is the
sample standard deviation of the metric over the arm's reference seeds and
``k``/``floor`` come from the spec's ``expect.noise`` (default ``k: 3``,
``floor: 0.01``, ``min_seeds: 3``). With fewer than ``min_seeds`` seeds the
band is *unknown*: nothing is invented.

**Order verdict** of two arms: their per-seed differences (paired by seed) are
"beyond noise" by :attr:`restore_lib.course.results.Difference.beyond_noise`
(every seed agrees on the sign and ``|mean| > 3`` standard errors); otherwise
the arms are *indistinguishable at this profile*.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path
from typing import Callable

from .results import Difference, Spread, load_metrics, seed_records_dir, spread_of

__all__ = ["ArmReference", "PairVerdict", "load_arm_reference", "reference_dir", "pair_verdicts",
           "reference_order", "seeds_command"]


def reference_dir(base: Path, spec_name: str) -> Path:
    """``<base>/ablations/<spec>`` (``base`` may also be that ``ablations`` folder or the spec's folder)."""
    base = Path(base)
    for d in (base / "ablations" / spec_name, base / "results" / "ablations" / spec_name, base / spec_name):
        if d.is_dir():
            return d
    if base.name == spec_name and base.is_dir():
        return base
    return base / "ablations" / spec_name


def seeds_command(spec_name: str, seeds=(0, 1, 2)) -> str:
    return f"python -m restore_lib.course.ablations run {spec_name} --seeds {' '.join(map(str, seeds))}"


@dataclasses.dataclass(frozen=True)
class ArmReference:
    """Every recorded reference run of one arm; ``records[i]`` (from ``files[i]``) ran at ``seeds[i]``."""

    spec_name: str
    arm: str
    path: Path                  # the arm's metrics.json (the run at the spec's seed)
    files: tuple
    records: tuple

    @property
    def main(self) -> dict:
        return self.records[self.files.index(self.path)]

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(int(r["provenance"]["seed"]) for r in self.records)

    def spread(self, metric: str) -> Spread:
        missing = [str(f) for f, r in zip(self.files, self.records) if metric not in r["metrics"]]
        if missing:
            raise KeyError(f"no metric {metric!r} in {', '.join(missing)}")
        return spread_of(metric, self.seeds, [r["metrics"][metric] for r in self.records])

    def band(self, metric: str, k: float, floor: float, min_seeds: int) -> float | None:
        """``max(k x std, floor)`` over the seeds; None with fewer than ``min_seeds`` seeds."""
        s = self.spread(metric)
        if s.n < min_seeds:
            return None
        return s.tolerance(k, floor) if math.isfinite(s.std) else math.nan

    def too_few_seeds(self, min_seeds: int) -> str:
        return (f"{self.spec_name}/{self.arm}: band unknown, too few seeds: the reference has {len(self.seeds)} "
                f"seed(s) ({', '.join(map(str, self.seeds))}) in {self.path.parent}, a noise band needs >= "
                f"{min_seeds} (run `{seeds_command(self.spec_name)}` on the references)")


def load_arm_reference(base: Path, spec_name: str, arm: str,
                       load: Callable[[Path], dict] = load_metrics) -> ArmReference | None:
    """The reference runs of ``spec_name/arm`` under ``base``; None when the arm has no metrics.json.
    Two records of one seed are an error naming both files."""
    path = reference_dir(base, spec_name) / arm / "metrics.json"
    if not path.is_file():
        return None
    files = [path] + sorted(seed_records_dir(path.parent).glob("seed*.json"))
    records = [load(f) for f in files]
    seen: dict[int, Path] = {}
    for f, r in zip(files, records):
        s = r["provenance"]["seed"]
        if s in seen:
            raise ValueError(f"{f}: seed {s} recorded twice (also {seen[s]})")
        seen[s] = f
    order = sorted(range(len(files)), key=lambda i: records[i]["provenance"]["seed"])
    return ArmReference(spec_name, arm, path, tuple(files[i] for i in order), tuple(records[i] for i in order))


@dataclasses.dataclass(frozen=True)
class PairVerdict:
    """Arms ``a`` and ``b`` compared over their common reference seeds (``difference`` is ``a - b``;
    None when fewer than ``min_seeds`` seeds are common)."""

    a: str
    b: str
    difference: Difference | None
    common_seeds: tuple

    @property
    def separated(self) -> bool:
        return self.difference is not None and self.difference.beyond_noise

    def better(self, higher_is_better: bool) -> tuple[str, str] | None:
        """``(better arm, worse arm)`` when the references separate them, else None."""
        if not self.separated:
            return None
        a_above = self.difference.mean > 0
        return (self.a, self.b) if a_above == higher_is_better else (self.b, self.a)

    def describe(self, higher_is_better: bool, min_seeds: int) -> str:
        if self.difference is None:
            return (f"{self.a} vs {self.b}: unknown, {len(self.common_seeds)} common reference seed(s), "
                    f"needs >= {min_seeds}")
        d = self.difference
        span = f"{d.mean:+.3g} (seeds {min(d.values):+.3g} to {max(d.values):+.3g}, stderr {d.stderr:.2g})"
        if self.separated:
            better, worse = self.better(higher_is_better)
            return f"{better} better than {worse} beyond noise: {self.a} - {self.b} = {span}"
        return f"{self.a} vs {self.b}: indistinguishable at this profile ({self.a} - {self.b} = {span})"


def pair_verdicts(refs: dict[str, ArmReference], metric: str, min_seeds: int) -> list[PairVerdict]:
    """The verdict of every pair of arms (in spec order) from their reference seeds."""
    out = []
    for a, b in itertools.combinations(refs, 2):
        ra, rb = refs[a], refs[b]
        common = tuple(sorted(set(ra.seeds) & set(rb.seeds)))
        diff = None
        if len(common) >= min_seeds:
            va = dict(zip(ra.seeds, ra.spread(metric).values))
            vb = dict(zip(rb.seeds, rb.spread(metric).values))
            diff = Difference(a, b, spread_of(f"{a} - {b}", common, [va[s] - vb[s] for s in common]))
        out.append(PairVerdict(a, b, diff, common))
    return out


def reference_order(verdicts: list[PairVerdict], higher_is_better: bool) -> list[tuple[str, str]]:
    """``(better, worse)`` for every pair the references separate beyond noise."""
    return [p for p in (v.better(higher_is_better) for v in verdicts) if p is not None]
