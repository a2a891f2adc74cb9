"""``python -m benchmarks.run``: benchmark every registered model and write
the tables to ``results/benchmarks/`` (what ``make bench`` runs).

    python -m benchmarks.run [--device cpu|cuda|auto] [--models a b ...] [--quick] [--out DIR]

Per case (model + preset; see :mod:`benchmarks.specs`), each in its own
child process: parameters, MACs (``FlopCounterMode``, meta device) next to the
published / reference figures, and for batch 1 and a training batch size the
forward latency, forward+backward throughput and peak memory; on CUDA also the
bf16 / channels_last / torch.compile variants and the MFU. Then the SDPA
fast-path table and, unless a model subset is chosen, the tiled large-image
runs (:mod:`benchmarks.tiled`). ``--quick`` swaps in the small presets and
tiny inputs to check that everything works in a minute or two.

Outputs (``<stem>`` = device, plus ``_quick``): ``models_<stem>.csv``,
``compute_<stem>.csv``, ``fastpaths_<stem>.csv``, ``benchmarks_<stem>.md`` and
``provenance_<stem>.json``, all written atomically.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from restore_lib.utils import repo_root

from . import provenance as prov
from .fastpaths import FASTPATH_CASES, fastpath_row
from .hardware import format_mfu, lookup_peak, mfu
from .isolate import run_isolated
from .specs import CASES, Case, quick_preset, select_cases
from .tables import fmt, markdown_table, write_csv, write_json, write_markdown
from .worker import VARIANTS, BenchConfig, count_case, measure_case

__all__ = ["main", "parse_args", "make_config", "variant_speedups", "model_rows", "compute_rows", "render_markdown"]


# --------------------------------------------------------------------------- configuration

def variant_speedups(row: dict, variants) -> dict:
    """``train_<v>_speedup``: a variant's fwd+bwd throughput over the float32 eager one, in the same run
    (formatted as ``1.84x``; absent when either was not measured)."""
    base = row.get("train_img_s")
    return {f"train_{v}_speedup": f"{row[f'train_{v}_img_s'] / base:.2f}x" for v in variants
            if base and row.get(f"train_{v}_img_s")}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where to measure (auto: cuda if available)")
    p.add_argument("--models", nargs="+", metavar="NAME",
                   help="model names or model:preset keys (default: every case in benchmarks/specs.py)")
    p.add_argument("--quick", action="store_true", help="small presets, tiny inputs, few repeats (validation)")
    p.add_argument("--out", default=None, help="output folder (default: <repo>/results/benchmarks)")
    p.add_argument("--batch-train", type=int, default=None,
                   help="training batch size (default: 16 on CUDA, 4 on CPU, 2 with --quick)")
    p.add_argument("--image-size", type=int, default=None, help="restoration input side (default 256, quick 32)")
    p.add_argument("--sr-size", type=int, default=None, help="SR low-resolution input side (default 64, quick 16)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls before timing")
    p.add_argument("--repeats", type=int, default=None, help="timed calls (at most)")
    p.add_argument("--min-repeats", type=int, default=None, help="timed calls (at least)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds per measurement after which timing stops (once --min-repeats are done)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's choice; 1 with --quick, which keeps tiny timings stable)")
    p.add_argument("--variants", nargs="*", choices=VARIANTS, default=None,
                   help="extra variants (default: all on CUDA, none on CPU)")
    p.add_argument("--compile-batches", choices=("train", "all"), default="train",
                   help="batch sizes for the compile variants: the training batch only (default) or all")
    p.add_argument("--tag", default="", help="suffix of the output file names (keeps several partial runs apart)")
    p.add_argument("--peak-tflops-bf16", type=float, default=None, help="GPU peak for MFU if not in the table")
    p.add_argument("--peak-tflops-tf32", type=float, default=None, help="GPU fp32/TF32 peak for MFU")
    p.add_argument("--no-train", action="store_true", help="skip the forward+backward measurements")
    p.add_argument("--no-fastpaths", action="store_true", help="skip the SDPA before/after table")
    tiled = p.add_mutually_exclusive_group()
    tiled.add_argument("--tiled", dest="tiled", action="store_true", default=None,
                       help="also run benchmarks.tiled (default: yes unless --models is given)")
    tiled.add_argument("--no-tiled", dest="tiled", action="store_false")
    p.add_argument("--case-timeout", type=float, default=None, help="seconds per case before it is killed")
    p.add_argument("--strict", action="store_true", help="exit 1 if any measurement failed")
    return p.parse_args(argv)


def _resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks.run: --device cuda requested but CUDA is not available")
    return name


def make_config(args: argparse.Namespace) -> BenchConfig:
    """Defaults per device and mode, overridden by the CLI."""
    device = _resolve_device(args.device)
    cuda = device == "cuda"
    if args.quick:
        base = dict(image_size=32, sr_size=16, train_batch=2, warmup=1, repeats=3, min_repeats=3, budget=None)
    elif cuda:
        base = dict(image_size=256, sr_size=64, train_batch=16, warmup=5, repeats=30, min_repeats=10, budget=10.0)
    else:
        base = dict(image_size=256, sr_size=64, train_batch=4, warmup=1, repeats=5, min_repeats=3, budget=30.0)

    def pick(name, key):
        v = getattr(args, name)
        return base[key] if v is None else v

    variants = tuple(args.variants) if args.variants is not None else (VARIANTS if cuda else ())
    train_batch = pick("batch_train", "train_batch")
    compile_at = None if args.compile_batches == "all" else (train_batch,)
    return BenchConfig(device=device, quick=args.quick, image_size=pick("image_size", "image_size"),
                       sr_size=pick("sr_size", "sr_size"), batches=tuple(dict.fromkeys((1, train_batch))),
                       warmup=pick("warmup", "warmup"), repeats=pick("repeats", "repeats"),
                       min_repeats=pick("min_repeats", "min_repeats"), budget_s=pick("budget", "budget"),
                       threads=args.threads if args.threads is not None else (1 if args.quick else None),
                       variants=variants, compile_at=compile_at, train=not args.no_train)


def _default_timeout(cfg: BenchConfig) -> float:
    if cfg.quick:
        return 600.0
    return 1800.0 if cfg.device == "cuda" else 4 * 3600.0


# --------------------------------------------------------------------------- rows

def _input_label(case: Case, hw, scale: int) -> str:
    h, w = hw
    base = f"{case.channels}x{h}x{w}"
    if scale > 1:
        base = f"LR {base} (x{scale})"
    extra = {"diffir_s1": " + GT", "ptgrm": " + degraded + prior", "diffir_s2": ""}.get(case.kind, "")
    return base + extra


def _peaks(info: dict, args: argparse.Namespace) -> dict[str, tuple[float | None, str]]:
    """Peak TFLOP/s for the fp32 columns and the bf16 columns, with their source."""
    if info.get("device") != "cuda":
        return {"fp32": (None, "CPU: no peak table"), "bf16": (None, "CPU: no peak table")}
    name = info.get("device_name", "")
    bf16 = (args.peak_tflops_bf16, "--peak-tflops-bf16") if args.peak_tflops_bf16 else lookup_peak(name, "bf16")
    fp32_kind = "tf32" if info.get("cudnn_allow_tf32") else "fp32"
    fp32 = (args.peak_tflops_tf32, "--peak-tflops-tf32") if args.peak_tflops_tf32 else lookup_peak(name, fp32_kind)
    return {"fp32": fp32, "bf16": bf16}


def model_rows(case: Case, count: dict | None, measured: Mapping[int, dict | str], *, count_error: str = "",
               info: dict, peaks: dict, variants: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of the models table for one case, one per batch size.

    ``measured`` maps each batch size to :func:`~benchmarks.worker.measure_case`'s
    result for that batch alone, or to the error text of its process (a
    partial result carries that text under ``"process_error"``).
    """
    results = [m for m in measured.values() if isinstance(m, dict)]
    preset = (count or {}).get("preset") or (results[0]["preset"] if results else case.preset)
    hw = (count or {}).get("input_hw") or (results[0]["input_hw"] if results else None)
    base = {
        "model": case.model, "preset": preset, "key": case.key,
        "input": _input_label(case, hw, (count or {}).get("scale", 1)) if hw else "-",
        "params": (count or {}).get("params"),
        "gmacs": count["fwd_flops"] / 2e9 if count else None,
        "train_gflop_per_img": count["train_flops"] / 1e9 if count else None,
        "note": case.note,
    }
    train_flops = (count or {}).get("train_flops")
    rows = []
    for batch, res in measured.items():
        errors = [f"count: {count_error}"] if count_error else []
        row = {**base, "batch": batch}
        if isinstance(res, str):
            errors.append(f"measure: {res}")
        else:
            if res.get("process_error"):
                errors.append(f"measure: {res['process_error']} (finished phases kept)")
            row.update({"memory_kind": res["memory_kind"], "baseline_mb": res["baseline_mb"],
                        "memory_resettable": res["memory_resettable"]})
            row.update({k: v for k, v in res["rows"][0].items() if k not in ("key", "batch")})
        for suffix, kind in (("", "fp32"), *((f"_{v}", "bf16" if v in ("bf16", "all") else "fp32")
                                              for v in variants)):
            peak = peaks[kind][0]
            value = mfu(train_flops, row.get(f"train{suffix}_img_s"), peak)
            row[f"mfu{suffix}"] = value
            row[f"mfu{suffix}_text"] = format_mfu(value, peak) if info.get("device") == "cuda" else "n/a (CPU)"
        errors += [f"{k[:-6]}: {v}" for k, v in row.items() if k.endswith("_error") and v]
        row["errors"] = "; ".join(errors)
        row.update({k: info.get(k) for k in prov.CSV_FIELDS})
        rows.append(row)
    return rows


