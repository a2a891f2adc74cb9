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
    <out>/<split>/MANIFEST.json       (written last; see data_scripts/_manifest.py)

Each split folder is built in a temporary sibling and swapped in when
complete: a rerun replaces ``<out>/<split>`` as a whole (no stale files) and
leaves the other split alone. Two inputs with the same number (``rain-5.png``
and ``rain-05.png``, or the same number in two folders) are an error naming
both.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from _common import (IMAGE_EXTS, PrepError, Stage, add_link_arg, add_source_args, check_count, default_data_dir,
                     fail_if, list_images, resolve_source, run_main)

VERSION = "2"

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
    deg: dict[int, Path] = {}
    cln: dict[int, Path] = {}
    for p in sorted(root.rglob("*")):
        m = NAMED.match(p.stem) if p.suffix.lower() in IMAGE_EXTS else None
        if m:
            side, n = (cln if m.group("kind").lower() == "norain" else deg), int(m.group("n"))
            if n in side:
                raise PrepError(f"{side[n]} and {p}: both are {m.group('kind').lower()} number {n}; remove one")
            side[n] = p
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
    with Stage(out / args.split, "prepare_rain100l", VERSION) as st:
        root, source = resolve_source(args, f"Rain100L_{args.split}.zip", args.url, OFFICIAL, st.scratch())
        pairs = find_pairs(root)
        check_count(f"{args.split} pairs", len(pairs), EXPECTED[args.split], args.allow_partial, problems)
        fail_if(problems, root)
        for name, d, c in pairs:
            st.place(d, f"degraded/{name}{d.suffix.lower()}", args.link)
            st.place(c, f"clean/{name}{c.suffix.lower()}", args.link)
        st.commit(source=source, params={"split": args.split, "link": args.link},
                  summary={"pairs": len(pairs)})
    print(f"wrote {out / args.split}: {len(pairs)} pairs")
    return 0


if __name__ == "__main__":
    run_main(main)
