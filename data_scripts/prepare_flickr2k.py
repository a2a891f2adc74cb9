#!/usr/bin/env python
"""Prepare Flickr2K for super-resolution (Lim et al., CVPRW 2017, EDSR).

Official source: https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar (linked from
https://github.com/sanghyun-son/EDSR-PyTorch; 2,650 Flickr photos, research
use under the photos' own Flickr licences). No checksum is published: pass
``--sha256`` or run once with ``--accept-hash``. The archive holds::

    Flickr2K/Flickr2K_HR/000001.png
    Flickr2K/Flickr2K_LR_bicubic/X{2,3,4}/000001x{2,3,4}.png

::

    python data_scripts/prepare_flickr2k.py --archive Flickr2K.tar --accept-hash
    python data_scripts/prepare_flickr2k.py --url https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar --accept-hash
    python data_scripts/prepare_flickr2k.py --src path/to/Flickr2K --scales 2 4 --link symlink

Output (default ``<data>/Flickr2K``; the layout of prepare_div2k.py)::

    <out>/Flickr2K_HR/000001.png
    <out>/Flickr2K_LR_bicubic/X4/000001x4.png        (for each of --scales, default 4)
    <out>/MANIFEST.json          (written last; its summary says, per scale, "official" or "made")

Where the input has no ``X<s>`` folder for a scale asked for, its LR images
are made from the HR mod-cropped to a multiple of ``s`` with our
MATLAB-compatible bicubic (``restore_lib.data.imresize``, as
prepare_sr_benchmarks.py does); the HR files are copied unchanged. Checked:
2,650 HR images (``--allow-partial`` accepts others), and in an official LR
folder every HR image has its partner of size HR / s.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _common import (PrepError, Stage, add_output_args, add_source_args, check_count, check_link,
                     default_data_dir, fail_if, find_dir, import_restore_lib, list_images,
                     lr_partner, resolve_source, run_main, unique_stems)

VERSION = "1"

OFFICIAL = "https://github.com/sanghyun-son/EDSR-PyTorch"
URL = "https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar"
EXPECTED = 2650
MADE = "made: restore_lib.data.imresize bicubic of the HR mod-cropped to the scale"


def official_lr(hrs: list[Path], lr_dir: Path, s: int, problems: list[str]) -> list[Path]:
    """The LR partner of every HR image in ``lr_dir``, checked by name and size."""
    lrs = []
    for hr in hrs:
        lr = lr_partner(hr, lr_dir, s, problems)
        if lr is not None:
            lrs.append(lr)
    return lrs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prepare Flickr2K HR + bicubic LR.")
    add_source_args(ap, archive_help=f"Flickr2K.tar ({URL})")
    ap.add_argument("--scales", type=int, nargs="+", choices=(2, 3, 4), default=[4])
    add_output_args(ap, "Flickr2K", f"{EXPECTED} images")
    args = ap.parse_args(argv)
    out = args.out or default_data_dir() / "Flickr2K"
    check_link(args)
    scales = sorted(set(args.scales))
    with Stage(out, "prepare_flickr2k", VERSION) as st:
        root, source = resolve_source(args, "Flickr2K.tar", args.url, OFFICIAL, st.scratch())
        hrs = list_images(find_dir(root, "Flickr2K_HR"))
        unique_stems(hrs)
        lr_root = find_dir(root, "Flickr2K_LR_bicubic", required=False)
        problems: list[str] = []
        check_count("HR images", len(hrs), EXPECTED, args.allow_partial, problems)
        lrs = {s: official_lr(hrs, lr_root / f"X{s}", s, problems) for s in scales
               if lr_root is not None and (lr_root / f"X{s}").is_dir()}
        fail_if(problems, root)
        for hr in hrs:
            st.place(hr, f"Flickr2K_HR/{hr.stem}{hr.suffix.lower()}", args.link)
        for s, files in lrs.items():
            for lr in files:
                st.place(lr, f"Flickr2K_LR_bicubic/X{s}/{lr.name}", args.link)
        made = [s for s in scales if s not in lrs]
        if made:
            import_restore_lib()
            from restore_lib.data.imresize import bicubic_downsample
            from restore_lib.data.io import ImageReadError, read_image, to_uint8, write_image
            print(f"no official LR for x{', x'.join(map(str, made))} in the input: making it with our MATLAB bicubic")
            for hr in hrs:
                try:
                    img = to_uint8(read_image(hr))
                except ImageReadError as e:
                    raise PrepError(str(e)) from None
                for s in made:
                    write_image(st.claim(f"Flickr2K_LR_bicubic/X{s}/{hr.stem}x{s}.png", hr), bicubic_downsample(img, s))
        st.commit(source=source, params={"scales": scales, "link": args.link},
                  summary={"hr": len(hrs), "lr": {f"X{s}": MADE if s in made else "official" for s in scales}})
    print(f"wrote {out}: {len(hrs)} HR images, LR x{' x'.join(map(str, scales))}")
    return 0


if __name__ == "__main__":
    run_main(main)
