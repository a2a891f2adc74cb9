#!/usr/bin/env python
"""Build the data folder a report's gpu profile reads from prepared datasets.

    python data_scripts/make_report_data.py --report restoravision --out data/restoravision
    python data_scripts/make_report_data.py --report diffir --out data/diffir --flickr2k data/Flickr2K
    python data_scripts/make_report_data.py --report ptgrm --out data/ptgrm --tasks rain_light motion_blur

Notebooks 03-05 read ``<data_root>/<task>/<split>/{degraded,clean}/<name>.png``
(the same file name on both sides). For every task of ``--report`` (the table
``REPORTS`` below) this writes ``<out>/<task>`` with its own ``MANIFEST.json``
(staged and swapped in as a whole, ``_common.Stage``): links (``--link``,
default absolute symlinks) to the files of the prepared folders. Each source
is checked with ``verify_prepared`` first, and the task manifest's ``source``
records every folder used, its script and version and the SHA-256 of its
``MANIFEST.json``. A missing or changed source is one error naming the option,
the folder and the command that prepares it.

Sources are found at their option's folder, else at the default folder under
``<data>`` when that exists. restoravision and diffir need all their tasks
(``--tasks`` restricts); ptgrm builds the tasks whose source is there, and a
task named in ``--tasks`` without its source is an error. ``--flickr2k`` is only
used when given: sr_x4/train is then DF2K (DIV2K train + ``flickr2k_<name>``).
With several folders for one option (``--denoise-train data/BSD400 data/WED``)
each name is prefixed with its folder's name (``BSD400_<name>``).

Noise tasks (noise15/25/50) are written, not linked: the clean image is
placed as ``--link`` says, the degraded one is ``degradations.degrade(task,
clean)`` (clean + Gaussian noise of std sigma/255, clipped and rounded to 8
bits: the embedded dataset's convention) seeded per file with
``embedded.item_seed(--seed, task, file name, 0)`` (SeedSequence of SHA-256
digests, never ``hash()``). The clean image is read as the loaders read it:
a grey image becomes three equal channels, and the noise is drawn for each
channel independently (colour noise, as PromptIR's loader does after
``convert("RGB")``). So a degraded file is always RGB; a grey clean file is
linked as it is (``load_pairs`` reads it as RGB), not expanded on disk.
"""
from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from pathlib import Path

from _common import PrepError, Stage, default_data_dir, list_images, run_main, verify_prepared
from restore_lib.data.degradations import degrade
from restore_lib.data.embedded import item_seed
from restore_lib.data.io import ImageReadError, read_image, write_image
from restore_lib.data.manifest import MANIFEST_NAME, prepare_command

SCRIPT, VERSION = "make_report_data", "1"

# ---------------------------------------------------------------- the table
#: report -> task -> alternatives; an alternative: split -> [(source, part)] (a source of OPTIONAL is
#: used only when its option is given). The first alternative whose sources are given is used.
SR_X4 = {"train": [("div2k", "train"), ("flickr2k", "all")], "val": [("div2k", "valid")],
         "test": [("sr_test", "test")]}
GOPRO_VAL = {"train": [("gopro", "train")], "val": [("gopro", "test_first")], "test": [("gopro", "test")]}
NOISE = {"train": [("denoise_train", "clean")], "test": [("denoise_test", "clean")]}
REPORTS = {
    "restoravision": {"sr_x4": [SR_X4], "motion_blur": [GOPRO_VAL]},                  # notebook 03
    "diffir": {"gopro_blur": [GOPRO_VAL], "sr_x4": [SR_X4]},                           # notebook 04
    "ptgrm": {                                                                          # notebook 05
        "rain_light": [{"train": [("rain100l", "train")], "test": [("rain100l", "test")]},
                       {"train": [("rain13k", "train")], "test": [("rain13k", "rain100l")]}],
        "rain_heavy": [{"train": [("rain13k", "train")], "test": [("rain13k", "rain100h")]}],
        "motion_blur": [{"train": [("gopro", "train")], "test": [("gopro", "test")]}],
        # the paper's deblurring table tests the GoPro-trained networks on HIDE as well
        "hide_blur": [{"train": [("gopro", "train")], "test": [("hide", "test")]}],
        "lowlight": [{"train": [("lol", "train")], "test": [("lol", "test")]}],
        "noise15": [NOISE], "noise25": [NOISE], "noise50": [NOISE],
    },
}
#: reports whose notebook needs every task (ptgrm: the tasks whose source is there)
ALL_TASKS_REQUIRED = {"restoravision", "diffir"}
OPTIONAL = {"flickr2k"}


