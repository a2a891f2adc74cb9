#!/usr/bin/env python
"""Build the embedded paired dataset (offline, deterministic, seconds).

    python data_scripts/make_embedded.py [--root DIR] [--seed 0] [--force]
                                         [--tasks rain_light snow ...] [--workers N]

Writes ``<root>/<task>/<split>/{degraded,clean}/*.png`` and
``<root>/manifest.json`` from photos shipped inside installed wheels
(scikit-image, matplotlib, optionally sporco); see
``restore_lib/data/embedded.py`` for sources, licences and the split table.
Does nothing when the dataset at ``root`` already matches (unless --force).
Prints a summary: sources, counts per task and split, the dataset hash.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

try:
    from restore_lib.data import embedded
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from restore_lib.data import embedded


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=None,
                    help="output folder (default: $RESTORE_DATA/embedded or <repo>/data/embedded)")
    ap.add_argument("--seed", type=int, default=0, help="global seed (default 0)")
    ap.add_argument("--force", action="store_true", help="rebuild even if an up-to-date dataset is there")
    ap.add_argument("--tasks", nargs="+", default=None, metavar="TASK",
                    help=f"subset of tasks (default: all): {' '.join(embedded.TASKS)}")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    args = ap.parse_args(argv)
    if args.tasks:
        unknown = [t for t in args.tasks if t not in embedded.TASKS]
        if unknown:
            ap.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(embedded.TASKS)}")

    root = (args.root or embedded.default_root()).resolve()
    t0 = time.perf_counter()
    c0 = _cpu()
    before = (root / "manifest.json").stat().st_mtime_ns if (root / "manifest.json").is_file() else None
    embedded.build(root, seed=args.seed, tasks=args.tasks, force=args.force, workers=args.workers)
    wall = time.perf_counter() - t0
    m = embedded.read_manifest(root)
    after = (root / "manifest.json").stat().st_mtime_ns
    state = "already up to date, nothing written" if before == after else f"built in {wall:.1f} s"
    print(f"embedded dataset at {root}: {state}")
    print(f"  seed {m['seed']}; sporco images used: {'yes' if m['sporco_used'] else 'no (fallback split)'}")
    for split in embedded.SPLITS:
        print(f"  {split:5s}: {', '.join(m['splits'][split])}")
    counts: dict[tuple[str, str], int] = {}
    for rel in m["files"]:
        task, split, side, _ = rel.split("/")
        if side == "degraded":
            counts[(task, split)] = counts.get((task, split), 0) + 1
    print(f"  {'task':12s} " + " ".join(f"{s:>5s}" for s in embedded.SPLITS) + "  task hash")
    for task in m["tasks"]:
        print(f"  {task:12s} " + " ".join(f"{counts.get((task, s), 0):5d}" for s in embedded.SPLITS)
              + f"  {m['task_hashes'][task][:16]}")
    print(f"  {len(m['files'])} files; dataset hash {m['dataset_hash']}")
    if before != after:
        print(f"  (CPU time {_cpu() - c0:.1f} s, worker processes included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