def compute_rows(case: Case, count: dict | None, *, quick: bool, info: dict) -> list[dict[str, Any]]:
    """Rows of the compute table: our counts next to each reference figure."""
    prov_fields = {k: info.get(k) for k in prov.CSV_FIELDS}
    if count is None:
        return [{"model": case.model, "preset": case.preset, "key": case.key, "errors": "not counted",
                 **prov_fields}]
    params = count["params"]
    base = {
        "model": case.model, "preset": count["preset"], "key": case.key,
        "params": params,
        "reference_params": None if quick else case.reference_params,
        "params_match": (params == case.reference_params) if (case.reference_params and not quick) else None,
        "published_params": "" if quick else case.published_params,
        "input": _input_label(case, count["input_hw"], count["scale"]),
        "gmacs": count["fwd_flops"] / 2e9,
        "train_gflop_per_img": count["train_flops"] / 1e9,
        "train_over_fwd": count["train_flops"] / count["fwd_flops"] if count["fwd_flops"] else None,
        "count_note": count.get("count_note", ""),
        **prov_fields,
    }
    refs = () if quick else case.references
    if not refs:
        why = "quick mode (small preset): not comparable" if quick else "no published or reference figure"
        return [{**base, "ref_source": why}]
    rows = []
    for ref in refs:
        ours = count["fwd_flops_at"].get(tuple(ref.input_hw))
        rows.append({**base, "ref_input": f"{ref.input_hw[0]}x{ref.input_hw[1]}",
                     "ours_gmacs_at_ref_input": None if ours is None else ours / 2e9,
                     "ref_gmacs": ref.gmacs, "ref_counter": ref.counter, "ref_source": ref.source,
                     "ref_citation": ref.citation, "ref_note": ref.note,
                     "ours_over_ref": None if ours is None else ours / 2e9 / ref.gmacs})
    return rows


