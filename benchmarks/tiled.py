"""``python -m benchmarks.tiled``: restore large images tile by tile on the CPU
and show that peak memory is set by the tile, not by the image.

    python -m benchmarks.tiled [--quick] [--out DIR] [--threads N] [--models nafnet swinir]

Two models, random-init weights (speed and memory do not depend on the
weights; the seam check compares two ways of running the *same* network):

* NAFNet-width32 (``nafnet`` default) on 1024² and 4096² images, tile 256,
  overlap 32;
* SwinIR-lightweight x4 (``swinir:lightweight_x4``) on 256² and 1024²
  low-resolution inputs, i.e. **1024² and 4096² outputs**, tile 128 (LR
  pixels), overlap 16. A 4096² *LR* input (16384² output) would need about
  4.3 GB of float32 output buffers and 16x the compute; it is not run.

Each image size runs in a fresh process. We record the idle-process RSS, the
peak RSS while :func:`restore_lib.data.patches.tiled_inference` runs, and the
size of the buffers that must scale with the image: the input image, the
float32 output accumulator, the per-pixel weight sum and the stacked result
(4 bytes x (C·H·W + 2·C·H'·W' + H'·W')). If memory is bounded by the tile,
``peak - idle - buffers`` (the model plus one batch of tiles) is about the
same for both sizes, and the difference of the peaks is about the difference
of the buffers.

Seams: on the smaller image the tiled output is compared with one untiled
forward pass of the same network (PSNR, data range 1, float outputs, no
rounding; > 50 dB expected).

``--quick`` uses the small presets on small images to validate the script in
seconds. The full run: NAFNet does 25 + 361 tiles of 256² at about 16 GMACs
each, SwinIR 9 + 81 tiles of 128² LR; at 10.7 s and 13 s per tile (measured
on the shared 2-core machine at a load average of ~10) that is about 1.5-2 h.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from restore_lib.data.patches import grid_starts, tiled_inference
from restore_lib.metrics import psnr
from restore_lib.models import build_model
from restore_lib.utils import repo_root

from . import provenance as prov
from .isolate import run_isolated
from .measure import MB, MemoryProbe, rss_mb
from .tables import fmt, markdown_table, write_csv, write_json, write_markdown

__all__ = ["TiledSpec", "SPECS", "synthetic_image", "buffer_bytes", "count_tiles", "tiled_run", "main"]


@dataclasses.dataclass(frozen=True)
class TiledSpec:
    """One model of the large-image runs; sizes are *input* sides (LR for SR)."""

    name: str
    model: str
    preset: str
    tile: int
    overlap: int
    sizes: tuple[int, ...]
    batch_size: int = 4
    quick_preset: str = "small"
    quick_tile: int = 64
    quick_overlap: int = 16
    quick_sizes: tuple[int, ...] = (128, 256)


SPECS: tuple[TiledSpec, ...] = (
    TiledSpec("NAFNet-width32", "nafnet", "default", tile=256, overlap=32, sizes=(1024, 4096)),
    TiledSpec("SwinIR-lightweight x4", "swinir", "lightweight_x4", tile=128, overlap=16, sizes=(256, 1024),
              quick_tile=32, quick_overlap=16, quick_sizes=(64, 128)),
)


def synthetic_image(size: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """A deterministic ``(C, size, size)`` test image in [0, 1]: smooth
    gradients, oriented sinusoids of several frequencies, a checkerboard of
    sharp edges and a little noise; built one plane at a time so a 4096²
    image needs only a few 64 MB temporaries."""
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, size).view(size, 1)
    x = torch.linspace(0, 1, size).view(1, size)
    checker = ((torch.floor(x * 12) + torch.floor(y * 12)) % 2) * 0.15
    img = torch.empty(channels, size, size)
    for c in range(channels):
        f = 3.0 + 4.0 * c
        plane = 0.35 + 0.2 * (x + y) + 0.12 * torch.sin(2 * math.pi * (f * x + 0.7 * f * y))
        plane += 0.06 * torch.cos(2 * math.pi * 37.0 * x * (1 + y)) + checker
        plane += 0.02 * torch.randn(size, size, generator=g)
        img[c] = plane.clamp_(0, 1)
    return img


def buffer_bytes(channels: int, size: int, scale: int) -> int:
    """Bytes of the image-sized float32 buffers of one ``tiled_inference`` call:
    input, output accumulator, stacked result and weight sum."""
    out = size * scale
    return 4 * (channels * size * size + 2 * channels * out * out + out * out)


def count_tiles(size: int, tile: int, overlap: int, multiple: int) -> int:
    """Tiles ``tiled_inference`` cuts from a ``size x size`` image."""
    t = min(max(multiple, tile - tile % multiple), size)
    n = len(grid_starts(size, t, max(1, t - overlap)))
    return n * n


def _progress(label: str, t0: float):
    state = {"last": 0.0}

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - state["last"] > 30:
            state["last"] = now
            spent = now - t0
            eta = spent / done * (total - done) if done else float("nan")
            print(f"[tiled] {label}: {done}/{total} tiles, {spent:.0f} s, about {eta:.0f} s left",
                  file=sys.stderr, flush=True)
    return report


def tiled_run(spec: TiledSpec, preset: str, size: int, tile: int, overlap: int, *, check_seams: bool,
              threads: int | None = None, seed: int = 0) -> dict[str, Any]:
    """One image size, in a fresh process: time, peak RSS and (optionally) the seam PSNR."""
    if threads:
        torch.set_num_threads(int(threads))
    probe = MemoryProbe("cpu")
    torch.manual_seed(seed)
    model = build_model(spec.model, preset).eval()
    scale, multiple = int(getattr(model, "scale", 1)), int(getattr(model, "size_multiple", 1))
    img = synthetic_image(size, seed=seed)
    name = spec.name if preset == spec.preset else f"{spec.name} ({preset} preset)"
    row: dict[str, Any] = {"name": name, "model": spec.model, "preset": preset, "input_size": size,
                           "output_size": size * scale, "tile": tile, "overlap": overlap,
                           "batch_size": spec.batch_size, "tiles": count_tiles(size, tile, overlap, multiple),
                           "idle_mb": probe.baseline_mb, "before_run_mb": rss_mb()}
    probe.reset()
    t0 = time.perf_counter()
    label = f"{name} {size}² -> {size * scale}²"
    out = tiled_inference(model, img, tile=tile, overlap=overlap, scale=scale, multiple=multiple,
                          batch_size=spec.batch_size, progress=_progress(label, t0))
    row["seconds"] = time.perf_counter() - t0
    row["s_per_tile"] = row["seconds"] / row["tiles"]
    row["peak_mb"] = probe.peak_mb()
    row["rss_resettable"] = probe.resettable
    row["delta_mb"] = row["peak_mb"] - row["idle_mb"]
    row["buffers_mb"] = buffer_bytes(img.shape[0], size, scale) / MB
    row["delta_minus_buffers_mb"] = row["delta_mb"] - row["buffers_mb"]
    row["output_std"] = float(out.std())
    if check_seams:
        t1 = time.perf_counter()
        with torch.inference_mode():
            whole = model(img[None])[0].float()
        row["untiled_seconds"] = time.perf_counter() - t1
        row["psnr_tiled_vs_untiled"] = float(psnr(out, whole, data_range=1.0))
        row["max_abs_diff"] = float((out - whole).abs().max())
    return row


def _stable_columns() -> list[tuple[str, str]]:
    return [("name", "model"), ("preset", "preset"), ("input_size", "input side"), ("output_size", "output side"),
            ("tile", "tile (input px)"), ("overlap", "overlap"), ("batch_size", "tiles/call"), ("tiles", "tiles"),
            ("seconds", "time s"), ("s_per_tile", "s/tile"), ("peak_mb", "peak RSS MiB"),
            ("idle_mb", "idle RSS MiB"), ("delta_mb", "peak - idle MiB"), ("buffers_mb", "image buffers MiB"),
            ("delta_minus_buffers_mb", "peak - idle - buffers MiB"),
            ("psnr_tiled_vs_untiled", "PSNR tiled vs untiled dB"), ("max_abs_diff", "max abs diff"),
            ("output_std", "output std"), ("errors", "problems")]


def _summaries(rows: list[dict]) -> list[str]:
    out = []
    for name in dict.fromkeys(r["name"] for r in rows):
        ok = [r for r in rows if r["name"] == name and "peak_mb" in r]
        if len(ok) < 2:
            continue
        a, b = ok[0], ok[-1]
        out.append(f"- **{name}**: from {a['output_size']}² to {b['output_size']}² output the peak grew by "
                   f"{fmt(b['delta_mb'] - a['delta_mb'])} MiB while the image buffers grew by "
                   f"{fmt(b['buffers_mb'] - a['buffers_mb'])} MiB; the rest (model + one batch of tiles) was "
                   f"{fmt(a['delta_minus_buffers_mb'])} vs {fmt(b['delta_minus_buffers_mb'])} MiB.")
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tiled", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small presets on small images (validation)")
    p.add_argument("--out", default=None, help="output folder (default: <repo>/results/benchmarks)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's; 1 with --quick)")
    p.add_argument("--models", nargs="+", choices=[s.model for s in SPECS], default=None)
    p.add_argument("--timeout", type=float, default=None, help="seconds per image size (default 4 h; quick 10 min)")
    p.add_argument("--strict", action="store_true", help="exit 1 if a run failed or a PSNR is <= 50 dB")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    threads = args.threads if args.threads is not None else (1 if args.quick else None)
    out_dir = Path(args.out) if args.out else repo_root() / "results" / "benchmarks"
    stem = "cpu_quick" if args.quick else "cpu"
    timeout = args.timeout or (600.0 if args.quick else 4 * 3600.0)
    specs = [s for s in SPECS if not args.models or s.model in args.models]
    res = run_isolated(prov.collect_in_child, {"device": "cpu", "threads": threads,
                                               "command": prov.command_line(argv, "benchmarks.tiled")},
                       timeout_s=600)
    if not res.ok:
        raise SystemExit(f"benchmarks.tiled: could not collect provenance:\n{res.error}")
    info = res.value
    t_start = time.perf_counter()
    rows, problems = [], []
    for spec in specs:
        preset = spec.quick_preset if args.quick else spec.preset
        tile = spec.quick_tile if args.quick else spec.tile
        overlap = spec.quick_overlap if args.quick else spec.overlap
        sizes = spec.quick_sizes if args.quick else spec.sizes
        for i, size in enumerate(sizes):
            r = run_isolated(tiled_run, dict(spec=spec, preset=preset, size=size, tile=tile, overlap=overlap,
                                             check_seams=i == 0, threads=threads), timeout_s=timeout)
            if r.ok:
                row = {**r.value, "errors": ""}
                p = row.get("psnr_tiled_vs_untiled")
                if p is not None and not p > 50.0:
                    row["errors"] = f"PSNR {p:.1f} dB <= 50 dB"
            else:
                row = {"name": spec.name, "model": spec.model, "preset": preset, "input_size": size, "tile": tile,
                       "overlap": overlap, "errors": r.error.strip().splitlines()[-1]}
                print(f"[tiled] {spec.name} {size}: failed:\n{r.error}", file=sys.stderr)
            if row["errors"]:
                problems.append(f"{spec.name} {size}: {row['errors']}")
            row.update({k: info.get(k) for k in prov.CSV_FIELDS})
            rows.append(row)
            print(f"[tiled] {spec.name} {size}² done in {r.wall_s:.0f} s", file=sys.stderr, flush=True)
    info["wall_s"] = time.perf_counter() - t_start
    info["problems"] = problems
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / f"tiled_{stem}.csv", rows)
    md = [f"# Tiled inference on large images (CPU{', quick' if args.quick else ''})", "", prov.summary_line(info), "",
          "Random-init weights: speed and memory do not depend on them; the seam check compares two ways of "
          "running the same network (with trained weights the size of the seams can differ). Sizes are sides in "
          "pixels; "
          "for SwinIR x4 the input is the low-resolution image and the output is 4x larger. Peak RSS is "
          "measured in a fresh process per size; *image buffers* = input + float32 output accumulator + "
          "stacked result + weight sum, the only memory that should grow with the image. PSNR compares the "
          "tiled output with one untiled forward pass of the same network (float, data range 1).", "",
          markdown_table(rows, _stable_columns()), "", *_summaries(rows), ""]
    write_markdown(out_dir / f"tiled_{stem}.md", "\n".join(md))
    write_json(out_dir / f"tiled_{stem}.json", {**info, "rows": rows})
    print(f"[tiled] wrote {out_dir}/tiled_{stem}.{{csv,md,json}} in {info['wall_s']:.0f} s", file=sys.stderr)
    if problems:
        print("[tiled] problems:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1 if args.strict else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
