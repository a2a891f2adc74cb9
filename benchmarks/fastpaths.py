"""Before/after table of the fused-attention fast path.

"Before" is the explicit reference path ``softmax(q k^T * scale + mask) v``
(``restore_lib.archs._common.sdpa_enabled(False)``); "after" is
``torch.nn.functional.scaled_dot_product_attention``. For each attention
model (SwinIR windows, Stripformer strips, PromptIR-CSA cross-scale
attention) the same weights and input go through both paths:

* forward latency both ways, timed in alternation (A B A B ...) so a noisy
  machine slows both alike, and the speed-up = explicit / SDPA;
* forward+backward step time both ways (training);
* peak memory of one forward each way, each in a fresh process (the
  explicit path materialises the score matrices);
* the maximum absolute difference of the outputs (the equality check; it
  must stay within :data:`TOLERANCE`);
* how many GFLOPs went through the fused kernel (from ``FlopCounterMode``):
  proof that the fast path is actually taken.
"""
from __future__ import annotations

import sys
from typing import Any

import torch
import torch.nn.functional as F

from restore_lib.archs._common import sdpa_enabled

from .isolate import run_isolated
from .measure import MemoryProbe, time_interleaved
from .specs import Case, input_hw, make_inputs, output_tensors, training_loss
from .worker import BenchConfig, build

__all__ = ["FASTPATH_CASES", "TOLERANCE", "TOLERANCE_BF16", "measure_fastpath", "fastpath_memory", "fastpath_row",
           "max_abs_diff"]

#: attention models whose attention goes through ``_common.attention``
FASTPATH_CASES: tuple[Case, ...] = (
    Case("swinir", "lightweight_x4"),
    Case("swinir"),
    Case("stripformer"),
    Case("promptir_csa"),
)

#: max |explicit - SDPA| allowed, relative to max(1, max |output|): float32, bf16 autocast
TOLERANCE = 1e-4
TOLERANCE_BF16 = 5e-2


