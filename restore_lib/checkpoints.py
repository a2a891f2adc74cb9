"""Checkpoint files: reading them safely, unwrapping the usual wrappers, loading
them into a model, and the one report of what does not fit.

* :func:`read_checkpoint_file` reads ``.pt``/``.pth``/``.ckpt`` with
  ``weights_only=True`` (or ``.safetensors``), with errors that name the file;
* :func:`canonicalize_state_dict` unwraps BasicSR/Lightning/trainer wrappers
  and ``module.``/``net.``/``_orig_mod.`` prefixes;
* :func:`load_checkpoint` loads strictly; :func:`load_swinir_checkpoint` does
  the same after rebuilding SwinIR's img_size-dependent masks;
* :func:`state_dict_mismatch` and :func:`mismatch_report` are the single
  description of missing / unexpected / mis-shaped keys that every loader of
  the library raises (:class:`CheckpointError`).
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn

from .archs.swinir import SwinIR, adapt_attn_masks

__all__ = ["CheckpointError", "LoadReport", "WRAPPER_KEYS", "STRIP_PREFIXES", "canonicalize_state_dict",
           "read_checkpoint_file", "load_checkpoint", "load_swinir_checkpoint", "load_state_dict_checked",
           "state_dict_mismatch", "mismatch_report", "checkpoint_scale"]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


#: wrapper keys tried in order when a checkpoint is a dict of dicts
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "model_state", "model")
#: prefixes removed when every key carries them and the model's keys do not
STRIP_PREFIXES = ("module.", "net.", "_orig_mod.")


@dataclasses.dataclass
class LoadReport:
    """What :func:`load_checkpoint` did: ``n_tensors`` of the model's
    ``n_model_tensors`` came from the file (``n_unused`` of the file's tensors
    went nowhere)."""

    path: str
    wrapper_key: str | None
    stripped_prefixes: list[str]
    n_tensors: int
    n_model_tensors: int = 0
    n_unused: int = 0
    scale: int | None = None

    def __str__(self) -> str:
        how = f"from key {self.wrapper_key!r}" if self.wrapper_key else "as a bare state_dict"
        strip = f", stripped prefix {'/'.join(self.stripped_prefixes)}" if self.stripped_prefixes else ""
        unused = f"; {self.n_unused} tensors of the file unused" if self.n_unused else ""
        scale = f"; x{self.scale}" if self.scale else ""
        return (f"loaded {self.n_tensors} of the model's {self.n_model_tensors} tensors from {self.path} "
                f"{how}{strip}{unused}{scale}")


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
        try:
            return load_file(str(path), device="cpu")
        except Exception as e:  # noqa: BLE001 - safetensors raises its own SafetensorError; re-raised with the file
            raise CheckpointError(f"{path}: not a readable .safetensors file ({type(e).__name__}: {e})") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused by torch.load(weights_only=True). It probably pickles whole Python "
            f"objects (for example a full nn.Module); re-save its state_dict instead. Detail: {e}") from e
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e})") from e


def state_dict_mismatch(sd: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], *,
                        against: str = "model") -> tuple[list[str], list[str], list[str]]:
    """``(missing, unexpected, shape mismatches)`` of ``sd`` against ``target``,
    in state_dict order; a shape mismatch reads ``"key (a, b) vs <against> (c, d)"``."""
    missing = [k for k in target if k not in sd]
    unexpected = [k for k in sd if k not in target]
    shapes = [f"{k} {tuple(sd[k].shape)} vs {against} {tuple(target[k].shape)}"
              for k in target if k in sd and sd[k].shape != target[k].shape]
    return missing, unexpected, shapes


def mismatch_report(what: str, groups: Sequence[tuple[str, Sequence[str]]], limit: int = 12) -> str | None:
    """``"<what>; <label> (<n>): k1, k2, ... (m more); ..."`` over the non-empty
    ``(label, keys)`` groups, or ``None`` when every group is empty."""
    parts = []
    for label, keys in groups:
        keys = list(keys)
        if keys:
            more = f", ... ({len(keys) - limit} more)" if len(keys) > limit else ""
            parts.append(f"{label} ({len(keys)}): {', '.join(keys[:limit])}{more}")
    return "; ".join([what, *parts]) if parts else None


def load_state_dict_checked(module: nn.Module, sd: Mapping[str, torch.Tensor], what: str, *,
                            strict: bool = True, prefix: str = "",
                            other: Sequence[tuple[str, Sequence[str]]] = ()) -> None:
    """``module.load_state_dict(sd)``, or :class:`CheckpointError` with
    :func:`mismatch_report` (headed ``what``) when keys or shapes do not fit.
    ``strict=False`` tolerates missing and unexpected keys, never a shape
    mismatch; ``prefix`` is prepended to the key names shown; ``other`` adds
    problem groups found by the caller (which fail the load as well)."""
    missing, unexpected, shapes = state_dict_mismatch(sd, module.state_dict())
    if not strict:
        missing, unexpected = [], []
    problem = mismatch_report(what, [*other, ("missing keys", [prefix + k for k in missing]),
                                     ("unexpected keys", [prefix + k for k in unexpected]),
                                     ("shape mismatches", [prefix + k for k in shapes])])
    if problem:
        raise CheckpointError(problem + getattr(module, "CHECKPOINT_HINT", ""))
    module.load_state_dict(sd, strict=strict)


#: where a checkpoint says which SR factor it was trained for: wrapper fields, then its file name (x2, _x3, X4 ...)
_SCALE_FIELDS = ("scale", "upscale", "upscale_factor", "sr_factor")
_SCALE_IN_NAME = re.compile(r"(?:^|[^a-z0-9])x([2-8])(?:[^0-9]|$)", re.IGNORECASE)


def checkpoint_scale(obj: Any, path: str | os.PathLike) -> tuple[int | None, str]:
    """The SR factor a checkpoint declares, and where it says so: a scale field
    of the wrapper (or of its ``opt``/``args``/``config``), else an ``xN`` in the
    file name; ``(None, "")`` when it says nothing."""
    if isinstance(obj, Mapping):
        for holder in (obj, *(obj.get(k) for k in ("opt", "args", "config", "hyper_parameters"))):
            if isinstance(holder, Mapping):
                for field in _SCALE_FIELDS:
                    v = holder.get(field)
                    if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                        return v, f"its {field!r} field"
    m = _SCALE_IN_NAME.search(Path(path).name)
    if m:
        return int(m.group(1)), f"its file name {Path(path).name!r}"
    return None, ""


def _prefixes_holding(model_keys: Sequence[str], sd_keys: Sequence[str]) -> list[str]:
    """Prefixes P (e.g. ``"refinement11."``) under which the file holds every key of the model."""
    if not model_keys:
        return []
    first, keys = model_keys[0], set(sd_keys)
    found = []
    for k in sd_keys:
        if k.endswith("." + first):
            p = k[: -len(first)]
            if all(p + mk in keys for mk in model_keys):
                found.append(p)
    return found


def _load(model: nn.Module, path, key: str | None, strict: bool, prefix: str | None = None,
          adapt: Callable[[dict], dict] | None = None) -> LoadReport:
    obj = read_checkpoint_file(path)
    target = model.state_dict()
    model_scale = getattr(model, "scale", None)
    ckpt_scale, where = checkpoint_scale(obj, path)
    if isinstance(model_scale, int) and model_scale > 1 and ckpt_scale is not None and ckpt_scale != model_scale:
        raise CheckpointError(f"{path}: a x{ckpt_scale} checkpoint (from {where}) for a model that upsamples "
                              f"x{model_scale}; build the model with scale={ckpt_scale} (its weights have the same "
                              f"shapes, so loading would silently upsample by the wrong factor)")
    if prefix is not None:
        sd, used, stripped = canonicalize_state_dict(obj, None, key=key)
        inside = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if not inside:
            raise CheckpointError(f"{path}: no tensor under prefix {prefix!r}")
        n_outside = len(sd) - len(inside)
        sd, stripped = inside, [*stripped, prefix]
    else:
        sd, used, stripped = canonicalize_state_dict(obj, set(target), key=key)
        n_outside = 0
    hint = ""
    missing, _, _ = state_dict_mismatch(sd, target)
    if missing:
        holders = _prefixes_holding(list(target), list(sd))
        if holders:
            hint = (f". The file holds this model under {', '.join(map(repr, holders))} (a larger network's "
                    f"sub-module): load it with prefix={holders[0]!r}")
    sd = adapt(sd) if adapt else sd
    try:
        load_state_dict_checked(model, sd, f"{path}: checkpoint does not match the model", strict=strict)
    except CheckpointError as e:
        raise CheckpointError(str(e) + hint) from None
    loaded = sum(1 for k in target if k in sd and sd[k].shape == target[k].shape)
    unused = n_outside + sum(1 for k in sd if k not in target)
    return LoadReport(str(path), used, stripped, loaded, len(target), unused, ckpt_scale or (
        model_scale if isinstance(model_scale, int) and model_scale > 1 else None))


def load_checkpoint(model: nn.Module, path: str | os.PathLike, *, key: str | None = None,
                    strict: bool = True, prefix: str | None = None) -> LoadReport:
    """Load weights into ``model`` from a checkpoint file.

    Loads strictly by default. On any missing or unexpected key, or a shape
    mismatch, raises :class:`CheckpointError` naming the keys (and, when the
    file holds the model as a sub-module of a larger network, the ``prefix``
    that would load it). ``prefix="refinement11."`` loads only the tensors
    under that prefix, with the prefix removed (e.g. PTG-RM out of a released
    SID model). ``strict=False`` is available for deliberate partial loads; a
    shape mismatch is an error even then, and the report says how many of the
    model's tensors the file really gave. A checkpoint that declares another
    SR factor than the model's ``scale`` (a field, or ``x3`` in its file name)
    is refused.
    """
    return _load(model, path, key, strict, prefix)


def load_swinir_checkpoint(model: SwinIR, path: str | os.PathLike, *, key: str | None = None) -> LoadReport:
    """Load a SwinIR checkpoint trained with any ``img_size``.

    Like :func:`load_checkpoint` (same unwrapping, strict), except that the
    img_size-dependent ``attn_mask`` buffers are taken from ``model`` (see
    :func:`restore_lib.archs.swinir.adapt_attn_masks`). Any other missing,
    unexpected or mis-shaped tensor raises :class:`CheckpointError` naming the
    file and the keys.
    """
    if not isinstance(model, SwinIR):
        raise TypeError(f"load_swinir_checkpoint: model must be a SwinIR, got {type(model).__name__}")
    return _load(model, path, key, True, adapt=lambda sd: adapt_attn_masks(sd, model)[0])
