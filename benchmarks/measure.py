"""Measuring primitives: wall-clock timing with medians, peak memory, and
FLOP counting with ``torch.utils.flop_counter.FlopCounterMode``.

Timing
------
A call is timed ``repeats`` times after ``warmup`` untimed calls; we report
the median (robust to the outliers a shared machine produces) with the min and
max. On CUDA every call is bracketed by ``torch.cuda.synchronize()`` so the
kernels are inside the interval. :func:`time_interleaved` alternates two or
more variants (A B A B ...) so slow drifts of a noisy machine hit them alike.

Peak memory
-----------
CPU: the resident set size of the process. Linux keeps its high-water mark
(``VmHWM`` in ``/proc/self/status``) and lets a process reset it to the
current RSS by writing ``5`` to ``/proc/self/clear_refs``, so one process can
measure the peak of each phase. Elsewhere the peak is the process-lifetime
maximum (``resource.getrusage``) and :attr:`MemoryProbe.resettable` is False.
CUDA: ``torch.cuda.max_memory_allocated`` after
``torch.cuda.reset_peak_memory_stats`` (tensor memory only, no allocator cache).

MACs
----
``FlopCounterMode`` counts convolutions, linear layers, (b)mm, matmul and
fused attention, forward and backward; elementwise ops are not counted.
MACs = FLOPs / 2. torch's formula for the weight gradient of a *grouped*
convolution ignores the groups (2.15 counts a depthwise 3x3 conv's backward
as ~65x its forward); :func:`count_flops` replaces it with the corrected
formula (grad_weight FLOPs / groups) unless the installed torch is already
right (checked once, see :func:`_torch_counts_grouped_backward_right`).
Counting runs on the ``meta`` device (shapes only, no
arithmetic), so counting a model at a large input is instant. Attention is
counted through the explicit ``softmax(QK^T)V`` path
(``sdpa_enabled(False)``), the convention of ``architectures.md`` (matmuls
are counted); the fused kernel computes the same product counts.
"""
from __future__ import annotations

import dataclasses
import inspect
import os
import resource
import statistics
import sys
import time
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn
from torch.utils import flop_counter as _fc
from torch.utils.flop_counter import FlopCounterMode

from restore_lib.archs._common import sdpa_enabled

__all__ = ["Timing", "time_calls", "time_interleaved", "MemoryProbe", "rss_mb", "count_flops", "flop_counter",
           "to_meta"]

MB = 1024.0 * 1024.0


# --------------------------------------------------------------------------- timing

@dataclasses.dataclass
class Timing:
    """Seconds per call: median, min, max over ``n`` timed calls."""

    median_s: float
    min_s: float
    max_s: float
    n: int

    @classmethod
    def from_samples(cls, samples: list[float]) -> "Timing":
        if not samples:
            raise ValueError("no timing samples")
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))

    def ms(self) -> dict[str, float]:
        return {"median_ms": 1e3 * self.median_s, "min_ms": 1e3 * self.min_s, "max_ms": 1e3 * self.max_s,
                "n": self.n}