# ---------------------------------------------------------------- the sources
def _pairs_by_name(base: Path) -> list[tuple[str, Path, Path]]:
    """``<base>/{degraded,clean}/<name>`` pairs (Rain100L, Rain13K, LOL)."""
    deg, cln = ({p.name: p for p in list_images(base / side)} if (base / side).is_dir() else {}
                for side in ("degraded", "clean"))
    if not deg or set(deg) != set(cln):
        odd = sorted(set(deg) ^ set(cln))
        raise PrepError(f"{base}: expected degraded/ and clean/ with the same file names"
                        + (f"; without a partner: {', '.join(odd[:5])}" if odd else "; no images"))
    return [(n, deg[n], cln[n]) for n in sorted(deg)]


def _gopro(folder: Path, manifest: dict, part: str) -> list[tuple[str, Path, Path]]:
    split, first_only = ("test", True) if part == "test_first" else (part, False)
    out = []
    for scene in sorted(p for p in (folder / split).iterdir() if p.is_dir()):
        pairs = [(f"{scene.name}_{b.name}", b, scene / "sharp" / b.name) for b in list_images(scene / "blur")]
        out += pairs[:1] if first_only else pairs
    return out


def _hr_lr(folder: Path, hr_rel: str, lr_rel: str, prefix: str = "") -> list[tuple[str, Path, Path]]:
    hr_dir, lr_dir = folder / hr_rel, folder / lr_rel
    if not hr_dir.is_dir() or not lr_dir.is_dir():
        raise PrepError(f"{folder}: no {hr_rel}/ and {lr_rel}/ (prepared without this part or scale 4?)")
    return [(prefix + hr.name, lr_dir / f"{hr.stem}x4{hr.suffix}", hr) for hr in list_images(hr_dir)]


def _div2k(folder: Path, manifest: dict, part: str):
    return _hr_lr(folder, f"DIV2K_{part}_HR", f"DIV2K_{part}_LR_bicubic/X4")


def _flickr2k(folder: Path, manifest: dict, part: str):
    return _hr_lr(folder, "Flickr2K_HR", "Flickr2K_LR_bicubic/X4", prefix="flickr2k_")


def _sr_test(folder: Path, manifest: dict, part: str):
    params = manifest.get("params", {})
    if 4 not in params.get("scales", []):
        raise PrepError(f"{folder}: prepared with --scales {params.get('scales')}, without 4")
    return [(hr.name, folder / "LRbicx4" / hr.name, hr) for hr in list_images(folder / f"GTmod{params['mod']}")]


def _clean_only(folder: Path, manifest: dict, part: str):
    return [(c.name, None, c) for c in list_images(folder / "clean")]


@dataclass(frozen=True)
class Source:
    option: str
    script: str
    default: tuple[str, ...]              # folder name(s) under <data>
    read: object                          # (folder, manifest, part) -> [(name, degraded or None, clean)]
    per_split: bool = False               # one manifest per <folder>/<part> (Rain100L)


