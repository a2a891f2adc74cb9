#!/usr/bin/env python
"""Prepare the GoPro deblurring dataset (Nah et al., CVPR 2017).

Official source: https://seungjunnah.github.io/Datasets/gopro (GOPRO_Large,
about 9 GB; licence CC BY 4.0 per the dataset page, unverified). Download
GOPRO_Large.zip there yourself, then::

    python data_scripts/prepare_gopro.py --archive GOPRO_Large.zip --sha256 <hash>
    python data_scripts/prepare_gopro.py --archive GOPRO_Large.zip --accept-hash   # prints, records the hash
    python data_scripts/prepare_gopro.py --src path/to/GOPRO_Large --link symlink  # already extracted

Output (default ``<data>/GoPro``)::

    <out>/{train,test}/<scene>/{blur,sharp}/NNNNNN.png
    <out>/MANIFEST.json               (written last; see data_scripts/_manifest.py)

The output is built in a temporary sibling folder and swapped in when
complete, so a rerun leaves no stale scene or frame behind.

Only ``blur`` (the plain frame average) and ``sharp`` are used: the papers'
numbers are on ``blur``, not ``blur_gamma`` (swz30/MPRNet#65). Checked: every
blur frame has a sharp frame of the same name and size; 2103 train / 1111
test pairs in 33 scenes (22 + 11); the same frame number twice in a scene
(``000047.png`` and ``47.png``, or ``.png`` and ``.jpg``) is an error naming
both files.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _common import (PrepError, Stage, add_link_arg, add_source_args, check_count, default_data_dir, fail_if,
                     image_size, list_images, resolve_source, run_main)

VERSION = "2"

OFFICIAL = "https://seungjunnah.github.io/Datasets/gopro"
EXPECTED = {"train": 2103, "test": 1111}


def find_root(folder: Path) -> Path:
    """The folder holding train/ and test/ (the archive's GOPRO_Large/ or deeper)."""
    candidates = [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]
    for c in candidates:
        if (c / "train").is_dir() and (c / "test").is_dir():
            return c
    raise PrepError(f"{folder}: no folder with train/ and test/ subfolders found (expected GOPRO_Large/)")


def _duplicate_frames(files: list[Path], problems: list[str]) -> None:
    """Two files of one folder that are the same frame (same number, or
    same name but for the extension's case or kind)."""
    seen: dict[str, Path] = {}
    for f in files:
        key = str(int(f.stem)) if f.stem.isdigit() else f.stem.lower()
        if key in seen:
            problems.append(f"{seen[key]} and {f}: the same frame twice; remove one")
        else:
            seen[key] = f


def collect(root: Path, allow_partial: bool) -> dict[str, list[tuple[str, Path, Path]]]:
    """{split: [(scene, blur file, sharp file), ...]}, every problem reported."""
    problems: list[str] = []
    out: dict[str, list] = {}
    for split in ("train", "test"):
        pairs = []
        scenes = sorted(p for p in (root / split).iterdir() if p.is_dir())
        if not scenes:
            problems.append(f"{root / split}: no scene folders")
        for scene in scenes:
            blur, sharp = scene / "blur", scene / "sharp"
            if not blur.is_dir() or not sharp.is_dir():
                problems.append(f"{scene}: needs blur/ and sharp/ (blur_gamma is not used)")
                continue
            b_files, s_files = list_images(blur), list_images(sharp)
            _duplicate_frames(b_files, problems)
            _duplicate_frames(s_files, problems)
            s_names = {p.name for p in s_files}
            for b in b_files:
                s = sharp / b.name
                if b.name not in s_names:
                    problems.append(f"{b}: no sharp frame {s.name}")
                    continue
                try:
                    sb, ss = image_size(b), image_size(s)
                except PrepError as e:
                    problems.append(str(e))
                    continue
                if sb != ss:
                    problems.append(f"{b}: size {sb} differs from sharp {ss}")
                pairs.append((scene.name, b, s))
            for extra in sorted(s_names - {p.name for p in b_files}):
                problems.append(f"{sharp / extra}: no blur frame")
        check_count(f"{split} pairs", len(pairs), EXPECTED[split], allow_partial, problems)
        out[split] = pairs
    fail_if(problems, root)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prepare GoPro (blur/sharp pairs).")
    add_source_args(ap, archive_help=f"GOPRO_Large.zip downloaded from {OFFICIAL}")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default <data>/GoPro)")
    ap.add_argument("--allow-partial", action="store_true", help="accept pair counts other than 2103/1111")
    add_link_arg(ap)
    args = ap.parse_args(argv)
    out = args.out or default_data_dir() / "GoPro"
    if args.link == "symlink" and args.src is None:
        raise PrepError("--link symlink needs --src (links into a temporary extraction would dangle)")
    with Stage(out, "prepare_gopro", VERSION) as st:
        folder, source = resolve_source(args, "GOPRO_Large.zip", args.url, OFFICIAL, st.scratch())
        pairs = collect(find_root(folder), args.allow_partial)
        for split, items in pairs.items():
            for scene, b, s in items:
                st.place(b, f"{split}/{scene}/blur/{b.name}", args.link)
                st.place(s, f"{split}/{scene}/sharp/{s.name}", args.link)
        st.commit(source=source, params={"link": args.link},
                  summary={split: {"pairs": len(items), "scenes": len({sc for sc, _, _ in items})}
                           for split, items in pairs.items()})
    print(f"wrote {out}: " + ", ".join(f"{len(v)} {k} pairs" for k, v in pairs.items()))
    return 0


if __name__ == "__main__":
    run_main(main)
