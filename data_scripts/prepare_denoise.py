#!/usr/bin/env python
"""Prepare a clean image set for Gaussian denoising (no degraded images: the
noise is added later, seeded, by the report-data adapter).

Sets, expected counts and where they come from (research use; none of them
publishes a checksum, so pass ``--sha256`` or run once with ``--accept-hash``
for an archive):

* ``BSD400`` (400, grey): DnCNN's training images, https://github.com/cszn/DnCNN
  (``TrainingCodes/DnCNN_TrainingCodes_v1.0/data/Train400``);
* ``BSD68`` (68, grey): https://github.com/cszn/DnCNN (``testsets/BSD68``);
* ``CBSD68`` (68, colour): the DRUNet / KAIR test sets, https://github.com/cszn/KAIR
  (``testsets/CBSD68``), also in Restormer's denoising test archive
  (https://github.com/swz30/Restormer, Denoising/README.md);
* ``Kodak24`` (24, colour) and ``McMaster`` (18, colour): the same KAIR / Restormer
  test sets (Kodak24: http://r0k.us/graphics/kodak/);
* ``WED`` (4,744, colour): the Waterloo Exploration Database,
  https://ece.uwaterloo.ca/~k29ma/exploration/ (``pristine_images/*.bmp``; the
  download is a .rar: extract it yourself and pass ``--src``).

::

    python data_scripts/prepare_denoise.py --name BSD68 --src DnCNN/testsets
    python data_scripts/prepare_denoise.py --name CBSD68 --archive CBSD68.zip --accept-hash
    python data_scripts/prepare_denoise.py --name WED --src exploration_database_and_code --link hardlink

The image folder is found by name (``Train400``/``BSD400``, ``BSD68``, ``CBSD68``,
``Kodak24``/``Kodak``, ``McMaster``, ``pristine_images``/``WED``; else the images
at the top of the input) or given with ``--subdir``. Output (default
``<data>/<name>``; the extension is kept, lower-cased)::

    <out>/clean/<image>.png
    <out>/MANIFEST.json      (written last; its summary records "channels": 1 or 3)

Checked: the count; every image is 8-bit grey (BSD400, BSD68) or RGB (the
others); a set with both kinds is an error naming one of each; two files
with the same image name (``a.png``, ``a.bmp``) are an error naming both.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from _common import (PrepError, Stage, add_output_args, add_source_args, check_count, check_link,
                     default_data_dir, fail_if, find_dir, image_size, list_images, resolve_source, run_main,
                     unique_stems)

VERSION = "1"

# name: (count, channels, folder names, where to get it)
SETS = {"BSD400": (400, 1, ("Train400", "BSD400"), "https://github.com/cszn/DnCNN"),
        "WED": (4744, 3, ("pristine_images", "WED"), "https://ece.uwaterloo.ca/~k29ma/exploration/"),
        "BSD68": (68, 1, ("BSD68",), "https://github.com/cszn/DnCNN"),
        "CBSD68": (68, 3, ("CBSD68",), "https://github.com/cszn/KAIR"),
        "Kodak24": (24, 3, ("Kodak24", "Kodak"), "https://github.com/cszn/KAIR"),
        "McMaster": (18, 3, ("McMaster",), "https://github.com/cszn/KAIR")}
KIND = {1: "grey", 3: "colour"}


def channels(path: Path) -> int:
    image_size(path)  # unreadable or a decompression bomb: PrepError naming the file
    with Image.open(path) as im:
        mode = im.mode
    if mode not in ("L", "RGB"):
        raise PrepError(f"{path}: image mode {mode}; expected 8-bit grey (L) or RGB")
    return 1 if mode == "L" else 3


def check_channels(files: list[Path], name: str, want: int) -> None:
    """All images of one kind, the kind of the set: else an error naming them."""
    first: dict[int, Path] = {}
    for f in files:
        first.setdefault(channels(f), f)
    if len(first) > 1:
        raise PrepError(f"{first[1]} is grey and {first[3]} is colour: the images of {name} must be all one kind")
    (got, example), = first.items()
    if got != want:
        raise PrepError(f"{example}: a {KIND[got]} image, but {name} is a {KIND[want]} set (wrong set or "
                        f"wrong --name?)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prepare a clean image set for Gaussian denoising.")
    ap.add_argument("--name", required=True, choices=list(SETS))
    add_source_args(ap, archive_help="an archive holding the image set")
    ap.add_argument("--subdir", default=None, help="the image folder inside the input, if not found by name")
    add_output_args(ap, "<name>", "count (400 / 4744 / 68 / 68 / 24 / 18)")
    args = ap.parse_args(argv)
    expected, want, folders, official = SETS[args.name]
    out = args.out or default_data_dir() / args.name
    check_link(args)
    with Stage(out, "prepare_denoise", VERSION) as st:
        root, source = resolve_source(args, f"{args.name}.zip", args.url, official, st.scratch())
        folder = root / args.subdir if args.subdir else find_dir(root, *folders, required=False) or root
        if not folder.is_dir():
            raise PrepError(f"{folder}: --subdir folder not found")
        files = list_images(folder)
        if not files:
            raise PrepError(f"{folder}: no images (looked for a folder named {' or '.join(folders)}; see --subdir)")
        problems: list[str] = []
        check_count(f"{args.name} images", len(files), expected, args.allow_partial, problems)
        fail_if(problems, folder)
        unique_stems(files)
        check_channels(files, args.name, want)
        for f in files:
            st.place(f, f"clean/{f.stem}{f.suffix.lower()}", args.link)
        st.commit(source=source, params={"name": args.name, "subdir": args.subdir, "link": args.link},
                  summary={"images": len(files), "channels": want})
    print(f"wrote {out}: {len(files)} {KIND[want]} images")
    return 0


if __name__ == "__main__":
    run_main(main)
