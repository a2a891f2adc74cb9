"""The pretrained weights a notebook run needs, checked before a gpu-profile
run starts.

In the smoke profile a missing VGG19 gives the labelled MobileNetV2 stand-in,
a missing LPIPS trunk gives "n/a" and a missing CLIP folder skips the CLIP
rows. A gpu-profile run must not publish such numbers as the paper's setting:
:func:`missing_weights` lists, for one notebook and its parameters, every
weight file it would need and does not find, and
``python -m restore_lib.course.reproduce --profile gpu`` (and the ablations)
refuse to start while that list is not empty. Inside the run,
``$RESTORE_REQUIRE_WEIGHTS=1`` makes the library raise instead of falling
back (:mod:`restore_lib.weights`).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..weights import find_weights, missing_weights_message, package_file
from .runner import CUDA_PROFILES, notebook_defaults

__all__ = ["needed_weights", "missing_weights", "refuse_to_start"]


def _params(nb_path: Path, params: dict) -> dict:
    """The run's parameters: the profile's, else the notebook's literal defaults."""
    return {**notebook_defaults(nb_path), **params}


def needed_weights(nb_path: Path, params: dict) -> list[tuple[str, str]]:
    """``[(weights, what needs them)]`` of a run; ``weights`` is a key of
    :data:`restore_lib.weights.TORCHVISION_FILES`, ``"lpips-alex"`` (the
    linear heads of the lpips wheel) or ``"clip"`` (a CLIP folder)."""
    p = _params(nb_path, params)
    stem = nb_path.stem
    if stem.startswith("01_"):
        return [("vgg19", f"Report A's perceptual loss (layer {p.get('a_perceptual_layer')})")]
    if stem.startswith("02_"):
        contrast = "contrast" in str(p.get("loss_terms")) or bool(p.get("run_ablations"))
        return [("vgg19", "the Stripformer contrastive loss")] if contrast else []
    if stem.startswith("03_"):
        need = [("alexnet", "LPIPS-alex (the SR tables)"), ("lpips-alex", "LPIPS-alex (the SR tables)")]
        if p.get("run_sr"):
            need.append(("vgg19", f"SRGAN's content loss (layer {p.get('srgan_content_layer')})"))
        return need
    if stem.startswith("05_"):
        priors = list(p.get("priors") or [])
        need = []
        if "mobilenet" in priors or p.get("run_ablations") or p.get("joint"):
            need.append(("mobilenet_v2", "the MobileNetV2 prior"))
        if "clip" in priors:
            need.append(("clip", "the CLIP prior (priors lists 'clip')"))
        return need
    return []


def _clip_problem(nb_path: Path, clip_dir) -> str | None:
    given = clip_dir if clip_dir is not None else os.environ.get("RESTORE_CLIP_DIR")
    if not given:
        return ("CLIP weights: no folder given; set clip_dir in configs/" + nb_path.stem + "/gpu.yaml or "
                "$RESTORE_CLIP_DIR to a local CLIP folder (transformers layout: config.json and "
                "model.safetensors), or remove 'clip' from priors")
    folder = Path(given).expanduser()
    folder = folder if folder.is_absolute() else nb_path.parent / folder   # the kernel runs in notebooks/
    if not (folder / "config.json").is_file():
        return f"CLIP weights: {folder} has no config.json (a transformers CLIP folder is needed)"
    return None


def missing_weights(nb_path: Path, params: dict) -> list[str]:
    """One line per weight file the run needs and this machine lacks (empty: all there)."""
    p = _params(nb_path, params)
    problems = []
    for key, why in needed_weights(nb_path, params):
        if key == "clip":
            problem = _clip_problem(nb_path, p.get("clip_dir"))
        elif key == "lpips-alex":
            found = package_file("lpips", "weights", "v0.1", "alex.pth")
            problem = None if found else ("LPIPS linear heads lpips/weights/v0.1/alex.pth not found; install "
                                          "the 'lpips' wheel (pip install --no-deps lpips)")
        else:
            problem = None if find_weights(key)[0] is not None else missing_weights_message(key)
        if problem:
            problems.append(f"{nb_path.name}: {why}: {problem}")
    return problems


def refuse_to_start(profile: str, runs: list[tuple[Path, dict]]) -> str | None:
    """Why a run of ``profile`` over ``runs`` (notebook, parameters) must not
    start, or None: a CUDA profile without CUDA, or a gpu-profile run whose
    pretrained weights are missing (it would record a fallback as the paper's
    setting; :func:`missing_weights`). Checked before anything runs."""
    if profile in CUDA_PROFILES:
        import torch

        if not torch.cuda.is_available():
            return f"profile '{profile}' needs CUDA and none is available: nothing was run, nothing recorded."
    if profile == "gpu":
        missing = sorted({m for nb, params in runs for m in missing_weights(nb, params)})
        if missing:
            return ("profile 'gpu' needs pretrained weights that are not on this machine (no fallback is recorded "
                    "as the paper's setting); nothing was run:\n  " + "\n  ".join(missing))
    return None
