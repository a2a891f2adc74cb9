#!/usr/bin/env python
"""Prepare the HIDE test set for motion deblurring (Shen et al., ICCV 2019,
"Human-Aware Motion Deblurring").

Official source: https://github.com/joanshen0508/HA_deblur (the HIDE_dataset
download linked there; research use, no licence stated). It holds::

    HIDE_dataset/test/test-close-ups/*.png     blurred, close-up shots
    HIDE_dataset/test/test-long-shot/*.png     blurred, long shots
    HIDE_dataset/GT/*.png                      sharp frames, same file names (train and test)
    HIDE_dataset/train/, train.txt             (not used)

2,025 test pairs in all. Restormer's repack ``test/HIDE/{input,target}`` is
accepted too (it does not say which shot a pair comes from). No checksum is
published: pass ``--sha256`` or run once with ``--accept-hash``::

    python data_scripts/prepare_hide.py --archive HIDE_dataset.zip --accept-hash
    python data_scripts/prepare_hide.py --src path/to/HIDE_dataset --link symlink

Output (default ``<data>/HIDE``; the blurred frame is the degraded one)::

    <out>/test/{degraded,clean}/<name>.png
    <out>/MANIFEST.json      (written last; records how many pairs are close-ups and long shots)

Checked: every blurred frame has a sharp frame of the same name and size, the
count 2,025 (``--allow-partial`` accepts others), and that no name is both a
close-up and a long shot (an error naming both files).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _common import (PrepError, Stage, add_output_args, add_source_args, check_count, check_link,
                     default_data_dir, fail_if, find_dir, pair_folder, place_pairs, resolve_source, run_main)

VERSION = "1"

OFFICIAL = "https://github.com/joanshen0508/HA_deblur"
EXPECTED = 2025
SHOTS = {"close_ups": "test-close-ups", "long_shot": "test-long-shot"}


def collect(root: Path, problems: list[str]) -> dict[str, list]:
    """{group: [(blurred, sharp)]}: the official close-up / long-shot folders
    against GT/, else Restormer's HIDE/{input,target}."""
    found = [d for name in SHOTS.values() if (d := find_dir(root, name, required=False)) is not None]
    if found:
        test = found[0].parent
        return {group: pair_folder(test / name, test.parent / "GT", problems, extra_clean_ok=True)
                for group, name in SHOTS.items()}
    repack = find_dir(root, "HIDE", required=False)
    if repack is None:
        raise PrepError(f"{root}: neither HIDE_dataset/test/test-close-ups (official) nor test/HIDE/input "
                        f"(Restormer) found")
    return {"restormer_repack": pair_folder(repack / "input", repack / "target", problems)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prepare the HIDE test set (blurred/sharp pairs).")
    add_source_args(ap, archive_help=f"the HIDE_dataset archive downloaded via {OFFICIAL}")
    add_output_args(ap, "HIDE", f"{EXPECTED} pairs")
    args = ap.parse_args(argv)
    out = args.out or default_data_dir() / "HIDE"
    check_link(args)
    with Stage(out, "prepare_hide", VERSION) as st:
        root, source = resolve_source(args, "HIDE_dataset.zip", args.url, OFFICIAL, st.scratch())
        problems: list[str] = []
        groups = collect(root, problems)
        pairs = [p for items in groups.values() for p in items]
        check_count("test pairs", len(pairs), EXPECTED, args.allow_partial, problems)
        fail_if(problems, root)
        place_pairs(st, "test", pairs, args.link)
        counts = {group: len(items) for group, items in groups.items()}
        st.commit(source=source, params={"link": args.link},
                  summary={"test": {"pairs": len(pairs), "close_ups": counts.get("close_ups"),
                                    "long_shot": counts.get("long_shot")}})
    print(f"wrote {out}: {len(pairs)} test pairs (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")")
    return 0


if __name__ == "__main__":
    run_main(main)