# --------------------------------------------------------------------------- markdown

def _range(row: dict, name: str) -> str:
    if row.get(f"{name}_error"):
        return "failed"
    med = row.get(f"{name}_median_ms")
    if med is None:
        return "-"
    return f"{fmt(med)} [{fmt(row.get(f'{name}_min_ms'))}-{fmt(row.get(f'{name}_max_ms'))}]"


def _mem(row: dict, name: str) -> str:
    peak = row.get(f"{name}_peak_mb")
    if peak is None:
        return "-"
    return f"{fmt(peak)} (+{fmt(row.get(f'{name}_delta_mb'))})"


def render_markdown(info: dict, cfg: BenchConfig, rows: list[dict], crows: list[dict], frows: list[dict],
                    peaks: dict) -> str:
    mode = "quick (small presets, tiny inputs: validates the code, not the models)" if cfg.quick else "full"
    dev = info["device"]
    lines = [f"# Benchmarks: {dev}, {mode}", "", prov.summary_line(info), "",
             f"*Settings:* restoration input {cfg.image_size}x{cfg.image_size}, SR low-resolution input "
             f"{cfg.sr_size}x{cfg.sr_size}, batch sizes {', '.join(map(str, cfg.batches))} (the last one is the "
             f"training batch), {cfg.warmup} warm-up call(s), up to {cfg.repeats} timed calls (at least "
             f"{cfg.min_repeats}{', stopping after ' + fmt(cfg.budget_s) + ' s' if cfg.budget_s else ''}); "
             f"random-init weights, inputs uniform in [0, 1]. Each model ran in its own process. "
             f"Latencies are medians with [min-max]; a shared machine makes single runs noisy, so compare "
             f"medians only. See `benchmarks/README.md` for every column.", ""]
    mem = "peak RSS MiB (+ over the idle process)" if dev == "cpu" else "max allocated MiB (+ over start)"
    lines += ["## Speed and memory (float32, eager)", "",
              markdown_table([{**r, "fwd": _range(r, "fwd"), "train": _range(r, "train"),
                               "fwd_mem": _mem(r, "fwd"), "train_mem": _mem(r, "train")} for r in rows],
                             [("model", "model"), ("preset", "preset"), ("input", "input"), ("batch", "batch"),
                              ("fwd", "forward ms, median [min-max]"), ("fwd_img_s", "forward img/s"),
                              ("train", "fwd+bwd step ms"), ("train_img_s", "fwd+bwd img/s"),
                              ("fwd_mem", f"forward {mem}"), ("train_mem", f"fwd+bwd {mem}"),
                              ("errors", "problems")]), ""]
    lines += ["## Parameters and compute", "",
              "MACs = `FlopCounterMode` FLOPs / 2 at batch 1 (conv, linear, matmul/bmm incl. attention; no "
              "elementwise ops), counted on the meta device. *ours @ref input* repeats our count at the input "
              "size of the reference figure. Sources: **published** = paper/README, **reference measurement** "
              "= the official code counted in `architectures.md` (torch 2.13). fwd+bwd GFLOP/img is counted "
              "(not 3 x forward), with the grouped-convolution backward fix described in "
              "`benchmarks/measure.py`.", "",
              markdown_table(crows, [("model", "model"), ("preset", "preset"), ("params", "params"),
                                     ("reference_params", "params (reference)"),
                                     ("published_params", "params (published)"), ("input", "bench input"),
                                     ("gmacs", "GMACs (ours)"), ("train_gflop_per_img", "fwd+bwd GFLOP/img"),
                                     ("ref_input", "ref input"), ("ours_gmacs_at_ref_input", "GMACs ours @ref input"),
                                     ("ref_gmacs", "GMACs ref"), ("ref_counter", "counter"),
                                     ("ref_source", "source"), ("ref_citation", "citation"),
                                     ("ref_note", "note")]), ""]
    if cfg.variants:
        cols = [("model", "model"), ("preset", "preset"), ("batch", "batch"), ("fwd_median_ms", "fp32 fwd ms")]
        cols += [(f"fwd_{v}_median_ms", f"{v} fwd ms") for v in cfg.variants]
        cols += [("train_img_s", "fp32 fwd+bwd img/s")]
        cols += [(f"train_{v}_img_s", f"{v} fwd+bwd img/s") for v in cfg.variants]
        cols += [(f"train_{v}_speedup", f"{v} / fp32 eager (fwd+bwd)") for v in cfg.variants]
        cols += [("mfu_text", "MFU fp32")] + [(f"mfu_{v}_text", f"MFU {v}") for v in cfg.variants]
        cols += [(f"train_{v}_first_call_s", f"{v}: compile s (first fwd+bwd)") for v in cfg.variants
                 if v in ("compile", "all")]
        cols += [("errors", "problems")]
        fp_peak, bf_peak = peaks["fp32"], peaks["bf16"]
        rows = [{**r, **variant_speedups(r, cfg.variants)} for r in rows]
        compiled = "" if cfg.compile_at is None else (
            f" The compile variants ran at batch {', '.join(map(str, cfg.compile_at))} only (compiling is slow).")
        lines += ["## Variants: bf16 autocast, channels_last, torch.compile", "",
                  "Each variant is measured alone against the float32 eager baseline; *all* = bf16 + "
                  f"channels_last + compile.{compiled} MFU = counted fwd+bwd FLOPs per image x img/s / peak; peak for "
                  f"float32 columns: {fmt(fp_peak[0])} TFLOP/s ({fp_peak[1]}); for bf16 columns: "
                  f"{fmt(bf_peak[0])} TFLOP/s ({bf_peak[1]}).", "",
                  markdown_table(rows, cols), ""]
    if frows:
        lines += ["## Fast path: fused SDPA vs explicit attention", "",
                  "Same weights and input through both paths of `restore_lib.archs._common.attention`; timed in "
                  "alternation. speed-up = explicit / SDPA (median). *SDPA calls* = calls of the fused "
                  "function in one forward (proof the fast path is taken). *equal* = max |difference| within tolerance.", "",
                  markdown_table([{**r, "input": _fp_input(r),
                                   "exp": _range(r, "explicit_fwd"), "sdpa": _range(r, "sdpa_fwd"),
                                   "exp_mem": _mem(r, "explicit_fwd"), "sdpa_mem": _mem(r, "sdpa_fwd")}
                                  for r in frows],
                                 [("model", "model"), ("preset", "preset"), ("precision", "precision"),
                                  ("input", "input"), ("exp", "explicit fwd ms"), ("sdpa", "SDPA fwd ms"),
                                  ("fwd_speedup", "fwd speed-up"), ("explicit_train_median_ms", "explicit step ms"),
                                  ("sdpa_train_median_ms", "SDPA step ms"), ("train_speedup", "step speed-up"),
                                  ("exp_mem", f"explicit fwd {mem}"), ("sdpa_mem", f"SDPA fwd {mem}"),
                                  ("max_abs_diff", "max abs diff"), ("equal_within_tol", "equal"),
                                  ("sdpa_calls", "SDPA calls"), ("errors", "problems")]), ""]
    return "\n".join(lines)


