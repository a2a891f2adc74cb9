"""data_scripts/make_report_data.py: the report data folders of notebooks 03-05 built from tiny prepared
datasets (made by the real preparation scripts where they exist, else staged in their documented layout)."""
import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "data_scripts"
sys.path.insert(0, str(SCRIPTS))

import _common  # noqa: E402
import make_report_data  # noqa: E402
import prepare_div2k  # noqa: E402
import prepare_gopro  # noqa: E402
import prepare_rain100l  # noqa: E402
import prepare_sr_benchmarks  # noqa: E402
from restore_lib.data.manifest import PrepError, verify_prepared  # noqa: E402
from restore_lib.data.pairs import load_pairs  # noqa: E402

GOPRO_SCENES = {"train": {"GOPR0372_07_00": 3, "GOPR0374_11_01": 2},
                "test": {"GOPR0384_11_00": 3, "GOPR0385_11_01": 2}}


@pytest.fixture(autouse=True)
def _no_default_data(tmp_path, monkeypatch):
    """The default source folders (<data>/GoPro, ...) are in an empty folder: only what a test gives counts."""
    monkeypatch.setenv("RESTORE_DATA", str(tmp_path / "no_data"))


def _png(path: Path, h: int = 24, w: int = 32, seed: int = 0, grey: bool = False, lo: int = 0, hi: int = 256):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (h, w) if grey else (h, w, 3)
    Image.fromarray(np.random.default_rng(seed).integers(lo, hi, shape, dtype=np.uint8)).save(path)
    return path


def _staged(out: Path, script: str, files: dict) -> Path:
    """A prepared folder of a script not written yet, in its documented layout: {rel: png kwargs}."""
    scratch = out.parent / f"{out.name}_raw"
    with _common.Stage(out, script, "1") as st:
        for rel, kw in files.items():
            st.place(_png(scratch / rel, **kw), rel, "copy")
        st.commit(source={"src": str(scratch)}, params={"channels": 3}, summary={"files": len(files)})
    return out


def _gopro(tmp: Path) -> Path:
    raw = tmp / "raw_gopro" / "GOPRO_Large"
    for split, scenes in GOPRO_SCENES.items():
        for i, (scene, n) in enumerate(scenes.items()):
            for f in range(n):
                for side in ("blur", "sharp"):
                    _png(raw / split / scene / side / f"{f + 47:06d}.png", seed=100 * i + 2 * f + (side == "sharp"))
    out = tmp / "GoPro"
    assert prepare_gopro.main(["--src", str(raw.parent), "--out", str(out), "--allow-partial"]) == 0
    return out


def _div2k(tmp: Path, train=(1, 2, 3)) -> Path:
    raw = tmp / "raw_div2k"
    for part, numbers in (("train", train), ("valid", (801, 802))):
        for n in numbers:
            _png(raw / f"DIV2K_{part}_HR" / f"{n:04d}.png", h=40, w=48, seed=n)
            _png(raw / f"DIV2K_{part}_LR_bicubic" / "X4" / f"{n:04d}x4.png", h=10, w=12, seed=n)
    out = tmp / "DIV2K"
    assert prepare_div2k.main(["--src", str(raw), "--out", str(out), "--allow-partial"]) == 0
    return out


def _set14(tmp: Path) -> Path:
    raw = tmp / "raw_set14" / "Set14" / "original"
    for i, name in enumerate(("baboon", "comic")):
        _png(raw / f"{name}.png", h=50, w=63, seed=i)
    out = tmp / "Set14"
    assert prepare_sr_benchmarks.main(["--name", "Set14", "--src", str(raw.parent.parent), "--scales", "4",
                                       "--out", str(out), "--allow-partial"]) == 0
    return out


def _rain100l(tmp: Path) -> Path:
    out = tmp / "Rain100L"
    for split, n in (("train", 3), ("test", 2)):
        raw = tmp / f"raw_rain_{split}"
        for k in range(1, n + 1):
            _png(raw / f"rain-{k}.png", seed=k)
            _png(raw / f"norain-{k}.png", seed=50 + k)
        assert prepare_rain100l.main(["--split", split, "--src", str(raw), "--out", str(out),
                                      "--allow-partial"]) == 0
    return out


def _flickr2k(tmp: Path) -> Path:
    return _staged(tmp / "Flickr2K", "prepare_flickr2k",
                   {**{f"Flickr2K_HR/{n:06d}.png": {"h": 40, "w": 48, "seed": n} for n in (1, 2)},
                    **{f"Flickr2K_LR_bicubic/X4/{n:06d}x4.png": {"h": 10, "w": 12, "seed": n} for n in (1, 2)}})


