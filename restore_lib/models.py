"""Model registry and checkpoint loading.

The registry is an explicit table from a name to ``"module:Class"``. A module
is imported only when one of its models is built, so a broken or heavy
architecture never affects the others (no auto-import, no import-time side
effects).

Each architecture class may carry:

* ``PRESETS``: named configurations (``"default"`` is the reference config
  whose parameter count the tests pin; ``"small"`` is the CPU profile);
* ``scale``: the upscaling factor (1 for restoration, 4 for x4 SR);
* ``size_multiple``: what the bare network needs; every ``forward`` pads to
  it and crops back, so users can pass any size.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

__all__ = [
    "MODELS", "list_models", "get_model_class", "build_model", "model_presets",
    "count_parameters", "canonicalize_state_dict", "load_checkpoint", "CheckpointError",
    "LoadReport", "UnknownModelError", "ConfigError",
]

#: name -> "module:Class". Add a line here to register a new architecture.
MODELS: dict[str, str] = {
    "baseline_cnn": "restore_lib.archs.baseline:BaselineCNN",
    "restormer": "restore_lib.archs.restormer:Restormer",
    "promptir": "restore_lib.archs.promptir:PromptIR",
    "promptir_csa": "restore_lib.archs.promptir_csa:PromptIRCSA",
    "stripformer": "restore_lib.archs.stripformer:Stripformer",
    "fsrcnn": "restore_lib.archs.fsrcnn:FSRCNN",
    "swinir": "restore_lib.archs.swinir:SwinIR",
    "srresnet": "restore_lib.archs.srgan:SRResNet",
    "srgan_discriminator": "restore_lib.archs.srgan:Discriminator",
    "nafnet": "restore_lib.archs.nafnet:NAFNet",
    "nafnet_baseline": "restore_lib.archs.nafnet:NAFNetBaseline",
    "diffir_s1": "restore_lib.archs.diffir:DiffIRS1",
    "diffir_s2": "restore_lib.archs.diffir:DiffIRS2",
    "ptgrm": "restore_lib.archs.ptgrm:PTGRM",
}


class UnknownModelError(KeyError):
    """Raised for a name that is not in :data:`MODELS`."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


