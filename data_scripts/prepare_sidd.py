#!/usr/bin/env python
"""Prepare the SIDD sRGB validation blocks for real-noise denoising
(Abdelhamed et al., CVPR 2018, "A High-Quality Denoising Dataset for
Smartphone Cameras").

Official source: https://abdokamel.github.io/sidd/ (SIDD Benchmark,
"Validation Data": ``ValidationNoisyBlocksSrgb.mat`` and
``ValidationGtBlocksSrgb.mat``; research use, see the site's terms). Each
holds one uint8 array (variable ``ValidationNoisyBlocksSrgb`` /
``ValidationGtBlocksSrgb``) of shape (40 images, 32 blocks, 256, 256, 3).
Both files are verified like archives: ``--sha256-file`` listing both, a
hash recorded by an earlier ``--accept-hash``, or ``--accept-hash``::

    python data_scripts/prepare_sidd.py --noisy-mat ValidationNoisyBlocksSrgb.mat \\
        --gt-mat ValidationGtBlocksSrgb.mat --accept-hash
    python data_scripts/prepare_sidd.py --src folder/with/both/mat/files

Output (default ``<data>/SIDD``; 1,280 pairs, the noisy block is the degraded
one; the blocks are written as PNG, so there is no ``--link``)::

    <out>/val/{degraded,clean}/<image:02d>_<block:02d>.png
    <out>/MANIFEST.json      (written last; see data_scripts/_manifest.py)

Checked: each file holds its variable as a uint8 (images, blocks, H, W, 3)
array, both arrays have the same shape, and the official shape
(``--allow-partial`` accepts others); a bad file is one error naming it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import (PrepError, Stage, add_output_args, check_count, default_data_dir, fail_if,
                     import_restore_lib, run_main, verify_files)

VERSION = "1"

OFFICIAL = "https://abdokamel.github.io/sidd/"
NOISY, GT = "ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb"
SHAPE = (40, 32, 256, 256, 3)


def load_blocks(path: Path, key: str) -> np.ndarray:
    import scipy.io
    try:
        data = scipy.io.loadmat(path, variable_names=[key])
    except (ValueError, NotImplementedError, OSError, TypeError) as e:
        raise PrepError(f"{path}: not a readable MATLAB file ({type(e).__name__}: {e})") from None
    if key not in data:
        raise PrepError(f"{path}: no variable {key} (is it the other SIDD file?)")
    arr = data[key]
    if arr.dtype != np.uint8 or arr.ndim != 5 or arr.shape[-1] != 3:
        raise PrepError(f"{path}: {key} is {arr.dtype} of shape {arr.shape}; expected uint8 (images, blocks, H, W, 3), "
                        f"officially {SHAPE}")
    return arr


def find_mats(args: argparse.Namespace) -> tuple[Path, Path, dict]:
    """The noisy and ground-truth files, and the source for the manifest."""
    if args.src is not None:
        found = []
        for key in (NOISY, GT):
            hits = sorted(args.src.rglob(f"{key}.mat"))
            if len(hits) != 1:
                raise PrepError(f"{args.src}: " + (f"{key}.mat not found" if not hits else
                                                   f"{hits[0]} and {hits[1]}: two {key}.mat; keep one"))
            found.append(hits[0])
        return found[0], found[1], {"src": str(args.src.resolve())}
    if args.noisy_mat is None or args.gt_mat is None:
        raise PrepError(f"no input given: download both validation .mat files from {OFFICIAL} and pass "
                        f"--noisy-mat FILE --gt-mat FILE (or --src DIR holding them)")
    return args.noisy_mat, args.gt_mat, {"files": verify_files(args, [args.noisy_mat, args.gt_mat])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prepare the SIDD sRGB validation blocks (noisy/clean pairs).")
    g = ap.add_argument_group("input (--src, or both files)")
    g.add_argument("--src", type=Path, help=f"a folder holding {NOISY}.mat and {GT}.mat")
    g.add_argument("--noisy-mat", type=Path, help=f"{NOISY}.mat")
    g.add_argument("--gt-mat", type=Path, help=f"{GT}.mat")
    h = ap.add_argument_group("integrity (for --noisy-mat and --gt-mat)")
    h.add_argument("--sha256-file", type=Path, help="sha256sum-style file listing both files' hashes")
    h.add_argument("--accept-hash", action="store_true", help="print, record and accept unknown hashes")
    add_output_args(ap, "SIDD", "shape (40, 32, 256, 256, 3)", link=False)
    args = ap.parse_args(argv)
    if args.src is not None and (args.noisy_mat or args.gt_mat):
        raise PrepError("give either --src or --noisy-mat and --gt-mat, not both")
    out = args.out or default_data_dir() / "SIDD"
    noisy_path, gt_path, source = find_mats(args)
    noisy, gt = load_blocks(noisy_path, NOISY), load_blocks(gt_path, GT)
    if noisy.shape != gt.shape:
        raise PrepError(f"{noisy_path} has shape {noisy.shape} but {gt_path} has {gt.shape}: not a matching pair")
    problems: list[str] = []
    n_img, n_blk, h, w, _ = noisy.shape
    check_count("pairs (images x blocks)", n_img * n_blk, SHAPE[0] * SHAPE[1], args.allow_partial, problems)
    check_count("block height", h, SHAPE[2], args.allow_partial, problems)
    check_count("block width", w, SHAPE[3], args.allow_partial, problems)
    fail_if(problems, noisy_path)
    import_restore_lib()
    from restore_lib.data.io import write_image
    with Stage(out, "prepare_sidd", VERSION) as st:
        for i in range(n_img):
            for b in range(n_blk):
                name = f"{i:02d}_{b:02d}.png"
                write_image(st.claim(f"val/degraded/{name}", f"{noisy_path}[{i}, {b}]"), noisy[i, b])
                write_image(st.claim(f"val/clean/{name}", f"{gt_path}[{i}, {b}]"), gt[i, b])
        st.commit(source=source, params={"shape": list(noisy.shape)},
                  summary={"val": {"pairs": n_img * n_blk, "images": n_img, "blocks": n_blk}})
    print(f"wrote {out}: {n_img * n_blk} val pairs")
    return 0


if __name__ == "__main__":
    run_main(main)
