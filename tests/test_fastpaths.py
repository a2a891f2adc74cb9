"""The fast paths compute the same numbers as the reference paths.

* Fused attention (``scaled_dot_product_attention``) against the explicit
  ``softmax(q k^T * scale + mask) v`` path (``sdpa_enabled(False)``, the
  oracle) for SwinIR windows (with the shift mask), Stripformer strips and
  PromptIR-CSA cross-scale attention: outputs and parameter gradients.
* The fused kernel is really called (and not at all on the explicit path).
* No Python loop over windows or strips: the number of dispatched ATen ops
  does not depend on the image size (4x more windows, same op count).
* ``channels_last`` models and inputs give the default-layout outputs.

Small presets on small inputs; nothing is timed here (speed is in
``benchmarks/``).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from restore_lib.archs._common import sdpa_enabled
from restore_lib.models import build_model

#: (model, preset, input (H, W) LR for SR; multiples of the model's size_multiple, not its img_size)
ATTENTION_MODELS = [
    ("swinir", "small", (24, 40)),
    ("stripformer", "small", (32, 48)),
    ("promptir_csa", "small", (32, 48)),
]


def _build(name: str, preset: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(name, preset).eval()


def _image(hw, channels: int = 3, batch: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, *hw, generator=g)


def _grads(model, x, sdpa: bool) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)   # train mode: SwinIR's stochastic depth must drop the same paths both times
    with sdpa_enabled(sdpa):
        out = model(x)
    # a loss that weights every output pixel differently
    w = torch.linspace(0.5, 1.5, out.numel()).view_as(out)
    (out * w).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name, preset, hw", ATTENTION_MODELS, ids=[m[0] for m in ATTENTION_MODELS])
def test_sdpa_output_equals_explicit(name, preset, hw):
    model = _build(name, preset)
    x = _image(hw)
    with torch.no_grad():
        with sdpa_enabled(False):
            ref = model(x)
        with sdpa_enabled(True):
            fast = model(x)
    assert fast.shape == ref.shape
    assert (fast - ref).abs().max().item() < 1e-5
    assert ref.std() > 1e-3   # a non-trivial output (random init is not the identity)


@pytest.mark.parametrize("name, preset, hw", ATTENTION_MODELS, ids=[m[0] for m in ATTENTION_MODELS])
def test_sdpa_gradients_equal_explicit(name, preset, hw):
    model = _build(name, preset).train()
    x = _image(hw, batch=1)
    ref, fast = _grads(model, x, False), _grads(model, x, True)
    assert ref.keys() == fast.keys() and len(ref) > 0
    for n in ref:
        scale = ref[n].abs().max().item()
        assert (fast[n] - ref[n]).abs().max().item() <= 1e-4 * scale + 1e-7, n


@pytest.mark.parametrize("name, preset, hw", ATTENTION_MODELS, ids=[m[0] for m in ATTENTION_MODELS])
def test_fused_kernel_is_called_only_on_the_fast_path(name, preset, hw, monkeypatch):
    calls = []
    original = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    model = _build(name, preset)
    x = _image(hw, batch=1)
    with torch.no_grad():
        with sdpa_enabled(False):
            model(x)
        assert calls == []
        with sdpa_enabled(True):
            model(x)
    assert len(calls) > 0


class _OpCounter(TorchDispatchMode):
    """Counts every ATen op dispatched inside the context."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def _count_ops(model, x) -> int:
    with torch.no_grad():
        model(x)                      # warm any per-size cache (e.g. SwinIR shift masks)
        with _OpCounter() as counter:
            model(x)
    return counter.ops


@pytest.mark.parametrize("name, preset, hw", ATTENTION_MODELS, ids=[m[0] for m in ATTENTION_MODELS])
@pytest.mark.parametrize("sdpa", [True, False], ids=["sdpa", "explicit"])
def test_no_python_loop_over_windows_or_strips(name, preset, hw, sdpa):
    model = _build(name, preset)
    small, large = _image(hw, batch=1), _image((2 * hw[0], 2 * hw[1]), batch=1)
    with sdpa_enabled(sdpa):
        assert _count_ops(model, small) == _count_ops(model, large)


def test_op_count_detects_a_python_loop_over_windows():
    """The detector above is able to fail: a per-window loop makes the op count grow with the image."""

    class LoopedWindows(torch.nn.Module):
        def forward(self, x):
            tiles = [x[..., i:i + 8, j:j + 8].sum() for i in range(0, x.shape[-2], 8)
                     for j in range(0, x.shape[-1], 8)]
            return torch.stack(tiles)

    assert _count_ops(LoopedWindows(), _image((16, 16), batch=1)) < _count_ops(LoopedWindows(),
                                                                               _image((32, 32), batch=1))


CHANNELS_LAST_MODELS = [
    ("nafnet", "small", (32, 48), 3),
    ("restormer", "small", (32, 48), 3),
    ("swinir", "small", (24, 40), 3),
    ("stripformer", "small", (32, 48), 3),
    ("promptir_csa", "small", (32, 48), 3),
    ("srresnet", "small", (12, 20), 3),
    ("fsrcnn", "small", (12, 20), 1),
]


@pytest.mark.parametrize("name, preset, hw, channels", CHANNELS_LAST_MODELS,
                         ids=[m[0] for m in CHANNELS_LAST_MODELS])
def test_channels_last_equals_default_layout(name, preset, hw, channels):
    model = _build(name, preset)
    x = _image(hw, channels=channels)
    with torch.no_grad():
        ref = model(x)
        model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5), (out - ref).abs().max().item()