def _paired(tmp: Path, name: str, script: str, parts: dict) -> Path:
    return _staged(tmp / name, script, {f"{part}/{side}/{k}.png": {"seed": 7 * k + (side == "clean")}
                                        for part, n in parts.items() for k in range(n)
                                        for side in ("degraded", "clean")})


def _clean_set(tmp: Path, name: str, n: int, grey: bool = False) -> Path:
    # mid-grey images: little clipping, so the noise std stays about sigma/255
    return _staged(tmp / name, "prepare_denoise",
                   {f"clean/{name.lower()}{k}.png": {"h": 48, "w": 48, "seed": k, "grey": grey, "lo": 96, "hi": 160}
                    for k in range(n)})


def _run(*args) -> int:
    return make_report_data.main([str(a) for a in args])


def _load_all(root: Path, tasks: dict) -> dict:
    """{(task, split): pairs}, every split loaded by the notebooks' loader with warnings as errors."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for task, splits in tasks.items():
            for split in splits:
                out[task, split] = load_pairs(task, split, data_root=root / task)
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ reports
def test_restoravision_links_sr_and_gopro_with_provenance(tmp_path):
    gopro, div2k, set14 = _gopro(tmp_path), _div2k(tmp_path), _set14(tmp_path)
    out = tmp_path / "data" / "restoravision"
    assert _run("--report", "restoravision", "--out", out, "--gopro", gopro, "--div2k", div2k,
                "--sr-test", set14) == 0
    pairs = _load_all(out, {"sr_x4": ("train", "val", "test"), "motion_blur": ("train", "val", "test")})
    assert [len(pairs["sr_x4", s]) for s in ("train", "val", "test")] == [3, 2, 2]
    for split in ("train", "val", "test"):
        for name, lq, gt in pairs["sr_x4", split]:
            assert gt.shape == (4 * lq.shape[0], 4 * lq.shape[1], 3), (split, name)
    assert pairs["sr_x4", "test"][0][2].shape == (48, 60, 3)            # Set14 GTmod4 (prepared with --scales 4)
    assert len(pairs["motion_blur", "train"]) == 5 and len(pairs["motion_blur", "test"]) == 5
    assert sorted(n for n, _, _ in pairs["motion_blur", "val"]) == ["GOPR0384_11_00_000047.png",
                                                                      "GOPR0385_11_01_000047.png"]
    # the pairs are the prepared files: blur -> degraded, sharp -> clean, as absolute symlinks
    link = out / "motion_blur/test/degraded/GOPR0385_11_01_000048.png"
    assert link.is_symlink() and Path(os.readlink(link)).is_absolute()
    assert link.resolve() == (gopro / "test/GOPR0385_11_01/blur/000048.png").resolve()
    assert (out / "sr_x4/train/degraded/0002.png").resolve() == (div2k / "DIV2K_train_LR_bicubic/X4/0002x4.png"
                                                                  ).resolve()
    manifest = verify_prepared(out / "motion_blur", "make_report_data")
    assert manifest["summary"] == {"train": {"pairs": 5}, "val": {"pairs": 2}, "test": {"pairs": 5}}
    assert manifest["source"]["prepared"] == [{"option": "--gopro", "folder": str(gopro.resolve()),
                                               "script": "prepare_gopro", "version": prepare_gopro.VERSION,
                                               "manifest_sha256": _sha(gopro / "MANIFEST.json")}]
    sr = verify_prepared(out / "sr_x4", "make_report_data")["source"]["prepared"]
    assert {(r["option"], r["script"], r["manifest_sha256"]) for r in sr} == {
        ("--div2k", "prepare_div2k", _sha(div2k / "MANIFEST.json")),
        ("--sr-test", "prepare_sr_benchmarks", _sha(set14 / "MANIFEST.json"))}


def test_diffir_trains_sr_on_df2k_when_flickr2k_is_given(tmp_path):
    gopro, div2k, set14, flickr = _gopro(tmp_path), _div2k(tmp_path), _set14(tmp_path), _flickr2k(tmp_path)
    out = tmp_path / "diffir"
    assert _run("--report", "diffir", "--out", out, "--gopro", gopro, "--div2k", div2k, "--sr-test", set14,
                "--flickr2k", flickr, "--link", "copy") == 0
    assert sorted(p.name for p in out.iterdir()) == ["gopro_blur", "sr_x4"]
    pairs = _load_all(out, {"sr_x4": ("train", "val", "test"), "gopro_blur": ("train", "val", "test")})
    assert [n for n, _, _ in pairs["sr_x4", "train"]] == ["0001.png", "0002.png", "0003.png",
                                                            "flickr2k_000001.png", "flickr2k_000002.png"]
    assert all(gt.shape[0] == 4 * lq.shape[0] for _, lq, gt in pairs["sr_x4", "train"])
    assert len(pairs["gopro_blur", "val"]) == 2
    copied = out / "sr_x4/train/clean/flickr2k_000002.png"
    assert not copied.is_symlink() and copied.read_bytes() == (flickr / "Flickr2K_HR/000002.png").read_bytes()
    options = {r["option"] for r in verify_prepared(out / "sr_x4")["source"]["prepared"]}
    assert options == {"--div2k", "--flickr2k", "--sr-test"}


def test_ptgrm_builds_every_task_from_its_source(tmp_path):
    gopro, rain100l = _gopro(tmp_path), _rain100l(tmp_path)
    rain13k = _paired(tmp_path, "Rain13K", "prepare_rain13k",
                      {"train": 4, "test100": 1, "test1200": 1, "test2800": 1, "rain100h": 2, "rain100l": 3})
    lol = _paired(tmp_path, "LOL", "prepare_lol", {"train": 3, "test": 2})
    bsd, wed, cbsd = _clean_set(tmp_path, "BSD400", 2, grey=True), _clean_set(tmp_path, "WED", 3), \
        _clean_set(tmp_path, "CBSD68", 2)
    out = tmp_path / "ptgrm"
    assert _run("--report", "ptgrm", "--out", out, "--gopro", gopro, "--rain100l", rain100l, "--rain13k", rain13k,
                "--lol", lol, "--denoise-train", bsd, wed, "--denoise-test", cbsd) == 0
    tasks = ["lowlight", "motion_blur", "noise15", "noise25", "noise50", "rain_heavy", "rain_light"]
    assert sorted(p.name for p in out.iterdir()) == tasks
    pairs = _load_all(out, {t: ("train", "test") for t in tasks})
    assert all(sorted(p.name for p in (out / t).iterdir()) == ["MANIFEST.json", "test", "train"] for t in tasks)
    counts = {k: len(v) for k, v in pairs.items()}
    assert counts["rain_light", "train"] == 3 and counts["rain_light", "test"] == 2     # Rain100L before Rain13K
    assert counts["rain_heavy", "train"] == 4 and counts["rain_heavy", "test"] == 2     # Rain13K train / rain100h
    assert counts["motion_blur", "train"] == 5 and counts["lowlight", "test"] == 2
    rl = verify_prepared(out / "rain_light")["source"]["prepared"]
    assert [r["folder"] for r in rl] == [str((rain100l / s).resolve()) for s in ("train", "test")]
    assert [r["manifest_sha256"] for r in rl] == [_sha(rain100l / s / "MANIFEST.json") for s in ("train", "test")]
    # several folders for one option: names prefixed by the folder's name; the grey set loads as RGB
    assert [n for n, _, _ in pairs["noise25", "train"]] == ["BSD400_bsd4000.png", "BSD400_bsd4001.png",
                                                              "WED_wed0.png", "WED_wed1.png", "WED_wed2.png"]
    assert [n for n, _, _ in pairs["noise25", "test"]] == ["cbsd680.png", "cbsd681.png"]
    # only Rain13K given: rain_light is its train / rain100l parts
    out2 = tmp_path / "ptgrm13k"
    assert _run("--report", "ptgrm", "--out", out2, "--rain13k", rain13k) == 0
    assert sorted(p.name for p in out2.iterdir()) == ["rain_heavy", "rain_light"]
    assert len(_load_all(out2, {"rain_light": ("test",)})["rain_light", "test"]) == 3


def test_noise_is_seeded_per_file_and_has_the_right_std(tmp_path):
    grey, rgb = _clean_set(tmp_path, "BSD400", 2, grey=True), _clean_set(tmp_path, "CBSD68", 2)

    def build(out, *extra):
        assert _run("--report", "ptgrm", "--out", tmp_path / out, "--denoise-train", grey,
                    "--denoise-test", rgb, *extra) == 0
        return tmp_path / out

    a, b, c = build("a"), build("b", "--tasks", "noise25", "noise15"), build("c", "--seed", "1")
    name = "noise25/train/degraded/bsd4001.png"
    assert (a / name).read_bytes() == (b / name).read_bytes()                       # same seed: same bytes
    assert (a / name).read_bytes() != (c / name).read_bytes()                       # another seed: other noise
    assert (a / name).read_bytes() != (a / name.replace("25", "15", 1)).read_bytes()
    # the documented convention: degrade(task) of the clean image as the loaders read it, seeded per file
    from restore_lib.data.degradations import degrade
    from restore_lib.data.embedded import item_seed
    from restore_lib.data.io import read_image, to_uint8
    expected = degrade("noise25", read_image(grey / "clean/bsd4001.png"), item_seed(0, "noise25", "bsd4001.png", 0))
    assert np.array_equal(np.asarray(Image.open(a / name)), to_uint8(expected))
    # the noise of each task is drawn independently (not one pattern scaled by sigma)
    r15, r25 = (np.asarray(Image.open(a / f"noise{s}/test/degraded/cbsd680.png"), dtype=float)
                - np.asarray(Image.open(rgb / "clean/cbsd680.png"), dtype=float) for s in (15, 25))
    assert abs(np.corrcoef(r15.ravel(), r25.ravel())[0, 1]) < 0.2
    assert not (a / "noise25/test/degraded/cbsd681.png").is_symlink()               # written, not linked
    assert (a / "noise25/test/clean/cbsd681.png").is_symlink()
    for sigma in (15, 25, 50):
        diffs = []
        for split in ("train", "test"):
            for _, lq, gt in _load_all(a, {f"noise{sigma}": (split,)})[f"noise{sigma}", split]:
                assert lq.shape == gt.shape and lq.shape[2] == 3
                assert np.allclose(lq * 255, np.round(lq * 255), atol=1e-3)       # 8-bit levels
                diffs.append((lq - gt).ravel())
        std = np.concatenate(diffs).std()
        assert abs(std - sigma / 255) < 0.05 * sigma / 255, (sigma, std * 255)
    # a grey clean set: the noise is drawn per channel (degraded stored as RGB), the clean file left grey
    noisy = np.asarray(Image.open(a / name))
    assert noisy.ndim == 3 and not np.array_equal(noisy[..., 0], noisy[..., 1])
    assert Image.open(a / "noise25/train/clean/bsd4001.png").mode == "L"
    assert verify_prepared(a / "noise25")["params"]["seed"] == 0


# ------------------------------------------------------------------ errors and reruns
def test_missing_source_is_one_error_naming_the_option(tmp_path):
    div2k, set14 = _div2k(tmp_path), _set14(tmp_path)
    out = tmp_path / "restoravision"
    with pytest.raises(PrepError, match="motion_blur needs --gopro"):
        _run("--report", "restoravision", "--out", out, "--div2k", div2k, "--sr-test", set14)
    assert not out.exists()                                                         # nothing written
    missing = tmp_path / "nowhere" / "GoPro"
    with pytest.raises(PrepError) as e:
        _run("--report", "restoravision", "--out", out, "--div2k", div2k, "--sr-test", set14, "--gopro", missing)
    assert f"--gopro {missing}" in str(e.value) and "python data_scripts/prepare_gopro.py" in str(e.value)
    assert not out.exists()
    with pytest.raises(PrepError, match="lowlight needs --lol"):
        _run("--report", "ptgrm", "--out", tmp_path / "ptgrm", "--tasks", "lowlight", "--div2k", div2k)
    with pytest.raises(PrepError, match="rain_light needs --rain100l or --rain13k"):
        _run("--report", "ptgrm", "--out", tmp_path / "ptgrm")
    with pytest.raises(PrepError, match="--tasks: lowlight not in report diffir"):
        _run("--report", "diffir", "--out", tmp_path / "d", "--tasks", "lowlight")
    # --report restoravision --tasks sr_x4 needs no GoPro
    assert _run("--report", "restoravision", "--out", out, "--tasks", "sr_x4", "--div2k", div2k,
                "--sr-test", set14) == 0
    assert sorted(p.name for p in out.iterdir()) == ["sr_x4"]


def test_a_source_changed_since_its_manifest_is_refused(tmp_path):
    gopro = _gopro(tmp_path)
    out = tmp_path / "ptgrm"
    assert _run("--report", "ptgrm", "--out", out, "--gopro", gopro) == 0
    before = (out / "motion_blur/MANIFEST.json").read_bytes()
    _png(gopro / "train/GOPR0372_07_00/blur/000099.png")                            # a file the manifest lacks
    with pytest.raises(PrepError) as e:
        _run("--report", "ptgrm", "--out", out, "--gopro", gopro)
    assert f"--gopro {gopro}" in str(e.value) and "files differ" in str(e.value)
    assert "prepare_gopro.py" in str(e.value)
    assert (out / "motion_blur/MANIFEST.json").read_bytes() == before               # the old folder is kept
    # a folder of another script given for an option
    with pytest.raises(PrepError, match="--lol .*not by 'prepare_lol'"):
        _run("--report", "ptgrm", "--out", out, "--tasks", "lowlight", "--lol", _rain100l(tmp_path) / "train")


def test_rerun_replaces_the_task_folder_and_the_loader_sees_changes(tmp_path):
    div2k, set14 = _div2k(tmp_path), _set14(tmp_path)
    out = tmp_path / "restoravision"
    args = ["--report", "restoravision", "--out", out, "--tasks", "sr_x4", "--div2k", div2k, "--sr-test", set14]
    assert _run(*args) == 0
    assert len(list((out / "sr_x4/train/clean").iterdir())) == 3
    _div2k(tmp_path / "v2", train=(4, 5))                                           # a new DIV2K elsewhere
    assert _run(*args[:-4], "--div2k", tmp_path / "v2" / "DIV2K", "--sr-test", set14, "--link", "hardlink") == 0
    assert sorted(p.name for p in (out / "sr_x4/train/clean").iterdir()) == ["0004.png", "0005.png"]  # no stale
    assert not (out / "sr_x4/train/clean/0004.png").is_symlink()
    assert not [p for p in out.iterdir() if p.name != "sr_x4"]                      # no staging leftovers
    assert len(_load_all(out, {"sr_x4": ("train",)})["sr_x4", "train"]) == 2
    # the notebook's loader refuses the folder once a linked source is gone (broken symlinks)
    assert _run(*args) == 0
    (div2k / "DIV2K_train_HR/0001.png").unlink()
    with pytest.raises(PrepError, match="make_report_data.py --report"):
        load_pairs("sr_x4", "train", data_root=out / "sr_x4")
    # a hand-made folder (no manifest) is never overwritten
    _png(tmp_path / "hand" / "sr_x4" / "train" / "clean" / "x.png")
    with pytest.raises(PrepError, match="never overwritten"):
        _run("--report", "restoravision", "--out", tmp_path / "hand", "--tasks", "sr_x4",
             "--div2k", tmp_path / "v2" / "DIV2K", "--sr-test", set14)


def test_sr_test_set_without_scale_4_is_refused(tmp_path):
    raw = tmp_path / "raw" / "original"
    _png(raw / "baboon.png", h=50, w=63)
    set14 = tmp_path / "Set14"
    assert prepare_sr_benchmarks.main(["--name", "Set14", "--src", str(raw.parent), "--scales", "2", "3",
                                       "--out", str(set14), "--allow-partial"]) == 0
    with pytest.raises(PrepError, match=r"--sr-test: .*Set14: prepared with --scales \[2, 3\], without 4"):
        _run("--report", "diffir", "--out", tmp_path / "d", "--tasks", "sr_x4", "--div2k", _div2k(tmp_path),
             "--sr-test", set14)


def test_out_inside_a_source_is_refused(tmp_path):
    gopro = _gopro(tmp_path)
    with pytest.raises(PrepError, match="overlap"):
        _run("--report", "ptgrm", "--out", gopro / "report", "--gopro", gopro)
    verify_prepared(gopro, "prepare_gopro")


def test_command_line_uses_the_default_folders_and_reports_errors_in_one_line(tmp_path):
    data = tmp_path / "data"
    _gopro(data)
    env = {**os.environ, "RESTORE_DATA": str(data)}
    script = str(SCRIPTS / "make_report_data.py")
    ok = subprocess.run([sys.executable, script, "--report", "ptgrm", "--out", str(tmp_path / "p")],
                        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "wrote" in ok.stdout and "skipped lowlight: lowlight needs --lol" in ok.stdout
    assert json.loads((tmp_path / "p/motion_blur/MANIFEST.json").read_text())["source"]["prepared"][0]["folder"] \
        == str((data / "GoPro").resolve())
    bad = subprocess.run([sys.executable, script, "--report", "diffir", "--out", str(tmp_path / "d")],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "--div2k" in bad.stderr
    assert "Traceback" not in bad.stderr
