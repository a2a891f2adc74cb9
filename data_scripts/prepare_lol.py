#!/usr/bin/env python
"""Prepare LOL v1 for low-light enhancement (Wei et al., BMVC 2018,
"Deep Retinex Decomposition for Low-Light Enhancement").

Official source: https://daooshee.github.io/BMVC2018website/ (``LOLdataset.zip``
from the links there; no licence stated, research use). The archive holds
``our485/{low,high}/*.png`` (485 training pairs) and ``eval15/{low,high}/*.png``
(15 test pairs), low and high with the same file names. No checksum is
published: pass ``--sha256`` or run once with ``--accept-hash``::

    python data_scripts/prepare_lol.py --archive LOLdataset.zip --accept-hash
    python data_scripts/prepare_lol.py --src path/to/LOLdataset --link symlink

Output (default ``<data>/LOL``; the low image is the degraded one)::

    <out>/train/{degraded,clean}/<name>.png     (our485)
    <out>/test/{degraded,clean}/<name>.png      (eval15)
    <out>/MANIFEST.json                         (written last; see data_scripts/_manifest.py)

Checked: every low image has a high image of the same name and size, and the
counts 485 / 15 (``--allow-partial`` accepts others).
"""
from __future__ import annotations

import argparse

from _common import (Stage, add_output_args, add_source_args, check_count, check_link, default_data_dir, fail_if,
                     find_dir, pair_folder, place_pairs, resolve_source, run_main)

VERSION = "1"

OFFICIAL = "https://daooshee.github.io/BMVC2018website/"
SPLITS = {"train": ("our485", 485), "test": ("eval15", 15)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prepare LOL v1 (low/high pairs).")
    add_source_args(ap, archive_help=f"LOLdataset.zip downloaded from {OFFICIAL}")
    add_output_args(ap, "LOL", "485 / 15 pairs")
    args = ap.parse_args(argv)
    out = args.out or default_data_dir() / "LOL"
    check_link(args)
    with Stage(out, "prepare_lol", VERSION) as st:
        root, source = resolve_source(args, "LOLdataset.zip", args.url, OFFICIAL, st.scratch())
        problems: list[str] = []
        pairs = {}
        for split, (name, expected) in SPLITS.items():
            folder = find_dir(root, name)
            pairs[split] = pair_folder(folder / "low", folder / "high", problems)
            check_count(f"{name} pairs", len(pairs[split]), expected, args.allow_partial, problems)
        fail_if(problems, root)
        for split, items in pairs.items():
            place_pairs(st, split, items, args.link)
        st.commit(source=source, params={"link": args.link},
                  summary={split: {"pairs": len(items), "from": SPLITS[split][0]} for split, items in pairs.items()})
    print(f"wrote {out}: " + ", ".join(f"{len(v)} {k} pairs" for k, v in pairs.items()))
    return 0


if __name__ == "__main__":
    run_main(main)