def _fp_input(r: dict) -> str:
    hw = r.get("input_hw")
    if not hw:
        return "-"
    s = f"{hw[0]}x{hw[1]}"
    return f"LR {s} (x{r['scale']})" if r.get("scale", 1) > 1 else s


# --------------------------------------------------------------------------- main

def _log(msg: str) -> None:
    print(f"[benchmarks] {msg}", file=sys.stderr, flush=True)


def _fastpath_cases(names: Sequence[str] | None, cfg: BenchConfig) -> list[Case]:
    """The fast-path cases: all, or those matching ``--models`` (a name selects
    every preset of that model, ``model:preset`` only that one)."""
    chosen = [c for c in FASTPATH_CASES if not names or c.model in names or c.key in names]
    attention_models = {c.model for c in FASTPATH_CASES}
    for name in names or ():
        model, _, preset = name.partition(":")
        if preset and model in attention_models and name not in {c.key for c in chosen}:
            chosen.append(Case(model, preset))
    seen, out = set(), []
    for c in chosen:
        key = (c.model, quick_preset(c) if cfg.quick else c.preset)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _dedupe_quick(cases: list[Case]) -> list[Case]:
    """Quick mode maps several presets to one small preset: keep the first case of each."""
    seen, out = set(), []
    for c in cases:
        if (c.model, quick_preset(c)) not in seen:
            seen.add((c.model, quick_preset(c)))
            out.append(c)
    return out


