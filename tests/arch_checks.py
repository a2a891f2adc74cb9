"""Spandrel-style checks shared by the architecture tests.

Each architecture test module calls these on its own configs:
build, state_dict round trip (also through ``load_checkpoint`` and a wrapped
file), output size on odd inputs, parameter counts, and the parameter order
of the official classes (``tests/data/official_param_order.json``).
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import torch

from restore_lib.archs._common import sdpa_enabled
from restore_lib.checkpoints import load_checkpoint
from restore_lib.models import build_model, count_parameters


def build(name: str, preset: str | None = None, seed: int = 0, **cfg):
    torch.manual_seed(seed)
    return build_model(name, preset, **cfg).eval()


def build_meta(name: str, preset: str | None = None, **cfg) -> torch.nn.Module:
    """Build on the meta device: names, shapes and counts without allocating or initialising."""
    with torch.device("meta"):
        return build_model(name, preset, **cfg)


def deterministic_fill(model: torch.nn.Module, seed: int = 0, parameters_only: bool = False,
                       amplitude: float = 0.1) -> torch.nn.Module:
    """Overwrite every state_dict tensor, in sorted key order, with U(-a, a) (a = ``amplitude``)
    draws of one ``torch.Generator`` seeded with ``seed``: the same weights for
    any model with the same keys and shapes, whatever its parameter order or
    initialisation (the weights of the pinned reference outputs).

    ``parameters_only``: fill only ``named_parameters()`` (sorted by name) and
    keep the buffers (BatchNorm statistics, SwinIR's index and mask buffers,
    DiffIR's schedule), which random values would make meaningless. A larger
    ``amplitude`` keeps deep residual nets from being near-identity maps, so
    that their pinned outputs depend on every layer."""
    g = torch.Generator().manual_seed(seed)
    if parameters_only:
        with torch.no_grad():
            for _, p in sorted(model.named_parameters()):
                p.copy_(torch.rand(p.shape, generator=g) * (2 * amplitude) - amplitude)
        return model
    sd = model.state_dict()
    model.load_state_dict({k: torch.rand(v.shape, generator=g) * (2 * amplitude) - amplitude
                           for k, v in sorted(sd.items())})
    return model


def seeded_rand(*shape: int, seed: int = 1) -> torch.Tensor:
    """U(0, 1) input from its own CPU generator (independent of the global RNG)."""
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def output_summary(y: torch.Tensor) -> dict:
    """Mean, standard deviation and six values at fixed flat positions of an output."""
    f = y.detach().double().flatten()
    n = f.numel()
    at = sorted({0, n // 7, n // 3, n // 2, 2 * n // 3, n - 1})
    return {"mean": f.mean().item(), "std": f.std().item() if n > 1 else 0.0,
            "at": {str(i): f[i].item() for i in at}}


def check_pinned_output(y: torch.Tensor, key: str, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """``y`` agrees with the pinned summary ``key`` of ``tests/data/reference_outputs.json``
    (same shape, mean, std and the values at the pinned positions)."""
    ref = reference_data("reference_outputs.json")[key]
    assert list(y.shape) == ref["shape"], (key, tuple(y.shape))
    got = output_summary(y)
    want = ref["summary"]
    assert set(got["at"]) == set(want["at"]), key
    for name, a, b in [("mean", got["mean"], want["mean"]), ("std", got["std"], want["std"])] + \
            [(f"y.flatten()[{i}]", got["at"][i], want["at"][i]) for i in want["at"]]:
        assert abs(a - b) <= atol + rtol * abs(b), f"{key}: {name} = {a:.8g}, pinned {b:.8g}"


def check_key_shapes(state_dict, expected: dict) -> None:
    """The listed keys exist with these shapes."""
    assert {k: tuple(state_dict[k].shape) if k in state_dict else None for k in expected} == expected


def check_roundtrip(name: str, tmp_path: Path, preset: str | None = None, inputs=None, wrapper: str | None = "params",
                    **cfg) -> None:
    """Two independently initialised copies agree after a state_dict copy,
    both in memory and through a checkpoint file wrapped under ``wrapper``."""
    a = build(name, preset, seed=0, **cfg)
    b = build(name, preset, seed=1, **cfg)
    sd = a.state_dict()
    assert set(sd) == set(b.state_dict())
    path = tmp_path / f"{name}.pth"
    torch.save({wrapper: sd} if wrapper else sd, path)
    report = load_checkpoint(b, path)
    assert report.n_tensors == len(sd)
    for k, v in b.state_dict().items():
        assert torch.equal(v, sd[k]), k
    if inputs is not None:
        with torch.no_grad():
            out_a, out_b = a(*inputs), b(*inputs)
        if isinstance(out_a, (tuple, list)):
            out_a, out_b = out_a[0], out_b[0]
        torch.testing.assert_close(out_a, out_b)


def check_output_sizes(model: torch.nn.Module, sizes=((17, 23), (32, 32), (29, 40)), scale: int = 1,
                       in_channels: int = 3, out_channels: int = 3, call=None) -> None:
    """Output = scale x input for odd and non-square sizes, finite values."""
    for h, w in sizes:
        x = torch.rand(1, in_channels, h, w)
        with torch.no_grad():
            y = call(model, x) if call else model(x)
        assert y.shape == (1, out_channels, h * scale, w * scale), (h, w, tuple(y.shape))
        assert torch.isfinite(y).all(), (h, w)


def check_sdpa_paths_agree(model: torch.nn.Module, *inputs, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """The fused scaled-dot-product-attention path and the explicit softmax
    path give the same output."""
    with torch.no_grad():
        with sdpa_enabled(True):
            fused = model(*inputs)
        with sdpa_enabled(False):
            explicit = model(*inputs)
    torch.testing.assert_close(fused, explicit, atol=atol, rtol=rtol)


def check_param_count(name: str, expected: int, preset: str | None = None, **cfg) -> torch.nn.Module:
    model = build_model(name, preset, **cfg)
    assert count_parameters(model) == expected
    return model


# --------------------------------------------------------------------------- reference data files

#: reference values the tests compare against, each with where it was measured
DATA_DIR = Path(__file__).parent / "data"


@functools.lru_cache(maxsize=None)
def reference_data(filename: str) -> dict:
    """A JSON file of ``tests/data`` (read once)."""
    return json.loads((DATA_DIR / filename).read_text(encoding="utf-8"))


def reference_fact(key: str) -> dict:
    """One entry of ``tests/data/reference_facts.json`` (values measured on the
    official code, each with its source)."""
    return reference_data("reference_facts.json")[key]


def check_param_order(model: torch.nn.Module, entry: str) -> None:
    """``named_parameters()`` order = the official class's, from
    ``official_param_order.json`` (the full list, or its sha256 for large configs)."""
    ref = reference_data("official_param_order.json")[entry]
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == ref["n"], (entry, len(names))
    if "names" in ref:
        first = next((i for i, (a, b) in enumerate(zip(names, ref["names"])) if a != b), None)
        assert names == ref["names"], f"{entry}: first difference at {first}: " \
                                      f"{names[first] if first is not None else None}"
    else:
        assert hashlib.sha256("\n".join(names).encode()).hexdigest() == ref["sha256"], entry
