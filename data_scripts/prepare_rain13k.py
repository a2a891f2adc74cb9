#!/usr/bin/env python
"""Prepare Rain13K and the deraining test sets as repacked by MPRNet /
Restormer (Zamir et al., CVPR 2021 / 2022).

Source: the Restormer deraining archives (Google Drive ids in
data_scripts/README.md: train ``14BidJeG4nSNuFNFDf99K-7eErCq4i47t``, test
``1P_-RAvltEoEhfT-9GrWRdpEi6NSswTs8``; see https://github.com/swz30/Restormer,
Deraining/README.md). The images come from Rain14000, Rain800, Rain1200,
Rain12 and Rain100H/L, each under its own authors' terms (research use). The
archives hold::

    train/Rain13K/{input,target}/*               13,712 pairs
    test/{Test100,Test1200,Test2800,Rain100H,Rain100L}/{input,target}/*
                                                  100 / 1200 / 2800 / 100 / 100 pairs

No checksums are published: pass ``--sha256-file`` (one line per archive) or
run once with ``--accept-hash``::

    python data_scripts/prepare_rain13k.py --archive train.zip test.zip --accept-hash
    python data_scripts/prepare_rain13k.py --src Datasets --parts test100 rain100h --link symlink

Output (default ``<data>/Rain13K``; input is degraded, target clean)::

    <out>/{train,test100,test1200,test2800,rain100h,rain100l}/{degraded,clean}/<name>.<ext>
    <out>/MANIFEST.json          (one for the dataset, written last; see data_scripts/_manifest.py)

Checked: every input has a target of the same name and size, the counts
above, and that every part asked for (``--parts``, default all six) is
there; ``--allow-partial`` accepts other counts and skips missing parts.
"""
from __future__ import annotations

import argparse

import _download
from _common import (Stage, add_output_args, add_source_args, check_count, check_link, default_data_dir,
                     extract_limits, fail_if, find_dir, pair_folder, place_pairs, resolve_source, run_main,
                     verify_files)

VERSION = "1"

OFFICIAL = "https://github.com/swz30/Restormer (Deraining/README.md: the train and test archives)"
PARTS = {"train": ("Rain13K", 13712), "test100": ("Test100", 100), "test1200": ("Test1200", 1200),
         "test2800": ("Test2800", 2800), "rain100h": ("Rain100H", 100), "rain100l": ("Rain100L", 100)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prepare Rain13K and the deraining test sets (input/target pairs).")
    add_source_args(ap, archive_help="the Restormer train.zip and/or test.zip (several allowed)",
                    several_archives=True)
    ap.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS), help="default: all six")
    add_output_args(ap, "Rain13K", "counts (13712 / 100 / 1200 / 2800 / 100 / 100) and parts")
    args = ap.parse_args(argv)
    out = args.out or default_data_dir() / "Rain13K"
    check_link(args)
    with Stage(out, "prepare_rain13k", VERSION) as st:
        if args.archive:
            source = {"archives": verify_files(args, args.archive)}
            root = st.scratch()
            for i, archive in enumerate(args.archive):
                _download.safe_extract(archive, root / str(i), **extract_limits(args))
        else:
            root, source = resolve_source(args, "Rain13K.zip", args.url, OFFICIAL, st.scratch())
        problems: list[str] = []
        pairs, missing = {}, []
        for part in args.parts:
            name, expected = PARTS[part]
            folder = find_dir(root, name, required=False)
            if folder is None:
                missing.append(name)
                continue
            pairs[part] = pair_folder(folder / "input", folder / "target", problems)
            check_count(f"{name} pairs", len(pairs[part]), expected, args.allow_partial, problems)
        if missing and args.allow_partial:
            print(f"warning: no {', '.join(missing)} folder found; skipped (--allow-partial)")
        elif missing:
            problems.append(f"no {', '.join(missing)} folder found (pass --allow-partial to skip, or --parts)")
        if not pairs:
            problems.append("none of the parts asked for was found")
        fail_if(problems, root)
        for part, items in pairs.items():
            place_pairs(st, part, items, args.link)
        st.commit(source=source, params={"parts": list(pairs), "link": args.link},
                  summary={part: {"pairs": len(items), "from": PARTS[part][0]} for part, items in pairs.items()})
    print(f"wrote {out}: " + ", ".join(f"{len(v)} {k} pairs" for k, v in pairs.items()))
    return 0


if __name__ == "__main__":
    run_main(main)