def _measure_one(case: Case, cfg: BenchConfig, info: dict, peaks: dict, *, timeout: float,
                 start: str | None) -> tuple[list[dict], list[dict]]:
    """Count and measure one case (one process for the count, one per batch size)."""
    cres = run_isolated(count_case, {"case": case, "cfg": cfg}, timeout_s=timeout, start_method=start)
    if not cres.ok:
        _log(f"{case.key}: count failed:\n{cres.error}")
    measured: dict[int, dict | str] = {}
    for batch in cfg.batches:  # one process per batch size: an OOM kill loses only that row
        mres = run_isolated(measure_case, {"case": case, "cfg": dataclasses.replace(cfg, batches=(batch,))},
                            timeout_s=timeout, start_method=start, partial=True)
        if mres.ok:
            measured[batch] = mres.value
        else:
            error = mres.error.strip().splitlines()[-1]
            measured[batch] = {**mres.value, "process_error": error} if mres.value else error
            _log(f"{case.key} batch {batch}: measure failed:\n{mres.error}")
    count = cres.value if cres.ok else None
    rows = model_rows(case, count, measured, count_error="" if cres.ok else cres.error.strip().splitlines()[-1],
                      info=info, peaks=peaks, variants=cfg.variants)
    return rows, compute_rows(case, count, quick=cfg.quick, info=info)


