"""What each report's results must show, asserted with tolerances.

One module per notebook (``cNN_*.py``) defines ``REPORT`` (the notebook stem)
and ``check(metrics, record)`` that asserts on the flat ``metrics`` dict of a
metrics.json (and the whole ``record`` when needed). Optional ``TOLERANCES``
override how far a re-run may drift from the committed numbers:
``{"<key suffix or substring>": (abs_tol, rel_tol)}``.

The same checks run on the committed ``results/`` (tests/test_claims.py) and
on the fresh re-run that ``make test`` makes with nbval
(tests/reproduction/test_reproduced.py).
"""
import importlib
import pkgutil

DEFAULT_TOLERANCES = {"psnr": (0.75, 0.0), "ssim": (0.03, 0.0), "lpips": (0.05, 0.0), "": (0.0, 0.25)}


def claim_modules():
    mods = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("c"):
            mods.append(importlib.import_module(f"{__name__}.{info.name}"))
    return mods


def tolerance_for(key: str, module) -> tuple[float, float]:
    table = {**DEFAULT_TOLERANCES, **getattr(module, "TOLERANCES", {})}
    low = key.lower()
    for pattern in sorted(table, key=len, reverse=True):
        if pattern and pattern.lower() in low:
            return table[pattern]
    return table[""]
