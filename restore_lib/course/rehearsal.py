"""Rehearse the gpu profile on a CPU, end to end, in minutes.

What a GPU user does is run here at toy scale:

1. tiny fake downloads in each dataset's **official** layout (a few small
   random images per folder, zipped where the real thing is an archive);
2. the data commands of ``data_scripts/README.md`` ("Reproducing the
   reports") on them: every ``prepare_*.py`` script, then
   ``make_report_data.py``, with ``--accept-hash --allow-partial`` since the
   fakes have neither the official hashes nor the official counts;
3. every notebook through papermill with its **gpu** configuration overlaid by
   ``configs/<notebook>/rehearsal.yaml``, which may change only the size of the
   run (steps, crops, batches, device; :data:`restore_lib.course.runner.OVERLAY_KEY`),
   so the models, losses and recipes are the gpu profile's, full size. The
   gpu config's ``data_root`` (``data/...``) is re-rooted into the rehearsal's
   own data folder, so a data command and a config that disagree fail here.

Nothing is written to ``results/`` or ``runs/``: everything goes under
``--work`` (default ``build/rehearsal``)::

    python -m restore_lib.course.rehearsal            # all six notebooks
    python -m restore_lib.course.rehearsal --only 02  # one

``tests/test_rehearsal.py`` runs it in ``make test``. It proves the path works
except for scale: the numbers it prints mean nothing.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np

from ..utils import repo_root
from .runner import NotebookFailed, ParameterError, environ, list_notebooks, load_profile_params, run_notebook

__all__ = ["DATA_COMMANDS", "EXTRA_COMMANDS", "make_fake_downloads", "prepare_data", "rehearse", "main"]

_ACCEPT = ["--accept-hash", "--allow-partial"]

_DIV2K = ["prepare_div2k.py", "--archives-dir", "{dl}/div2k", "--parts", "train", "valid", "--scale", "4",
          "--out", "{data}/DIV2K", *_ACCEPT]
_SET14 = ["prepare_sr_benchmarks.py", "--name", "Set14", "--archive", "{dl}/Set14.zip", "--scales", "4",
          "--out", "{data}/Set14", *_ACCEPT]
_GOPRO = ["prepare_gopro.py", "--archive", "{dl}/GOPRO_Large.zip", "--out", "{data}/GoPro", *_ACCEPT]

#: per notebook, the data commands of data_scripts/README.md ({dl}: the downloads, {data}: the data folder, which
#: is also $RESTORE_DATA, so make_report_data finds its sources in their default folders as on a user's machine);
#: the fakes stand in for the official archives, hence --accept-hash --allow-partial on every prepare script
DATA_COMMANDS: dict[str, list[list[str]]] = {
    "00_quickstart": [],
    "01_promptir_rain_snow": [
        ["prepare_hw4.py", "--src", "{dl}/hw4_realse_dataset", "--out", "{data}/hw4", "--val-ratio", "0.005",
         "--allow-partial"]],
    "02_stripformer_deblur": [_GOPRO],
    "03_restoravision_sr_deblur": [
        _DIV2K, _SET14, _GOPRO,
        ["make_report_data.py", "--report", "restoravision", "--out", "{data}/restoravision"]],
    "04_diffir_two_stage": [
        _DIV2K, _SET14, _GOPRO,
        ["prepare_flickr2k.py", "--archive", "{dl}/Flickr2K.tar", "--out", "{data}/Flickr2K", *_ACCEPT],
        ["make_report_data.py", "--report", "diffir", "--out", "{data}/diffir", "--flickr2k", "{data}/Flickr2K"]],
    "05_ptgrm_priors": [
        ["prepare_rain100l.py", "--split", "train", "--archive", "{dl}/RainTrainL.zip", "--out", "{data}/Rain100L",
         *_ACCEPT],
        ["prepare_rain100l.py", "--split", "test", "--archive", "{dl}/Rain100L.zip", "--out", "{data}/Rain100L",
         *_ACCEPT],
        ["prepare_rain13k.py", "--archive", "{dl}/train.zip", "{dl}/test.zip", "--out", "{data}/Rain13K", *_ACCEPT],
        ["prepare_lol.py", "--archive", "{dl}/LOLdataset.zip", "--out", "{data}/LOL", *_ACCEPT],
        ["prepare_hide.py", "--archive", "{dl}/HIDE_dataset.zip", "--out", "{data}/HIDE", *_ACCEPT],
        ["prepare_denoise.py", "--name", "BSD400", "--src", "{dl}/BSD400", "--out", "{data}/BSD400",
         "--allow-partial"],
        ["prepare_denoise.py", "--name", "CBSD68", "--src", "{dl}/CBSD68", "--out", "{data}/CBSD68",
         "--allow-partial"],
        _GOPRO,
        ["make_report_data.py", "--report", "ptgrm", "--out", "{data}/ptgrm", "--denoise-train", "{data}/BSD400"]],
}


# ------------------------------------------------------------------ fake downloads
#: a dataset of the reports' tables that no notebook reads yet (SIDD validation blocks: PTG-RM's real-noise table,
#: whose training set, SIDD-Medium, has no script here): prepared and loaded with load_pairs, the loader the
#: notebooks use, so its script's output is proven loadable too
EXTRA_COMMANDS: dict[str, list[str]] = {
    "SIDD": ["prepare_sidd.py", "--noisy-mat", "{dl}/ValidationNoisyBlocksSrgb.mat", "--gt-mat",
             "{dl}/ValidationGtBlocksSrgb.mat", "--out", "{data}/SIDD", *_ACCEPT],
}


def _png(path: Path, rng: np.random.Generator, h: int, w: int, grey: bool = False) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w) if grey else (h, w, 3), dtype=np.uint8)).save(path)


def _pack(folder: Path, archive: Path) -> Path:
    """``folder`` (its name as the top folder) as a zip, or a tar for a ``.tar`` name."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if archive.suffix == ".tar":
        with tarfile.open(archive, "w") as tf:
            for p in files:
                tf.add(p, p.relative_to(folder.parent).as_posix())
    else:
        with zipfile.ZipFile(archive, "w") as zf:
            for p in files:
                zf.write(p, p.relative_to(folder.parent).as_posix())
    return archive


