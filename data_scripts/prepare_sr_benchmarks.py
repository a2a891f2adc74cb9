#!/usr/bin/env python
"""Prepare Set5 / Set14 / Urban100 (or any folder of HR images) for SR.

Sources (academic use):

* Set5, Set14: the BasicSR test-set archives (Google Drive ids in
  data_scripts/README.md: Set5.zip ``1RtyIeUFTyW8u7oa4z7a0lSzT3T1FwZE9``,
  Set14.zip ``1vsw07sV8wGrRQ8UARe2fO5jjgy9QJy_E``; e.g. ``gdown <id>``);
* Urban100: https://github.com/jbhuang0604/SelfExSR (``*_HR.png`` files).

The HR images are mod-cropped to the least common multiple of the scales
(12 for x2, x3, x4: BasicSR's ``GTmod12``) and every LR image is made from
that with our MATLAB-compatible bicubic (``restore_lib.data.imresize``),
rounded like MATLAB, so LR files match BasicSR's ``LRbicx*``::

    python data_scripts/prepare_sr_benchmarks.py --name Set5 --archive Set5.zip --sha256 <hash>
    python data_scripts/prepare_sr_benchmarks.py --name Urban100 --src SelfExSR/data/Urban100

Output (default ``<data>/<name>``)::

    <out>/GTmod12/<image>.png
    <out>/LRbicx2/<image>.png, LRbicx3/, LRbicx4/
    <out>/MANIFEST.json            (written last; see data_scripts/_manifest.py)

The output is built in a temporary sibling folder and swapped in when
complete (a rerun with other scales leaves no stale folder). Two HR files
with the same image name (``baby.png`` and ``baby.bmp``) are an error.

The HR folder inside the input is found automatically (``original/``,
``HR/``, ``GTmod12/``, SelfExSR's ``image_SRF_4/*_HR.png``, or images at the
top) or given with ``--hr-subdir``. Grayscale images are stored as RGB.
"""
from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

from _common import (PrepError, Stage, add_source_args, check_count, default_data_dir, fail_if, image_size,
                     import_restore_lib, list_images, resolve_source, run_main)

VERSION = "2"

OFFICIAL = {"Set5": "BasicSR test sets (Google Drive id 1RtyIeUFTyW8u7oa4z7a0lSzT3T1FwZE9)",
            "Set14": "BasicSR test sets (Google Drive id 1vsw07sV8wGrRQ8UARe2fO5jjgy9QJy_E)",
            "Urban100": "https://github.com/jbhuang0604/SelfExSR"}
EXPECTED = {"Set5": 5, "Set14": 14, "Urban100": 100, "BSD100": 100, "Manga109": 109}
CANDIDATES = ("original", "HR", "GTmod12", "GT", "image_SRF_4", "image_SRF_2")
SELFEXSR_HR = re.compile(r"^(?P<name>.+?)_SRF_\d+_HR$")


def _unique(images: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    seen: dict[str, Path] = {}
    for name, p in images:
        if name in seen:
            raise PrepError(f"{seen[name]} and {p}: both are image {name!r}; remove one")
        seen[name] = p
    return images


def find_hr(root: Path, name: str, subdir: str | None) -> list[tuple[str, Path]]:
    """[(image name, HR file)] from the first matching folder."""
    if subdir:
        folders = [root / subdir]
    else:
        folders = [b / c for b in (root / name, root) for c in CANDIDATES] + [root / name, root]
        folders += sorted(p for p in root.rglob("*") if p.is_dir() and p.name in CANDIDATES)
    for folder in folders:
        if not folder.is_dir():
            continue
        files = list_images(folder)
        selfexsr = [(m.group("name"), p) for p in files if (m := SELFEXSR_HR.match(p.stem))]
        if selfexsr:
            return _unique(selfexsr)
        if files and not any(p.stem.endswith("_LR") for p in files):
            return _unique([(p.stem, p) for p in files])
    raise PrepError(f"{root}: no HR image folder found (tried {', '.join(CANDIDATES)}); pass --hr-subdir")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prepare an SR test set: GTmod + MATLAB-bicubic LR.")
    ap.add_argument("--name", required=True, help="Set5, Set14, Urban100, ... (folder name and count check)")
    add_source_args(ap, archive_help="the test-set archive you downloaded")
    ap.add_argument("--hr-subdir", default=None, help="HR folder inside the input, if not found automatically")
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--out", type=Path, default=None, help="output folder (default <data>/<name>)")
    ap.add_argument("--allow-partial", action="store_true", help="accept an image count other than the official")
    args = ap.parse_args(argv)
    if any(s < 2 for s in args.scales):
        raise PrepError(f"--scales must be >= 2; got {args.scales}")
    import_restore_lib()
    from restore_lib.data.imresize import bicubic_downsample, modcrop
    from restore_lib.data.io import ImageReadError, read_image, to_uint8, write_image

    out = args.out or default_data_dir() / args.name
    mod = math.lcm(*args.scales)
    official = OFFICIAL.get(args.name, "the dataset's official page")
    problems: list[str] = []
    with Stage(out, "prepare_sr_benchmarks", VERSION) as st:
        root, source = resolve_source(args, f"{args.name}.zip", args.url, official, st.scratch())
        images = find_hr(root, args.name, args.hr_subdir)
        check_count(f"{args.name} images", len(images), EXPECTED.get(args.name), args.allow_partial, problems)
        fail_if(problems, root)
        for name, path in images:
            image_size(path)  # a decompression bomb or unreadable header: PrepError naming the file
            try:
                hr = modcrop(to_uint8(read_image(path)), mod)
            except ImageReadError as e:
                raise PrepError(str(e)) from None
            write_image(st.claim(f"GTmod{mod}/{name}.png", path), hr)
            for s in args.scales:
                write_image(st.claim(f"LRbicx{s}/{name}.png", path), bicubic_downsample(hr, s))
        st.commit(source=source, params={"name": args.name, "scales": args.scales, "mod": mod,
                                         "hr_subdir": args.hr_subdir},
                  summary={"images": len(images)})
    print(f"wrote {out}: {len(images)} images, GTmod{mod} + LRbicx{' x'.join(map(str, args.scales))}")
    return 0


if __name__ == "__main__":
    run_main(main)
