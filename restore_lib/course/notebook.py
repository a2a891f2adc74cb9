"""What every notebook calls first, so the notebooks stay short."""
from __future__ import annotations

import os
import warnings

import torch

from ..utils import pick_device, seed_everything

__all__ = ["setup_notebook", "in_test", "snapshot_params"]


def in_test() -> bool:
    """True under nbval/pytest or when ``IN_TEST=1`` (quieter progress bars)."""
    return bool(os.environ.get("IN_TEST") or os.environ.get("PYTEST_CURRENT_TEST")
                or os.environ.get("RESTORE_RESULTS_DIR"))


def setup_notebook(seed: int = 0, device: str = "auto", *, threads: int | None = None,
                   deterministic: bool = True, banner: bool = True) -> torch.device:
    """Seed everything, choose the device, set quiet plotting defaults and print
    a one-line environment banner. Returns the torch device."""
    import matplotlib

    seed_everything(seed, deterministic=deterministic)
    if threads:
        torch.set_num_threads(threads)
    dev = pick_device(device)
    matplotlib.rcParams.update({"figure.dpi": 80, "savefig.dpi": 100, "image.interpolation": "nearest",
                                "axes.titlesize": 9, "font.size": 8})
    warnings.filterwarnings("ignore", message=".*upsample.*align_corners.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch.utils.data")
    if banner:
        print(f"torch {torch.__version__} | device {dev} | seed {seed} | threads {torch.get_num_threads()}")
    return dev


_SIMPLE = (int, float, str, bool, type(None), list, tuple, dict)
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}


def snapshot_params(namespace: dict) -> dict:
    """The notebook's parameters: call it in the cell right after the
    ``parameters`` cell (papermill's injected values included), before any
    other variable is defined. Keeps plain values only."""
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and k not in _IPYTHON_NAMES and isinstance(v, _SIMPLE)}
