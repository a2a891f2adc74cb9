#!/usr/bin/env python
"""Prepare DIV2K for x4 super-resolution (HR + official bicubic LR).

Official source: https://data.vision.ee.ethz.ch/cvl/DIV2K/ ("academic
research only"). The four archives used here::

    DIV2K_train_HR.zip, DIV2K_valid_HR.zip,
    DIV2K_train_LR_bicubic_X4.zip, DIV2K_valid_LR_bicubic_X4.zip

The site publishes no checksums, so the script needs a ``--sha256-file``
(``sha256sum`` format, one line per archive) or ``--accept-hash``, which
prints each computed hash and records it next to the archive. Either put
the archives you downloaded into one folder (``--archives-dir``) or let the
script download them (``--download``)::

    python data_scripts/prepare_div2k.py --archives-dir ~/dl --sha256-file div2k.sha256
    python data_scripts/prepare_div2k.py --download --accept-hash
    python data_scripts/prepare_div2k.py --src path/with/extracted/folders

Output (BasicSR layout, default ``<data>/DIV2K``)::

    <out>/DIV2K_{train,valid}_HR/0001.png
    <out>/DIV2K_{train,valid}_LR_bicubic/X4/0001x4.png
    <out>/MANIFEST.json                (written last; see data_scripts/_manifest.py)

The output is built in a temporary sibling folder and swapped in when
complete. Parts (``--parts``) and scales (``--scale``) not prepared by this
run are kept from the previous ``<out>`` when its manifest verifies (hard
links); everything this run prepares replaces the old files as a whole.

Checked: 800 train (0001-0800) and 100 valid (0801-0900) images, every HR
image has its LR partner of size HR/4. ``--verify-lr N`` recomputes the LR
of the first N images with our MATLAB bicubic and reports the agreement.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from PIL import Image

import _download
from _common import (PrepError, Stage, add_extract_args, check_count, default_data_dir, expected_hash,
                     extract_limits, fail_if, image_size, import_restore_lib, list_images, lr_partner, run_main)

VERSION = "2"

OFFICIAL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
BASE_URL = "http://data.vision.ee.ethz.ch/cvl/DIV2K/"
EXPECTED = {"train": (1, 800), "valid": (801, 900)}


def archive_names(parts, scale: int) -> list[str]:
    return [f"DIV2K_{p}_HR.zip" for p in parts] + [f"DIV2K_{p}_LR_bicubic_X{scale}.zip" for p in parts]


def find_dir(root: Path, name: str) -> Path:
    hits = [p for p in [root / name, *root.rglob(name)] if p.is_dir()]
    if not hits:
        raise PrepError(f"{root}: folder {name}/ not found")
    return hits[0]


def collect(root: Path, part: str, scale: int, allow_partial: bool) -> list[tuple[Path, Path]]:
    hr_dir = find_dir(root, f"DIV2K_{part}_HR")
    lr_dir = find_dir(root, f"DIV2K_{part}_LR_bicubic") / f"X{scale}"
    if not lr_dir.is_dir():
        raise PrepError(f"{lr_dir}: folder not found")
    problems: list[str] = []
    pairs = []
    lo, hi = EXPECTED[part]
    for hr in list_images(hr_dir):
        if not re.fullmatch(r"\d{4}\.png", hr.name) or not lo <= int(hr.stem) <= hi:
            problems.append(f"{hr}: unexpected name for the {part} split ({lo:04d}-{hi:04d})")
            continue
        lr = lr_partner(hr, lr_dir, scale, problems)
        if lr is not None:
            pairs.append((hr, lr))
    check_count(f"{part} pairs", len(pairs), hi - lo + 1, allow_partial, problems)
    fail_if(problems, hr_dir)
    return pairs


def _rgb(path: Path) -> np.ndarray:
    image_size(path)  # a decompression bomb or unreadable header: PrepError naming the file
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise PrepError(f"{path}: unreadable image ({type(e).__name__}: {e})") from None


def verify_lr(pairs, scale: int, n: int) -> None:
    import_restore_lib()
    from restore_lib.data.imresize import bicubic_downsample
    for hr, lr in pairs[:n]:
        ours = bicubic_downsample(_rgb(hr), scale)
        ref = _rgb(lr)
        h, w = min(ours.shape[0], ref.shape[0]), min(ours.shape[1], ref.shape[1])
        d = np.abs(ours[:h, :w].astype(int) - ref[:h, :w].astype(int))
        print(f"  {lr.name}: {100 * (d == 0).mean():.2f} % identical pixels, max difference {d.max()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prepare DIV2K HR + bicubic LR.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--src", type=Path, help="folder with the extracted DIV2K_* folders")
    src.add_argument("--archives-dir", type=Path, help="folder with the downloaded DIV2K_*.zip archives")
    src.add_argument("--download", action="store_true", help=f"download the archives from {BASE_URL}")
    ap.add_argument("--base-url", default=BASE_URL, help="where --download fetches the archives")
    ap.add_argument("--sha256-file", type=Path, help="sha256sum-style file listing the archives' hashes")
    ap.add_argument("--accept-hash", action="store_true", help="print, record and accept unknown hashes")
    ap.add_argument("--cache", type=Path, default=None, help="download folder (default <data>/downloads)")
    ap.add_argument("--parts", nargs="+", choices=("train", "valid"), default=["train", "valid"])
    ap.add_argument("--scale", type=int, choices=(2, 3, 4), default=4)
    ap.add_argument("--out", type=Path, default=None, help="output folder (default <data>/DIV2K)")
    ap.add_argument("--verify-lr", type=int, default=0, metavar="N",
                    help="compare the official LR of the first N images with our MATLAB bicubic")
    ap.add_argument("--allow-partial", action="store_true", help="accept a subset of the images")
    ap.add_argument("--link", choices=("copy", "hardlink", "symlink"), default="copy")
    add_extract_args(ap)
    args = ap.parse_args(argv)
    args.sha256 = None
    out = args.out or default_data_dir() / "DIV2K"
    if args.link == "symlink" and args.src is None:
        raise PrepError("--link symlink needs --src (links into a temporary extraction would dangle)")
    limits = extract_limits(args)
    prefixes = [f"DIV2K_{p}_HR/" for p in args.parts] + [f"DIV2K_{p}_LR_bicubic/X{args.scale}/"
                                                         for p in args.parts]
    with Stage(out, "prepare_div2k", VERSION) as st:
        root = args.src
        source: dict = {"src": str(root.resolve())} if root is not None else {"archives": {}}
        if root is None:
            root = st.scratch()
            for name in archive_names(args.parts, args.scale):
                expected = expected_hash(args, name) if args.sha256_file else None
                if args.download:
                    cache = args.cache or default_data_dir() / "downloads"
                    archive, digest = _download.download(args.base_url + name, cache / name, expected,
                                                         accept_hash=args.accept_hash, with_digest=True)
                else:
                    archive = args.archives_dir / name
                    digest = _download.verify_file(archive, expected, args.accept_hash)
                source["archives"][name] = digest
                _download.safe_extract(archive, root, **limits)
        summary: dict = {}
        for part in args.parts:
            pairs = collect(root, part, args.scale, args.allow_partial)
            for hr, lr in pairs:
                st.place(hr, f"DIV2K_{part}_HR/{hr.name}", args.link)
                st.place(lr, f"DIV2K_{part}_LR_bicubic/X{args.scale}/{lr.name}", args.link)
            summary[f"{part}/X{args.scale}"] = len(pairs)
            print(f"{part}: {len(pairs)} HR/LR x{args.scale} pairs")
            if args.verify_lr:
                verify_lr(pairs, args.scale, args.verify_lr)
        old = st.carry_over(lambda rel: not any(rel.startswith(p) for p in prefixes))
        if old is not None:
            kept = {k: v for k, v in old["summary"].items() if k not in summary}
            if kept:
                print(f"kept from the previous {out.name}: " + ", ".join(f"{k} ({v} pairs)" for k, v in kept.items()))
            summary = {**kept, **summary}
            source = {**source, "kept_from_previous": old["source"]}
        st.commit(source=source, params={"scale": args.scale, "parts": args.parts, "link": args.link},
                  summary=summary)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