class ConfigError(TypeError):
    """Raised for an unknown preset or configuration key."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


def get_model_class(name: str) -> type[nn.Module]:
    """Import and return the class registered under ``name``."""
    if name not in MODELS:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    module_name, _, cls_name = MODELS[name].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name)


def model_presets(name: str) -> dict[str, dict]:
    """The named configurations of a model (always includes ``"default"``)."""
    cls = get_model_class(name)
    presets = dict(getattr(cls, "PRESETS", {}) or {})
    presets.setdefault("default", {})
    return presets


def _accepted_keys(cls: type) -> tuple[set[str], bool]:
    sig = inspect.signature(cls.__init__)
    keys = {p.name for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    var_kw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    return keys, var_kw


def build_model(name: str, preset: str | None = None, **cfg: Any) -> nn.Module:
    """Build a registered model.

    ``preset`` picks a named configuration from the class's ``PRESETS``
    (``None`` or ``"default"`` = the reference config); keyword arguments
    override single keys. Unknown names, presets or keys raise an error that
    lists what is accepted.
    """
    cls = get_model_class(name)
    presets = model_presets(name)
    preset = preset or "default"
    if preset not in presets:
        raise ConfigError(f"model {name!r} has no preset {preset!r}; presets: {', '.join(sorted(presets))}")
    merged = {**presets[preset], **cfg}
    accepted, var_kw = _accepted_keys(cls)
    unknown = sorted(k for k in merged if k not in accepted)
    if unknown and not var_kw:
        raise ConfigError(
            f"unknown config key(s) for model {name!r}: {', '.join(unknown)}; "
            f"accepted keys: {', '.join(sorted(accepted))}")
    return cls(**merged)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers excluded), the convention papers use."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------- checkpoints

#: wrapper keys tried in order when a checkpoint is a dict of dicts
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "model")
#: prefixes removed when every key carries them and the model's keys do not
STRIP_PREFIXES = ("module.", "net.", "_orig_mod.")


@dataclasses.dataclass
class LoadReport:
    """What :func:`load_checkpoint` did."""

    path: str
    wrapper_key: str | None
    stripped_prefixes: list[str]
    n_tensors: int

    def __str__(self) -> str:
        how = f"from key {self.wrapper_key!r}" if self.wrapper_key else "as a bare state_dict"
        strip = f", stripped prefix {'/'.join(self.stripped_prefixes)}" if self.stripped_prefixes else ""
        return f"loaded {self.n_tensors} tensors from {self.path} {how}{strip}"


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def canonicalize_state_dict(obj: Any, model_keys: set[str] | None = None,
                            key: str | None = None) -> tuple[dict[str, torch.Tensor], str | None, list[str]]:
    """Unwrap a loaded checkpoint object into a plain state_dict.

    Handles BasicSR's ``params``/``params_ema``, Lightning's ``state_dict``,
    ``model_state_dict``, our trainer's ``model``, and ``module.``/``net.``/
    ``_orig_mod.`` prefixes. Returns (state_dict, wrapper key used, prefixes
    stripped).
    """
    used = None
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            have = ", ".join(map(str, obj.keys())) if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(f"checkpoint has no key {key!r} (it has: {have})")
        obj, used = obj[key], key
    elif not _is_state_dict(obj) and isinstance(obj, Mapping):
        for k in WRAPPER_KEYS:
            if k in obj and isinstance(obj[k], Mapping):
                obj, used = obj[k], k
                break
    if not _is_state_dict(obj):
        what = ", ".join(map(str, obj.keys())) if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"no state_dict found (top-level keys: {what}); pass key=... to choose one")
    sd = dict(obj)
    stripped: list[str] = []
    changed = True
    while changed:
        changed = False
        for prefix in STRIP_PREFIXES:
            if all(k.startswith(prefix) for k in sd) and not (
                    model_keys and all(k.startswith(prefix) for k in model_keys)):
                sd = {k[len(prefix):]: v for k, v in sd.items()}
                stripped.append(prefix)
                changed = True
    return sd, used, stripped


def read_checkpoint_file(path: str | os.PathLike) -> Any:
    """Read a ``.pt``/``.pth``/``.ckpt`` file with ``weights_only=True``, or a
    ``.safetensors`` file, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise CheckpointError(f"{path}: reading .safetensors needs the 'safetensors' package") from e
        return load_file(str(path), device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused by torch.load(weights_only=True). It probably pickles whole Python "
            f"objects (for example a full nn.Module); re-save its state_dict instead. Detail: {e}") from e
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e})") from e


def load_checkpoint(model: nn.Module, path: str | os.PathLike, *, key: str | None = None,
                    strict: bool = True) -> LoadReport:
    """Load weights into ``model`` from a checkpoint file.

    Loads strictly by default. On any missing or unexpected key, or a shape
    mismatch, raises :class:`CheckpointError` naming the keys. ``strict=False``
    is available for deliberate partial loads, and the report still lists what
    was skipped (see ``restore_lib.archs.diffir`` for the stage-2 init).
    """
    obj = read_checkpoint_file(path)
    target = model.state_dict()
    sd, used, stripped = canonicalize_state_dict(obj, set(target), key=key)
    missing = sorted(set(target) - set(sd))
    unexpected = sorted(set(sd) - set(target))
    mismatched = sorted(k for k in set(sd) & set(target) if sd[k].shape != target[k].shape)
    hint = getattr(model, "CHECKPOINT_HINT", "")
    if strict and (missing or unexpected or mismatched):
        raise CheckpointError(_describe_mismatch(path, missing, unexpected, mismatched, sd, target) + hint)
    if mismatched:
        raise CheckpointError(_describe_mismatch(path, [], [], mismatched, sd, target) + hint)
    model.load_state_dict(sd, strict=strict)
    return LoadReport(str(path), used, stripped, len(sd))


def _describe_mismatch(path, missing, unexpected, mismatched, sd, target, limit: int = 12) -> str:
    def names(keys):
        shown = ", ".join(keys[:limit])
        return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
    parts = [f"{path}: checkpoint does not match the model"]
    if missing:
        parts.append(f"missing keys ({len(missing)}): {names(missing)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {names(unexpected)}")
    if mismatched:
        detail = [f"{k} {tuple(sd[k].shape)} vs model {tuple(target[k].shape)}" for k in mismatched]
        parts.append(f"shape mismatches ({len(mismatched)}): {names(detail)}")
    return "; ".join(parts)
