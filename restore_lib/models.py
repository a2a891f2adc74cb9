"""Model registry: the name -> class table, ``build_model`` and presets.

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

import importlib
import inspect
from typing import Any

import torch
import torch.nn as nn

__all__ = [
    "MODELS", "list_models", "get_model_class", "build_model", "model_presets",
    "count_parameters", "UnknownModelError", "ConfigError",
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
    """The keyword arguments ``cls`` accepts, following ``**config`` up to the
    base class that receives it; and whether any key at all is accepted."""
    keys: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        keys |= {p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return keys, False
    return keys, True


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