def max_abs_diff(a: Any, b: Any) -> float:
    """Largest absolute difference between two forward outputs (tensors or tuples)."""
    ta, tb = output_tensors(a), output_tensors(b)
    if len(ta) != len(tb):
        raise ValueError(f"outputs differ in structure: {len(ta)} vs {len(tb)} tensors")
    diffs = []
    for x, y in zip(ta, tb):
        if x.shape != y.shape:
            raise ValueError(f"output shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
        diffs.append((x.float() - y.float()).abs().max().item() if x.numel() else 0.0)
    return max(diffs)


def _sdpa_calls(model, args, kwargs) -> int:
    """How many times one forward calls ``F.scaled_dot_product_attention``
    with the fast path on (proof that it is taken), counted by a spy."""
    calls = 0
    fused = F.scaled_dot_product_attention

    def spy(*a, **kw):
        nonlocal calls
        calls += 1
        return fused(*a, **kw)

    F.scaled_dot_product_attention = spy
    try:
        with torch.no_grad(), sdpa_enabled(True):
            model(*args, **kwargs)
    finally:
        F.scaled_dot_product_attention = fused
    return calls


def measure_fastpath(case: Case, cfg: BenchConfig, batch: int = 1, bf16: bool = False) -> dict[str, Any]:
    """One row of the fast-path table (runs in an isolated child); ``bf16``
    runs both paths under bf16 autocast (on CUDA, where the flash kernel needs it)."""
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = torch.device(cfg.device)
    preset = cfg.preset_for(case)
    model = build(case, preset, cfg.seed).to(device).eval()
    hw = input_hw(case, model, image_size=cfg.image_size, sr_size=cfg.sr_size)
    args, kwargs = make_inputs(case, model, batch, hw, device=device, seed=cfg.seed)
    row: dict[str, Any] = {"key": case.key, "model": case.model, "preset": preset, "batch": batch,
                           "input_hw": hw, "scale": int(getattr(model, "scale", 1)),
                           "precision": "bf16 autocast" if bf16 else "float32"}

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def fwd(enabled: bool):
        def run():
            with torch.inference_mode(), sdpa_enabled(enabled), autocast():
                return model(*args, **kwargs)
        return run

    ref, fast = fwd(False)(), fwd(True)()
    row["max_abs_diff"] = max_abs_diff(ref, fast)
    row["max_abs_output"] = max(t.abs().max().item() for t in output_tensors(ref))
    tol = TOLERANCE_BF16 if bf16 else TOLERANCE
    row["equal_within_tol"] = row["max_abs_diff"] <= tol * max(1.0, row["max_abs_output"])
    del ref, fast
    row["sdpa_calls"] = _sdpa_calls(model, args, kwargs)
    opts = dict(warmup=cfg.warmup, repeats=cfg.repeats, min_repeats=cfg.min_repeats, budget_s=cfg.budget_s,
                device=device)
    times = time_interleaved({"explicit": fwd(False), "sdpa": fwd(True)}, **opts)
    for name, t in times.items():
        row[f"{name}_fwd_median_ms"] = 1e3 * t.median_s
        row[f"{name}_fwd_min_ms"] = 1e3 * t.min_s
        row[f"{name}_fwd_max_ms"] = 1e3 * t.max_s
        row[f"{name}_fwd_n"] = t.n
    row["fwd_speedup"] = times["explicit"].median_s / times["sdpa"].median_s
    if cfg.train:
        model.train()
        targs, tkwargs = make_inputs(case, model, batch, hw, device=device, train=True, seed=cfg.seed)

        def step(enabled: bool):
            def run():
                model.zero_grad(set_to_none=True)
                with sdpa_enabled(enabled), autocast():
                    loss = training_loss(model(*targs, **tkwargs))
                loss.backward()
            return run

        times = time_interleaved({"explicit": step(False), "sdpa": step(True)}, **opts)
        for name, t in times.items():
            row[f"{name}_train_median_ms"] = 1e3 * t.median_s
            row[f"{name}_train_n"] = t.n
        row["train_speedup"] = times["explicit"].median_s / times["sdpa"].median_s
        model.zero_grad(set_to_none=True)
    return row


def fastpath_memory(case: Case, cfg: BenchConfig, sdpa: bool, batch: int = 1, bf16: bool = False) -> dict:
    """Peak memory of one forward through one path, in a fresh process (so
    the other path's freed memory cannot hide or inflate it)."""
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = torch.device(cfg.device)
    probe = MemoryProbe(device)
    model = build(case, cfg.preset_for(case), cfg.seed).to(device).eval()
    hw = input_hw(case, model, image_size=cfg.image_size, sr_size=cfg.sr_size)
    args, kwargs = make_inputs(case, model, batch, hw, device=device, seed=cfg.seed)
    probe.reset()
    with torch.inference_mode(), sdpa_enabled(sdpa), torch.autocast(device.type, dtype=torch.bfloat16,
                                                                     enabled=bf16):
        model(*args, **kwargs)
    peak = probe.peak_mb()
    return {"peak_mb": peak, "delta_mb": peak - probe.baseline_mb, "memory_kind": probe.kind}


def fastpath_row(case: Case, cfg: BenchConfig, *, bf16: bool = False, timeout_s: float | None = None,
                 start_method: str | None = None) -> dict[str, Any]:
    """The full fast-path row: timing and equality in one process, the two
    memory peaks in one process each. Failures are recorded in ``errors``."""
    res = run_isolated(measure_fastpath, {"case": case, "cfg": cfg, "bf16": bf16}, timeout_s=timeout_s,
                       start_method=start_method)
    if not res.ok:
        print(f"benchmarks: fast path {case.key} failed:\n{res.error}", file=sys.stderr)
        return {"key": case.key, "model": case.model, "preset": cfg.preset_for(case),
                "precision": "bf16 autocast" if bf16 else "float32", "errors": res.error.strip().splitlines()[-1]}
    row = {**res.value, "errors": "" if res.value["equal_within_tol"] else "outputs differ beyond tolerance"}
    for name, sdpa in (("explicit", False), ("sdpa", True)):
        mem = run_isolated(fastpath_memory, {"case": case, "cfg": cfg, "sdpa": sdpa, "bf16": bf16},
                           timeout_s=timeout_s, start_method=start_method)
        if mem.ok:
            row[f"{name}_fwd_peak_mb"] = mem.value["peak_mb"]
            row[f"{name}_fwd_delta_mb"] = mem.value["delta_mb"]
            row["memory_kind"] = mem.value["memory_kind"]
        else:
            row["errors"] = "; ".join(filter(None, [row["errors"], f"{name} memory: "
                                                    f"{mem.error.strip().splitlines()[-1]}"]))
    return row
