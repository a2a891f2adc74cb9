"""Measurements of one case, run inside an isolated child process
(:mod:`benchmarks.isolate`).

* :func:`count_case`: parameters and FLOPs (meta device, no arithmetic);
* :func:`measure_case`: for each batch size, forward latency (eval mode,
  ``torch.inference_mode``) and forward+backward throughput (train mode,
  surrogate loss, no optimizer step), each with its own peak memory; on CUDA
  also the bf16-autocast, channels_last and ``torch.compile`` variants.

Both return plain dicts (picklable) that :mod:`benchmarks.run` turns into
table rows. A phase that fails (e.g. CUDA out of memory, a compile error)
records ``"<phase>_error"`` in the row and the others still run; the
traceback goes to stderr.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
import traceback
from typing import Any, Callable

import torch
import torch.nn as nn

from restore_lib.models import build_model, count_parameters
from restore_lib.train import to_channels_last as model_to_channels_last

from .measure import MemoryProbe, count_flops, time_calls
from .specs import Case, input_hw, make_inputs, to_channels_last, training_loss

__all__ = ["BenchConfig", "VARIANTS", "build", "count_case", "measure_case", "variant_setup"]

#: GPU variants, each measured separately against the fp32 eager baseline;
#: "all" = bf16 autocast + channels_last + torch.compile together
VARIANTS = ("bf16", "channels_last", "compile", "all")


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """How to measure (chosen by :mod:`benchmarks.run` from the CLI)."""

    device: str = "cpu"
    quick: bool = False
    image_size: int = 256
    sr_size: int = 64
    batches: tuple[int, ...] = (1, 4)
    warmup: int = 1
    repeats: int = 5
    min_repeats: int = 3
    budget_s: float | None = 30.0
    threads: int | None = None
    variants: tuple[str, ...] = ()
    #: batch sizes at which the torch.compile variants run (None: all); compiling is slow
    compile_at: tuple[int, ...] | None = None
    train: bool = True
    seed: int = 0

    def preset_for(self, case: Case) -> str:
        from .specs import quick_preset
        return quick_preset(case) if self.quick else case.preset


def _setup(cfg: BenchConfig) -> None:
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))


def build(case: Case, preset: str, seed: int = 0) -> nn.Module:
    """``build_model(case.model, preset)`` with a fixed seed (random init weights)."""
    torch.manual_seed(seed)
    return build_model(case.model, preset)


# --------------------------------------------------------------------------- counting

def count_case(case: Case, cfg: BenchConfig) -> dict[str, Any]:
    """Parameters, forward MACs and forward+backward FLOPs per image at the
    benchmark input, and forward MACs at each reference figure's input size.

    Counting runs on the meta device; a model that cannot run there is
    counted on the CPU at the benchmark input only (and says so).
    """
    _setup(cfg)
    preset = cfg.preset_for(case)
    model = build(case, preset, cfg.seed)
    out: dict[str, Any] = {"params": count_parameters(model), "preset": preset,
                           "scale": int(getattr(model, "scale", 1))}
    hw = input_hw(case, model, image_size=cfg.image_size, sr_size=cfg.sr_size)
    out["input_hw"] = hw
    on_cpu = None
    try:
        model.to("meta")
        device = "meta"
        out["fwd_flops"] = _count(case, model, hw, device, train=False)
    except (RuntimeError, NotImplementedError) as e:
        on_cpu = f"meta-device count failed ({type(e).__name__}: {str(e)[:200]}); counted on CPU"
        print(f"benchmarks: {case.key}: {on_cpu}", file=sys.stderr)
        model = build(case, preset, cfg.seed)
        device = "cpu"
        out["fwd_flops"] = _count(case, model, hw, device, train=False)
    out["train_flops"] = _count(case, model, hw, device, train=True)
    at_ref = {}
    for ref in case.references if not cfg.quick else ():
        if device == "meta":
            at_ref[ref.input_hw] = _count(case, model, ref.input_hw, device, train=False)
        else:
            at_ref[ref.input_hw] = None
    out["fwd_flops_at"] = at_ref
    out["count_note"] = on_cpu or ""
    return out


def _count(case: Case, model: nn.Module, hw, device: str, *, train: bool) -> int:
    model.train(train)
    args, kwargs = make_inputs(case, model, 1, hw, device=device, train=train)
    return count_flops(model, args, kwargs, backward=train, loss_fn=training_loss)


# --------------------------------------------------------------------------- timing

def to_contiguous(model: nn.Module) -> nn.Module:
    """Undo :func:`restore_lib.train.to_channels_last`."""
    for t in [*model.parameters(), *model.buffers()]:
        t.data = t.data.contiguous()
    return model


def variant_setup(model: nn.Module, variant: str, device: str):
    """``(callable model, autocast context factory, channels_last?)`` of a variant.

    ``"fp32"`` is the eager float32 baseline. channels_last converts the model
    in place, as the Trainer does on CUDA (:func:`restore_lib.train.to_channels_last`: 4-D tensors only, so a
    model holding a 5-D parameter, like PromptIR, converts too); undo with :func:`to_contiguous`.
    """
    dev_type = torch.device(device).type
    bf16 = variant in ("bf16", "all")
    cl = variant in ("channels_last", "all")
    comp = variant in ("compile", "all")
    if variant not in ("fp32", *VARIANTS):
        raise ValueError(f"unknown variant {variant!r}; expected fp32 or one of {VARIANTS}")
    if cl:
        model_to_channels_last(model)
    if comp:
        # a fresh compile cache per variant: recompiles of earlier variants must not
        # exhaust dynamo's cache limit (it would silently fall back to eager)
        torch._dynamo.reset()
    fn = torch.compile(model) if comp else model
    autocast = (lambda: torch.autocast(dev_type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    return fn, autocast, cl


def _forward_fn(fn, args, kwargs, autocast) -> Callable[[], Any]:
    def run():
        with torch.inference_mode(), autocast():
            return fn(*args, **kwargs)
    return run


def _train_fn(model: nn.Module, fn, args, kwargs, autocast) -> Callable[[], Any]:
    def step():
        model.zero_grad(set_to_none=True)
        with autocast():
            loss = training_loss(fn(*args, **kwargs))
        loss.backward()
    return step


def _phase(row: dict, name: str, probe: MemoryProbe | None, fn: Callable[[], Any], cfg: BenchConfig,
           batch: int, first_call_key: str | None = None) -> None:
    """Time ``fn`` (and its peak memory) into ``row[name + "_*"]``; record failures."""
    try:
        if probe is not None:
            probe.reset()
        if first_call_key:  # e.g. torch.compile: the first call compiles
            t0 = time.perf_counter()
            fn()
            if torch.device(cfg.device).type == "cuda":
                torch.cuda.synchronize()
            row[first_call_key] = time.perf_counter() - t0
        t = time_calls(fn, warmup=cfg.warmup, repeats=cfg.repeats, min_repeats=cfg.min_repeats,
                       budget_s=cfg.budget_s, device=cfg.device)
        row[f"{name}_median_ms"] = 1e3 * t.median_s
        row[f"{name}_min_ms"] = 1e3 * t.min_s
        row[f"{name}_max_ms"] = 1e3 * t.max_s
        row[f"{name}_n"] = t.n
        row[f"{name}_img_s"] = batch / t.median_s
        if probe is not None:
            peak = probe.peak_mb()
            row[f"{name}_peak_mb"] = peak
            row[f"{name}_delta_mb"] = peak - probe.baseline_mb
    except torch.cuda.OutOfMemoryError:
        row[f"{name}_error"] = f"CUDA out of memory at batch {batch}"
        print(f"benchmarks: {row.get('key')}: {name}: CUDA out of memory at batch {batch}", file=sys.stderr)
        torch.cuda.empty_cache()
    except Exception as e:  # noqa: BLE001 - recorded in the table with its reason, traceback on stderr
        row[f"{name}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        print(f"benchmarks: {row.get('key')}: {name} failed:\n{traceback.format_exc()}", file=sys.stderr)


def measure_case(case: Case, cfg: BenchConfig, report: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Timing and memory rows (one per batch size) of one case. ``report``
    receives the result so far after every variant (see ``run_isolated(partial=True)``)."""
    _setup(cfg)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.cuda.init()
    probe = MemoryProbe(device)
    preset = cfg.preset_for(case)
    model = build(case, preset, cfg.seed).to(device)
    hw = input_hw(case, model, image_size=cfg.image_size, sr_size=cfg.sr_size)
    result = {"rows": [], "baseline_mb": probe.baseline_mb, "memory_kind": probe.kind,
              "memory_resettable": probe.resettable, "preset": preset, "input_hw": hw,
              "threads": torch.get_num_threads()}
    for batch in cfg.batches:
        row: dict[str, Any] = {"key": case.key, "batch": batch}
        result["rows"].append(row)
        skip = () if cfg.compile_at is None or batch in cfg.compile_at else ("compile", "all")
        for variant in ("fp32", *(v for v in cfg.variants if v not in skip)):
            # memory of the variants only on CUDA (on CPU the RSS peak would include the eager run)
            _measure_variant(row, variant, case, model, hw, batch, cfg,
                             probe if variant == "fp32" or device.type == "cuda" else None)
            result["memory_resettable"] = probe.resettable
            if report is not None:
                report(result)
    return result