def _pairs(root: Path, rng, n: int, deg: str, clean: str, size: int = 32, names=None) -> None:
    """``n`` pairs in ``root/deg`` and ``root/clean``; ``names(i)``: (degraded name, clean name), default ``i.png``."""
    for i in range(n):
        d_name, c_name = names(i) if names else (f"{i + 1}.png",) * 2
        _png(root / deg / d_name, rng, size, size)
        _png(root / clean / c_name, rng, size, size)


def make_fake_downloads(dl: Path, seed: int = 0) -> Path:
    """Write the fake downloads under ``dl``: official file names and layouts, a few small random images each."""
    rng = np.random.default_rng(seed)
    st = dl / "unpacked"
    # course HW4: handed out as a folder
    hw4 = dl / "hw4_realse_dataset"
    for kind in ("rain", "snow"):
        _pairs(hw4 / "train", rng, 4, "degraded", "clean", 64,
               names=lambda i, k=kind: (f"{k}-{i + 1}.png", f"{k}_clean-{i + 1}.png"))
    for n in range(2):
        _png(hw4 / "test/degraded" / f"{n}.png", rng, 64, 64)
    # GoPro: GOPRO_Large/<split>/<scene>/{blur,blur_gamma,sharp}/<frame>.png
    scenes = {"train": {"GOPR0372_07_00": 2, "GOPR0374_11_00": 1}, "test": {"GOPR0384_11_00": 2, "GOPR0385_11_01": 1}}
    for split, per_scene in scenes.items():
        for scene, n in per_scene.items():
            for f in range(n):
                for side in ("blur", "blur_gamma", "sharp"):
                    _png(st / "GOPRO_Large" / split / scene / side / f"{f:06d}.png", rng, 64, 64)
    _pack(st / "GOPRO_Large", dl / "GOPRO_Large.zip")
    # DIV2K: one zip per part and kind; Flickr2K: one tar; Set14: HR images only (LR made by the script)
    (dl / "div2k").mkdir(parents=True, exist_ok=True)
    for part, numbers in (("train", (1, 2)), ("valid", (801,))):
        for n in numbers:
            _png(st / f"DIV2K_{part}_HR" / f"{n:04d}.png", rng, 64, 64)
            _png(st / f"DIV2K_{part}_LR_bicubic" / "X4" / f"{n:04d}x4.png", rng, 16, 16)
        _pack(st / f"DIV2K_{part}_HR", dl / "div2k" / f"DIV2K_{part}_HR.zip")
        _pack(st / f"DIV2K_{part}_LR_bicubic", dl / "div2k" / f"DIV2K_{part}_LR_bicubic_X4.zip")
    for n in (1, 2):
        _png(st / "Flickr2K/Flickr2K_HR" / f"{n:06d}.png", rng, 64, 64)
        _png(st / "Flickr2K/Flickr2K_LR_bicubic/X4" / f"{n:06d}x4.png", rng, 16, 16)
    _pack(st / "Flickr2K", dl / "Flickr2K.tar")
    for name in ("baboon", "comic"):
        _png(st / "Set14/original" / f"{name}.png", rng, 48, 48)
    _pack(st / "Set14", dl / "Set14.zip")
    # deraining: Rain100L's rain-N / norain-N names; Rain13K as repacked by Restormer (input / target)
    for split, n in (("RainTrainL", 3), ("Rain100L", 2)):
        _pairs(st / split, rng, n, ".", ".", names=lambda i: (f"rain-{i + 1}.png", f"norain-{i + 1}.png"))
        _pack(st / split, dl / f"{split}.zip")
    _pairs(st / "train/Rain13K", rng, 3, "input", "target")
    _pack(st / "train", dl / "train.zip")
    for part in ("Test100", "Rain100H", "Rain100L"):
        _pairs(st / "test" / part, rng, 2, "input", "target")
    _pack(st / "test", dl / "test.zip")
    # LOL v1: our485 / eval15 with low / high
    _pairs(st / "LOLdataset/our485", rng, 3, "low", "high")
    _pairs(st / "LOLdataset/eval15", rng, 2, "low", "high")
    _pack(st / "LOLdataset", dl / "LOLdataset.zip")
    # SIDD validation blocks (two .mat files; official shape (40, 32, 256, 256, 3)); HIDE (close-ups / long-shot)
    from scipy.io import savemat

    for key, fname in (("ValidationNoisyBlocksSrgb", "ValidationNoisyBlocksSrgb.mat"),
                       ("ValidationGtBlocksSrgb", "ValidationGtBlocksSrgb.mat")):
        savemat(dl / fname, {key: rng.integers(0, 256, (2, 2, 32, 32, 3), dtype=np.uint8)})
    for shot, names in (("test-close-ups", ("0001_a.png", "0002_a.png")), ("test-long-shot", ("0003_b.png",))):
        for name in names:
            _png(st / "HIDE_dataset/test" / shot / name, rng, 32, 32)
            _png(st / "HIDE_dataset/GT" / name, rng, 32, 32)
    _pack(st / "HIDE_dataset", dl / "HIDE_dataset.zip")
    # denoising: clean images only (BSD400 grey, CBSD68 colour), as folders
    for name, n, grey in (("BSD400", 8, True), ("CBSD68", 2, False)):  # 8: the batch of the model prior's fallback
        for i in range(n):
            _png(dl / name / f"test{i + 1:03d}.png", rng, 64, 64, grey=grey)  # 00's 64 px crops (the model prior)
    return dl


