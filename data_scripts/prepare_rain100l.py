#!/usr/bin/env python
"""Prepare Rain100L (Yang et al., CVPR 2017, JORDER) for deraining.

Official source: http://www.icst.pku.edu.cn/struct/Projects/joint_rain_removal.html
(RainTrainL: 200 training pairs; Rain100L: 100 test pairs; no licence
stated, research use). Versions changed over time (csdwren/PReNet#21):
record which archive you used (its SHA-256 is printed or checked).

    python data_scripts/prepare_rain100l.py --split train --archive RainTrainL.zip --accept-hash
    python data_scripts/prepare_rain100l.py --split test --src Rain100L/ [--allow-partial]

Pairs are recognised in the common layouts: file names ``rain-N`` /
``norain-N`` (JORDER, PReNet; ``rainstreak-N``/``rainregion-N`` masks are
ignored), or sibling folders ``input``/``target``, ``rainy``/``norain``,
``rain``/``norain``, ``degraded``/``clean`` with identical file names
(Restormer, PromptIR). Output (default ``<data>/Rain100L``)::

    <out>/<split>/{degraded,clean}/<name>.png
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from _common import (IMAGE_EXTS, PrepError, add_link_arg, add_source_args, check_count, default_data_dir,
                     fail_if, list_images, place, resolve_input, run_main, temp_workdir)

OFFICIAL = "http://www.icst.pku.edu.cn/struct/Projects/joint_rain_removal.html"
EXPECTED = {"train": 200, "test": 100}
DIR_PAIRS = (("input", "target"), ("rainy", "norain"), ("rain", "norain"), ("degraded", "clean"),
             ("rainy", "gt"), ("input", "gt"))
NAMED = re.compile(r"^(?P<kind>norain|rain)-(?P<n>\d+)(?:x2)?$", re.IGNORECASE)


def find_pairs(root: Path) -> list[tuple[str, Path, Path]]:
    """[(name, degraded, clean)] by sibling folders, else by rain-/norain- names."""
    for folder in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        for d_name, c_name in DIR_PAIRS:
            d, c = folder / d_name, folder / c_name
            if d.is_dir() and c.is_dir():
                deg = {p.name: p for p in list_images(d)}
                cln = {p.name: p for p in list_images(c)}
                missing = sorted(set(deg) ^ set(cln))
                if missing:
                    raise PrepError(f"{folder}: files without a partner in {d_name}/ and {c_name}/: "
                                    f"{', '.join(missing[:10])}")
                return [(Path(n).stem, deg[n], cln[n]) for n in sorted(deg)]
    deg, cln = {}, {}
    for p in sorted(root.rglob("*")):
        m = NAMED.match(p.stem) if p.suffix.lower() in IMAGE_EXTS else None
        if m:
            (cln if m.group("kind").lower() == "norain" else deg)[int(m.group("n"))] = p
    if not deg and not cln:
        raise PrepError(f"{root}: no rain/norain pairs found (see --help for the layouts recognised)")
    missing = sorted(set(deg) ^ set(cln))
    if missing:
        raise PrepError(f"{root}: images without a partner, numbers {missing[:10]}")
    return [(str(n), deg[n], cln[n]) for n in sorted(deg)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prepare Rain100L / RainTrainL pairs.")
    ap.add_argument("--split", choices=("train", "test"), required=True)
    add_source_args(ap, archive_help=f"the archive downloaded from {OFFICIAL}")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default <data>/Rain100L)")
    ap.add_argument("--allow-partial", action="store_true", help="accept a pair count other than 200/100")
    add_link_arg(ap)
    args = ap.parse_args(argv)
    out = args.out or default_data_dir() / "Rain100L"
    if args.link == "symlink" and args.src is None:
        raise PrepError("--link symlink needs --src (links into a temporary extraction would dangle)")
    problems: list[str] = []
    with temp_workdir(out) as work:
        root = resolve_input(args, f"Rain100L_{args.split}.zip", args.url, OFFICIAL, Path(work))
        pairs = find_pairs(root)
        check_count(f"{args.split} pairs", len(pairs), EXPECTED[args.split], args.allow_partial, problems)
        fail_if(problems, root)
        for name, d, c in pairs:
            place(d, out / args.split / "degraded" / f"{name}{d.suffix.lower()}", args.link)
            place(c, out / args.split / "clean" / f"{name}{c.suffix.lower()}", args.link)
    print(f"wrote {out / args.split}: {len(pairs)} pairs")
    return 0


if __name__ == "__main__":
    run_main(main)