def _measure_variant(row: dict, variant: str, case: Case, model: nn.Module, hw, batch: int, cfg: BenchConfig,
                     probe: MemoryProbe | None) -> None:
    suffix = "" if variant == "fp32" else f"_{variant}"
    try:
        fn, autocast, cl = variant_setup(model, variant, cfg.device)
    except Exception as e:  # noqa: BLE001 - e.g. torch.compile unavailable: recorded in the table
        row[f"fwd{suffix}_error"] = row[f"train{suffix}_error"] = f"{type(e).__name__}: {e}"
        return
    compiled = variant in ("compile", "all")
    try:
        model.eval()
        args, kwargs = make_inputs(case, model, batch, hw, device=cfg.device, train=False, seed=cfg.seed)
        if cl:
            args, kwargs = to_channels_last(args, kwargs)
        _phase(row, f"fwd{suffix}", probe, _forward_fn(fn, args, kwargs, autocast), cfg, batch,
               f"fwd{suffix}_first_call_s" if compiled else None)
        if cfg.train:
            model.train()
            args, kwargs = make_inputs(case, model, batch, hw, device=cfg.device, train=True, seed=cfg.seed)
            if cl:
                args, kwargs = to_channels_last(args, kwargs)
            _phase(row, f"train{suffix}", probe, _train_fn(model, fn, args, kwargs, autocast), cfg, batch,
                   f"train{suffix}_first_call_s" if compiled else None)
            model.zero_grad(set_to_none=True)
    finally:
        if cl:
            to_contiguous(model)
        model.eval()