# ------------------------------------------------------------------ steps
def prepare_data(stem: str, dl: Path, data: Path, log=print, commands=None) -> None:
    """Run the notebook's data commands (or ``commands``) as a user would: one process each."""
    scripts = repo_root() / "data_scripts"
    for cmd in DATA_COMMANDS[stem] if commands is None else commands:
        argv = [sys.executable, str(scripts / cmd[0])] + [a.format(dl=dl, data=data) for a in cmd[1:]]
        log(f"[{stem}] $ {' '.join(argv[1:])}")
        done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "RESTORE_DATA": str(data)})
        if done.returncode != 0:
            raise NotebookFailed(f"{stem}: data command failed ({done.returncode}): {' '.join(argv[1:])}\n"
                                 f"{(done.stdout + done.stderr).strip()[-2000:]}")


def rehearsal_params(nb_path: Path, data: Path) -> dict:
    """The rehearsal profile's parameters, with the gpu config's ``data_root`` moved into ``data``."""
    params = load_profile_params(nb_path, "rehearsal")
    root = params.get("data_root")
    if root is not None:
        if not str(root).startswith("data/"):
            raise ParameterError(f"configs/{nb_path.stem}/gpu.yaml: data_root {root!r} is not under data/, where "
                                 f"data_scripts/README.md puts every prepared folder")
        params["data_root"] = str(data / str(root)[len("data/"):])
    return params


def rehearse(nb_path: Path, work: Path, *, timeout: int | None = 900, log=print) -> Path:
    """Fake downloads → data commands → the notebook (rehearsal profile) under ``work``; return its metrics.json."""
    stem = nb_path.stem
    dl, data = work / "downloads", work / "data"
    if not (dl / "GOPRO_Large.zip").is_file():
        make_fake_downloads(dl)
    prepare_data(stem, dl, data, log)
    params = rehearsal_params(nb_path, data)
    started = time.time()
    with environ({"RESTORE_RUNS_DIR": str(work / "runs"), "RESTORE_RESULTS_DIR": str(work / "results")}):
        metrics = run_notebook(nb_path, "rehearsal", params=params, timeout=timeout,
                               out_dir=work / "results" / stem, executed=work / "executed" / f"{stem}.ipynb")
    log(f"[{stem}] rehearsal ok in {time.time() - started:.0f} s -> {metrics}")
    return metrics


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="notebook numbers or stems, e.g. 02 03")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default build/rehearsal)")
    args = ap.parse_args(argv)
    work = (args.work or repo_root() / "build" / "rehearsal").resolve()
    notebooks = [nb for nb in list_notebooks() if not args.only or any(nb.stem.startswith(o) for o in args.only)]
    if not notebooks:
        ap.error(f"--only {args.only}: no such notebook")
    os.makedirs(work, exist_ok=True)
    failures = []
    for nb in notebooks:
        try:
            rehearse(nb, work)
        except (NotebookFailed, ParameterError) as e:
            failures.append(str(e))
            print(f"[{nb.stem}] FAILED: {e}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
