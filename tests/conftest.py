import os
import sys
from pathlib import Path

# spinning OpenMP threads make tiny forwards very slow on a loaded 2-core machine
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

# tests import their shared helpers (arch_checks.py) as top-level modules
sys.path.insert(0, str(Path(__file__).parent))

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