def _sync_for(device: str | torch.device | None) -> Callable[[], None]:
    if device is not None and torch.device(device).type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def time_calls(fn: Callable[[], Any], *, warmup: int = 1, repeats: int = 5, min_repeats: int = 3,
               budget_s: float | None = None, device=None, clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then up to ``repeats`` timed calls.

    With ``budget_s``, timing stops early once ``min_repeats`` calls are done
    and their total exceeds the budget (slow models on a slow machine).
    """
    if repeats < 1 or min_repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1, min_repeats >= 1, warmup >= 0 (got {repeats}, {min_repeats}, {warmup})")
    sync = _sync_for(device)
    for _ in range(warmup):
        fn()
    sync()
    samples: list[float] = []
    for i in range(repeats):
        t0 = clock()
        fn()
        sync()
        samples.append(clock() - t0)
        if budget_s is not None and i + 1 >= min_repeats and sum(samples) > budget_s:
            break
    return Timing.from_samples(samples)


def time_interleaved(fns: Mapping[str, Callable[[], Any]], *, warmup: int = 1, repeats: int = 5,
                     min_repeats: int = 3, budget_s: float | None = None, device=None,
                     clock: Callable[[], float] = time.perf_counter) -> dict[str, Timing]:
    """Time several variants in alternation (A B A B ...); same rules as :func:`time_calls`."""
    if not fns:
        raise ValueError("time_interleaved needs at least one function")
    sync = _sync_for(device)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(repeats):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            sync()
            samples[name].append(clock() - t0)
        spent = sum(sum(v) for v in samples.values())
        if budget_s is not None and i + 1 >= min_repeats and spent > budget_s:
            break
    return {k: Timing.from_samples(v) for k, v in samples.items()}


# --------------------------------------------------------------------------- memory

def _proc_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def rss_mb() -> float:
    """Current resident set size of this process in MiB."""
    kb = _proc_status_kb("VmRSS")
    if kb is not None:
        return kb / 1024.0
    # no /proc (macOS): ru_maxrss is the best available figure
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / MB if sys.platform == "darwin" else ru / 1024.0


def _rss_peak_mb() -> float:
    kb = _proc_status_kb("VmHWM")
    if kb is not None:
        return kb / 1024.0
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / MB if sys.platform == "darwin" else ru / 1024.0


def _reset_rss_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where impossible."""
    if not os.path.exists("/proc/self/clear_refs"):
        return False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError as e:  # e.g. a hardened kernel or container refusing the write
        print(f"benchmarks: cannot reset the RSS peak via /proc/self/clear_refs ({e}); "
              f"memory peaks are process-lifetime maxima", file=sys.stderr)
        return False
    return True


class MemoryProbe:
    """Peak memory of one phase of this process.

    ``reset()`` starts a phase, ``peak_mb()`` reads its peak. On CPU the
    numbers are RSS in MiB (``baseline_mb`` is the RSS when the probe was
    created, i.e. the idle process); on CUDA they are
    ``torch.cuda.max_memory_allocated`` in MiB (baseline = allocated memory
    at creation).
    """

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.kind = "cuda_max_allocated" if self.device.type == "cuda" else "rss"
        self.resettable = True
        self.baseline_mb = self.current_mb()

    def current_mb(self) -> float:
        if self.kind == "cuda_max_allocated":
            return torch.cuda.memory_allocated(self.device) / MB
        return rss_mb()

    def reset(self) -> bool:
        if self.kind == "cuda_max_allocated":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return True
        self.resettable = _reset_rss_peak()
        return self.resettable

    def peak_mb(self) -> float:
        if self.kind == "cuda_max_allocated":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / MB
        return _rss_peak_mb()


# --------------------------------------------------------------------------- FLOPs

def to_meta(model: nn.Module) -> nn.Module:
    """Move ``model`` (in place) to the meta device: shapes kept, storage freed."""
    return model.to("meta")


#: torch's shape-level formula (the registered one is wrapped to take tensors)
_raw_conv_backward_flop = inspect.unwrap(_fc.conv_backward_flop)


def _conv_backward_flop_grouped(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation,
                                transposed, _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """torch's convolution-backward FLOPs with the weight-gradient term divided
    by ``groups``: grad_weight has ``C_out * C_in/groups * k^2`` entries, each a
    sum over ``N * H_out * W_out`` products."""
    args = (grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, _output_padding,
            _groups)
    grad_input = _raw_conv_backward_flop(*args, [output_mask[0], False], out_shape, **kwargs)
    grad_weight = _raw_conv_backward_flop(*args, [False, output_mask[1]], out_shape, **kwargs)
    return grad_input + grad_weight // max(1, int(_groups))


_GROUPED_OK: bool | None = None


def _torch_counts_grouped_backward_right() -> bool:
    """Whether torch's own formula already divides the grouped weight gradient
    by the groups (probe: a 1x1 conv, 4 -> 4 channels, 2 groups, 4x4 map:
    the weight gradient is 4 * 2 * 16 = 128 MACs = 256 FLOPs)."""
    global _GROUPED_OK
    if _GROUPED_OK is None:
        shape = [1, 4, 4, 4]
        got = _raw_conv_backward_flop(shape, shape, [4, 2, 1, 1], None, [1, 1], [0, 0], [1, 1], False, [0, 0], 2,
                                     [False, True], [None, [4, 2, 1, 1], None])
        _GROUPED_OK = got == 256
    return _GROUPED_OK


def flop_counter() -> FlopCounterMode:
    """A ``FlopCounterMode`` (no printing) with the grouped-conv backward fix where needed."""
    custom = {}
    if not _torch_counts_grouped_backward_right():
        custom[torch.ops.aten.convolution_backward] = _conv_backward_flop_grouped
    return FlopCounterMode(display=False, custom_mapping=custom)


def count_flops(model: nn.Module, args: tuple, kwargs: Mapping[str, Any] | None = None, *,
                backward: bool = False, loss_fn: Callable[[Any], torch.Tensor] | None = None) -> int:
    """FLOPs of one ``model(*args, **kwargs)`` (plus its backward when
    ``backward``), counted by ``FlopCounterMode`` with the explicit attention
    path. Works on any device; use the meta device to count without computing.
    """
    kwargs = dict(kwargs or {})
    if backward and loss_fn is None:
        raise ValueError("count_flops(backward=True) needs loss_fn")
    counter = flop_counter()
    with sdpa_enabled(False), counter:
        if backward:
            loss_fn(model(*args, **kwargs)).backward()
        else:
            with torch.no_grad():
                model(*args, **kwargs)
    if backward:
        model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())
