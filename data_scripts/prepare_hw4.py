#!/usr/bin/env python
"""Check, and optionally convert, the course HW4 rain/snow dataset.

The data is course-internal (NYCU VRDL 2025 Spring HW4) and cannot be
downloaded here. Unpack the archive you received from the course so that it
looks like::

    hw4_realse_dataset/
        train/degraded/rain-1.png ... rain-1600.png, snow-1.png ... snow-1600.png
        train/clean/rain_clean-1.png ... rain_clean-1600.png, snow_clean-1.png ...
        test/degraded/0.png ... 99.png          (type hidden; 50 rain + 50 snow)

Check only:   python data_scripts/prepare_hw4.py --src path/to/hw4_realse_dataset
Convert:      python data_scripts/prepare_hw4.py --src ... --out data/hw4 [--val-ratio 0.05]

The check verifies that every degraded image has its clean partner of the
same size, that names follow the pattern, that files decode, and that the
counts are the published ones (1600 + 1600 train pairs, 100 test images).
The conversion writes the repo's paired layout, same file name on both
sides, with a seeded validation split by image (PromptIR-style
``split_ratio = 0.95`` by default)::

    <out>/train/{degraded,clean}/{rain,snow}-N.png
    <out>/val/{degraded,clean}/{rain,snow}-N.png
    <out>/test/degraded/N.png
    <out>/split.json
    <out>/MANIFEST.json      (written last; see data_scripts/_manifest.py)

The output is built in a temporary sibling folder and swapped in at the
end, so converting again (another seed or ratio) replaces the old split
instead of mixing with it. Two files with the same number (``rain-5.png``
and ``rain-05.png``) are an error naming both.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from _common import PrepError, Stage, add_link_arg, check_count, fail_if, image_size, run_main

VERSION = "2"

DEGRADED = re.compile(r"^(rain|snow)-(\d+)\.png$")
TEST = re.compile(r"^(\d+)\.png$")
EXPECTED = {"rain": 1600, "snow": 1600, "test": 100}


def _size(path: Path, problems: list[str]) -> tuple[int, int] | None:
    try:
        return image_size(path, verify=True)
    except PrepError as e:
        problems.append(str(e))
        return None


def _first(seen: dict, key, path: Path, what: str, problems: list[str]) -> bool:
    """False (and a problem naming both files) when ``key`` was seen before."""
    if key in seen:
        problems.append(f"{seen[key]} and {path}: both are {what}; remove one")
        return False
    seen[key] = path
    return True


def check(src: Path, allow_partial: bool = False, expected: dict | None = None) -> dict:
    """Validate the layout; returns {'pairs': [(kind, n), ...], 'test': [n, ...]}
    or raises PrepError listing every problem."""
    expected = EXPECTED if expected is None else expected
    problems: list[str] = []
    deg, clean, test = src / "train" / "degraded", src / "train" / "clean", src / "test" / "degraded"
    for d in (deg, clean, test):
        if not d.is_dir():
            problems.append(f"missing folder {d}")
    fail_if(problems, src)
    pairs = []
    seen: dict = {}
    for p in sorted(deg.iterdir()):
        m = DEGRADED.match(p.name)
        if not m:
            problems.append(f"{p}: unexpected name (want rain-N.png or snow-N.png)")
            continue
        kind, n = m.group(1), int(m.group(2))
        if not _first(seen, (kind, n), p, f"{kind} number {n}", problems):
            continue
        c = clean / f"{kind}_clean-{n}.png"
        if not c.is_file():
            problems.append(f"{p}: clean partner {c.name} is missing")
            continue
        sd, sc = _size(p, problems), _size(c, problems)
        if sd and sc and sd != sc:
            problems.append(f"{p}: size {sd} differs from {c.name} {sc}")
        pairs.append((kind, n))
    partners = {f"{k}_clean-{n}.png" for k, n in pairs}
    for c in sorted(clean.iterdir()):
        if c.name not in partners:
            problems.append(f"{c}: clean image without a degraded partner")
    tests = []
    seen_test: dict = {}
    for p in sorted(test.iterdir()):
        m = TEST.match(p.name)
        if not m:
            problems.append(f"{p}: unexpected test name (want N.png)")
            continue
        if not _first(seen_test, int(m.group(1)), p, f"test number {int(m.group(1))}", problems):
            continue
        _size(p, problems)
        tests.append(int(m.group(1)))
    for kind in ("rain", "snow"):
        found = sum(k == kind for k, _ in pairs)
        check_count(f"train {kind} pairs", found, expected.get(kind), allow_partial, problems)
    check_count("test images", len(tests), expected.get("test"), allow_partial, problems)
    fail_if(problems, src)
    return {"pairs": sorted(pairs), "test": sorted(tests)}


def convert(src: Path, out: Path, layout: dict, val_ratio: float, seed: int, link: str) -> dict:
    """Write the paired layout into a new folder that replaces ``out`` as a
    whole once complete (manifest last)."""
    pairs = layout["pairs"]
    rng = np.random.default_rng(seed)
    n_val = int(round(len(pairs) * val_ratio))
    val = {pairs[i] for i in rng.permutation(len(pairs))[:n_val]}
    with Stage(out, "prepare_hw4", VERSION) as st:
        for kind, n in pairs:
            split = "val" if (kind, n) in val else "train"
            name = f"{kind}-{n}.png"
            st.place(src / "train" / "degraded" / name, f"{split}/degraded/{name}", link)
            st.place(src / "train" / "clean" / f"{kind}_clean-{n}.png", f"{split}/clean/{name}", link)
        for n in layout["test"]:
            st.place(src / "test" / "degraded" / f"{n}.png", f"test/degraded/{n}.png", link)
        split = {"seed": seed, "val_ratio": val_ratio, "val": sorted(f"{k}-{n}" for k, n in val),
                 "n_train": len(pairs) - len(val), "n_val": len(val), "n_test": len(layout["test"])}
        (st.claim("split.json", "the split")).write_text(json.dumps(split, indent=1) + "\n")
        st.commit(source={"src": str(src.resolve())},
                  params={"seed": seed, "val_ratio": val_ratio, "link": link},
                  summary={"train": split["n_train"], "val": split["n_val"], "test": split["n_test"],
                           "rain": sum(k == "rain" for k, _ in pairs), "snow": sum(k == "snow" for k, _ in pairs)})
    return split


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Check / convert the course HW4 rain+snow dataset.")
    ap.add_argument("--src", type=Path, required=True, help="the unpacked hw4_realse_dataset folder")
    ap.add_argument("--out", type=Path, default=None, help="convert into this folder (default: check only)")
    ap.add_argument("--val-ratio", type=float, default=0.05, help="validation fraction (default 0.05)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the validation split (default 0)")
    ap.add_argument("--allow-partial", action="store_true", help="accept counts other than 1600/1600/100")
    add_link_arg(ap)
    args = ap.parse_args(argv)
    if not 0 <= args.val_ratio < 1:
        raise PrepError(f"--val-ratio must be in [0, 1); got {args.val_ratio}")
    layout = check(args.src, args.allow_partial)
    n_rain = sum(k == "rain" for k, _ in layout["pairs"])
    print(f"{args.src}: OK: {n_rain} rain + {len(layout['pairs']) - n_rain} snow training pairs, "
          f"{len(layout['test'])} test images")
    if args.out is not None:
        split = convert(args.src, args.out, layout, args.val_ratio, args.seed, args.link)
        print(f"wrote {args.out}: {split['n_train']} train, {split['n_val']} val pairs, {split['n_test']} test")
    return 0


if __name__ == "__main__":
    run_main(main)