def _write_outputs(out_dir: Path, stem: str, info: dict, cfg: BenchConfig, rows: list[dict], crows: list[dict],
                   frows: list[dict], peaks: dict) -> None:
    """All tables, atomically (rewritten after every case, so an interrupted run keeps what it measured)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / f"models_{stem}.csv", [_csv_row(r) for r in rows])
    write_csv(out_dir / f"compute_{stem}.csv", crows)
    if frows:
        write_csv(out_dir / f"fastpaths_{stem}.csv", [_csv_row(r) for r in frows])
    write_markdown(out_dir / f"benchmarks_{stem}.md", render_markdown(info, cfg, rows, crows, frows, peaks))
    write_json(out_dir / f"provenance_{stem}.json", info)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    cfg = make_config(args)
    cases = select_cases(args.models, CASES)
    if cfg.quick:
        cases = _dedupe_quick(cases)
    out_dir = Path(args.out) if args.out else repo_root() / "results" / "benchmarks"
    stem = cfg.device + ("_quick" if cfg.quick else "") + (f"_{args.tag}" if args.tag else "")
    start = "spawn" if cfg.device == "cuda" else None
    timeout = args.case_timeout or _default_timeout(cfg)
    t_start = time.perf_counter()

    res = run_isolated(prov.collect_in_child, {"device": cfg.device, "command": prov.command_line(argv),
                                               "threads": cfg.threads}, timeout_s=600, start_method=start)
    if not res.ok:
        raise SystemExit(f"benchmarks.run: could not collect provenance on {cfg.device}:\n{res.error}")
    info = res.value
    info.update(mode="quick" if cfg.quick else "full", config=dataclasses.asdict(cfg), failures=[])
    peaks = _peaks(info, args)
    info["mfu_peaks_tflops"] = {k: {"value": v[0], "source": v[1]} for k, v in peaks.items()}
    _log(f"{len(cases)} case(s) on {info['device_name']} ({cfg.device}, {info['threads']} threads), "
         f"{info['mode']} mode; tables -> {out_dir}")

    rows, crows, frows, failures = [], [], [], info["failures"]
    for i, case in enumerate(cases, 1):
        t0 = time.perf_counter()
        case_rows, case_crows = _measure_one(case, cfg, info, peaks, timeout=timeout, start=start)
        rows += case_rows
        crows += case_crows
        failures += [f"{case.key} batch {r['batch']}: {r['errors']}" for r in case_rows if r["errors"]]
        info["wall_s"] = time.perf_counter() - t_start
        _write_outputs(out_dir, stem, info, cfg, rows, crows, frows, peaks)
        _log(f"[{i}/{len(cases)}] {case.key} done in {time.perf_counter() - t0:.0f} s")

    for case in [] if args.no_fastpaths else _fastpath_cases(args.models, cfg):
        for bf16 in ((False, True) if cfg.device == "cuda" else (False,)):
            t0 = time.perf_counter()
            row = fastpath_row(case, cfg, bf16=bf16, timeout_s=timeout, start_method=start)
            if row["errors"]:
                failures.append(f"fast path {case.key}: {row['errors']}")
            frows.append({**row, **{k: info.get(k) for k in prov.CSV_FIELDS}})
            info["wall_s"] = time.perf_counter() - t_start
            _write_outputs(out_dir, stem, info, cfg, rows, crows, frows, peaks)
            _log(f"fast path {case.key}{' bf16' if bf16 else ''} done in {time.perf_counter() - t0:.0f} s")

    _write_outputs(out_dir, stem, info, cfg, rows, crows, frows, peaks)
    _log(f"wrote {out_dir}/{{models,compute,fastpaths}}_{stem}.csv, benchmarks_{stem}.md, provenance_{stem}.json "
         f"in {info.get('wall_s', 0):.0f} s")

    run_tiled = args.tiled if args.tiled is not None else not args.models
    if run_tiled:
        from . import tiled
        tiled_argv = ["--out", str(out_dir)] + (["--quick"] if cfg.quick else [])
        if cfg.threads:
            tiled_argv += ["--threads", str(cfg.threads)]
        if args.strict:
            tiled_argv.append("--strict")
        code = tiled.main(tiled_argv)
        if code:
            failures.append(f"tiled runs exited with {code}")
    if failures:
        _log(f"{len(failures)} problem(s):\n  " + "\n  ".join(failures))
        return 1 if args.strict else 0
    return 0


def _csv_row(row: dict) -> dict:
    return {k: (f"{v[0]}x{v[1]}" if k == "input_hw" and v else v) for k, v in row.items()}


if __name__ == "__main__":
    sys.exit(main())
