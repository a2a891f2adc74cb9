"""What each report's results must show, asserted on every recorded seed.

One module per notebook (``cNN_*.py``) defines ``REPORT`` (the notebook stem)
and ``check(metrics, record)`` that asserts on the flat ``metrics`` dict of a
metrics.json (and the whole ``record`` when needed). A claim must hold for
every seed of the sweep (``results/<report>/seeds/``), not only for the
committed run: tests/test_claims.py checks all of them.

How far a re-run may drift from the committed numbers is not chosen by hand:
it is ``max(3 sigma, floor)``, sigma being the metric's standard deviation over
the recorded seeds (``restore_lib.course.results.seed_spread``) and the floor the
rounding-level noise of its kind (:data:`FLOORS`), so that a metric that did
not move across seeds (a parameter count, a check that is exact by
construction) must reproduce to that level.

The same checks run on the committed ``results/`` (tests/test_claims.py) and
on the fresh re-run that ``make test`` makes with nbval
(tests/reproduction/test_reproduced.py).
"""
import importlib
import pkgutil

from restore_lib.course.results import seed_spread

#: sigmas of the seed spread a re-run may move
SIGMAS = 3.0
#: the least tolerance per kind of metric (matched as a substring of the key, longest first): the last digit
#: of the tables' rounding (PSNR to 0.01 dB, SSIM/LPIPS to 1e-4); anything else 1e-6 of its value
FLOORS = {"psnr": (0.01, 0.0), "ssim": (1e-4, 0.0), "lpips": (1e-4, 0.0), "": (1e-9, 1e-6)}


def claim_modules():
    mods = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("c"):
            mods.append(importlib.import_module(f"{__name__}.{info.name}"))
    return mods


def floor_for(key: str, ref: float) -> float:
    low = key.lower()
    for pattern in sorted(FLOORS, key=len, reverse=True):
        if pattern in low:
            abs_floor, rel_floor = FLOORS[pattern]
            return max(abs_floor, rel_floor * abs(ref))
    raise AssertionError("FLOORS has a catch-all entry")


def tolerance_for(key: str, module, ref: float, profile: str = "smoke") -> float:
    """How far a re-run's ``key`` may be from the committed ``ref``: ``max(3 sigma over the seeds, floor)``,
    the seeds being those recorded for ``profile``."""
    return seed_spread(module.REPORT, key, profile=profile).tolerance(SIGMAS, floor_for(key, ref))


def check_verdicts(report: str, diff, verdicts: dict) -> None:
    """Every finding of ``configs/<report>/published.yaml`` has the verdict ``verdicts[id]`` over the recorded
    seeds: "+" or "-" (beyond noise, with that sign) or "0" (within noise); ``verdicts`` names every finding, so
    a finding added without a stated verdict fails too. The notebook's generated sentences say the same."""
    from restore_lib.course.findings import load_findings

    findings = {f.id: f for f in load_findings(report)}
    assert set(findings) == set(verdicts), f"findings and stated verdicts differ: {sorted(set(findings) ^ set(verdicts))}"
    for fid, sign in verdicts.items():
        f = findings[fid]
        d = diff(f.a, f.b)
        got = "0" if not d.beyond_noise else ("+" if d.mean > 0 else "-")
        assert got == sign, f"{fid}: {d.verdict(f.unit)}"