SOURCES = {
    "gopro": Source("--gopro", "prepare_gopro", ("GoPro",), _gopro),
    "div2k": Source("--div2k", "prepare_div2k", ("DIV2K",), _div2k),
    "flickr2k": Source("--flickr2k", "prepare_flickr2k", ("Flickr2K",), _flickr2k),
    "sr_test": Source("--sr-test", "prepare_sr_benchmarks", ("Set14",), _sr_test),
    "rain100l": Source("--rain100l", "prepare_rain100l", ("Rain100L",), lambda f, m, p: _pairs_by_name(f),
                       per_split=True),
    "rain13k": Source("--rain13k", "prepare_rain13k", ("Rain13K",), lambda f, m, p: _pairs_by_name(f / p)),
    "lol": Source("--lol", "prepare_lol", ("LOL",), lambda f, m, p: _pairs_by_name(f / p)),
    "hide": Source("--hide", "prepare_hide", ("HIDE",), lambda f, m, p: _pairs_by_name(f / p)),
    "denoise_train": Source("--denoise-train", "prepare_denoise", ("BSD400", "WED"), _clean_only),
    "denoise_test": Source("--denoise-test", "prepare_denoise", ("CBSD68",), _clean_only),
}


# ---------------------------------------------------------------- planning
def folders_of(args: argparse.Namespace, key: str) -> list[Path] | None:
    """The folders of a source: its option's, else its existing default ones
    (never for an OPTIONAL source); None when it is not there."""
    given = getattr(args, key)
    if given:
        return list(given)
    if key in OPTIONAL:
        return None
    defaults = [default_data_dir() / name for name in SOURCES[key].default]
    return defaults if any(p.exists() for p in defaults) else None


def read_source(args, key: str, part: str, out_task: Path, records: dict) -> list[tuple[str, Path | None, Path]]:
    """The pairs of one part of a source, after verifying its prepared folder(s)."""
    src, folders = SOURCES[key], folders_of(args, key)
    pairs = []
    for folder in folders:
        unit = folder / part if src.per_split else folder
        try:
            manifest = verify_prepared(unit, src.script)
        except PrepError as e:
            raise PrepError(f"{src.option} {unit}: not a verified prepared folder ({e}); prepare it with: "
                            f"{prepare_command(src.script, unit)}") from None
        real = unit.resolve()
        if out_task.is_relative_to(real) or real.is_relative_to(out_task):
            raise PrepError(f"--out: {out_task} and {src.option} {unit} overlap; choose another --out")
        records[str(real)] = {"option": src.option, "folder": str(real), "script": manifest["script"],
                              "version": manifest.get("script_version"),
                              "manifest_sha256": hashlib.sha256((unit / MANIFEST_NAME).read_bytes()).hexdigest()}
        try:
            items = src.read(unit, manifest, part)
        except (PrepError, OSError) as e:
            raise PrepError(f"{src.option}: {e}") from None
        prefix = f"{folder.name}_" if len(folders) > 1 else ""
        pairs += [(prefix + n, d, c) for n, d, c in items]
    return pairs


def choose(args, report: str, task: str) -> dict | None:
    """The task's first alternative whose (non-optional) sources are there."""
    for alt in REPORTS[report][task]:
        if all(folders_of(args, k) for entries in alt.values() for k, _ in entries if k not in OPTIONAL):
            return alt
    return None


def missing_message(report: str, task: str) -> str:
    options = [" + ".join(sorted({SOURCES[k].option for e in alt.values() for k, _ in e if k not in OPTIONAL}))
               for alt in REPORTS[report][task]]
    return f"{task} needs {' or '.join(options)} (not given, and no default folder under {default_data_dir()})"


def plan_task(args, task: str, alt: dict) -> tuple[dict, dict]:
    """{split: [(name, degraded or None, clean)]} and the verified source records."""
    out_task = (args.out / task).resolve()
    records: dict = {}
    plan = {split: [p for k, part in entries if folders_of(args, k) for p in
                    read_source(args, k, part, out_task, records)] for split, entries in alt.items()}
    for split, pairs in plan.items():
        if not pairs:
            raise PrepError(f"{task}/{split}: no images in {', '.join(records)}")
    return plan, records


def write_task(args, report: str, task: str, alt: dict, plan: dict, records: dict) -> None:
    noisy = any(d is None for pairs in plan.values() for _, d, _ in pairs)
    with Stage(args.out / task, SCRIPT, VERSION) as st:
        for split, pairs in plan.items():
            for name, deg, clean in pairs:
                _place(st, clean, f"{split}/clean/{name}", args.link)
                if deg is not None:
                    _place(st, deg, f"{split}/degraded/{name}", args.link)
                    continue
                if clean.suffix.lower() != ".png":
                    raise PrepError(f"{clean}: a noise task needs PNG clean images (8-bit, lossless)")
                try:
                    image = read_image(clean)
                except ImageReadError as e:
                    raise PrepError(str(e)) from None
                noisy_img = degrade(task, image, item_seed(args.seed, task, name, 0))
                write_image(st.claim(f"{split}/degraded/{name}", clean), noisy_img)
        params = {"report": report, "task": task, "link": args.link,
                  "splits": {s: [f"{SOURCES[k].option} {part}" for k, part in e if folders_of(args, k)]
                             for s, e in alt.items()}}
        if noisy:
            params.update(seed=args.seed, noise="degradations.degrade(task) seeded by embedded.item_seed("
                          "seed, task, file name, 0); degraded RGB, clean as prepared (grey read as RGB)")
        st.commit(source={"prepared": list(records.values())}, params=params,
                  summary={s: {"pairs": len(p)} for s, p in plan.items()})


def _place(st: Stage, src: Path, rel: str, mode: str) -> None:
    if not src.is_file():
        raise PrepError(f"{src}: missing (needed for {rel})")
    try:
        st.place(src, rel, mode)
    except OSError as e:
        raise PrepError(f"{src}: cannot {mode} it into {st.out} ({e}); try another --link") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--report", required=True, choices=sorted(REPORTS))
    ap.add_argument("--out", type=Path, required=True, help="the data_root to write (e.g. data/ptgrm)")
    ap.add_argument("--tasks", nargs="+", metavar="TASK", help="build only these tasks of the report")
    ap.add_argument("--link", choices=("symlink", "hardlink", "copy"), default="symlink",
                    help="how the prepared files reach --out (default symlink, absolute targets)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the noise tasks (default 0)")
    g = ap.add_argument_group("prepared sources (default: the folder under <data>, when it exists)")
    for key, src in SOURCES.items():
        g.add_argument(src.option, dest=key, type=Path, nargs="+" if key.startswith("denoise") else None,
                       metavar="DIR", help=f"made by {src.script}.py (" + ("used only when given)" if key in OPTIONAL
                                                                        else f"default <data>/{' <data>/'.join(src.default)})"))
    args = ap.parse_args(argv)
    for key in SOURCES:  # one folder or a list: always a list (or None)
        if getattr(args, key) is not None and not isinstance(getattr(args, key), list):
            setattr(args, key, [getattr(args, key)])
    tasks = REPORTS[args.report]
    unknown = sorted(set(args.tasks or ()) - set(tasks))
    if unknown:
        raise PrepError(f"--tasks: {', '.join(unknown)} not in report {args.report} ({', '.join(tasks)})")
    wanted = args.tasks or list(tasks)
    chosen = {t: choose(args, args.report, t) for t in wanted}
    missing = [t for t, alt in chosen.items() if alt is None]
    if missing and (args.tasks or args.report in ALL_TASKS_REQUIRED or len(missing) == len(wanted)):
        raise PrepError("; ".join(missing_message(args.report, t) for t in missing))
    for t in missing:
        print(f"skipped {t}: {missing_message(args.report, t)}")
    plans = {t: (alt, *plan_task(args, t, alt)) for t, alt in chosen.items() if alt is not None}  # verify all first
    for task, (alt, plan, records) in plans.items():
        write_task(args, args.report, task, alt, plan, records)
        print(f"wrote {args.out / task}: " + ", ".join(f"{len(p)} {s}" for s, p in plan.items()) + " pairs")
    return 0


if __name__ == "__main__":
    run_main(main)
