"""data_scripts/: LOL, SIDD, Rain13K, HIDE, the denoising sets and Flickr2K,
each on a tiny fake archive in its official layout (no network)."""
import hashlib
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPTS = Path(__file__).resolve().parent.parent / "data_scripts"
sys.path.insert(0, str(SCRIPTS))

from _download import VerificationError  # noqa: E402
from _manifest import PrepError  # noqa: E402

from restore_lib.data.manifest import PREPARE_COMMANDS, verify_prepared  # noqa: E402


def _png(path: Path, h: int = 8, w: int = 8, seed: int = 0, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (h, w) if mode == "L" else (h, w, 3)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


def _zip(arc: Path, root: Path) -> Path:
    """Every file below ``root``, stored under its path relative to ``root``."""
    with zipfile.ZipFile(arc, "w") as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    return arc


def _tar(arc: Path, root: Path) -> Path:
    with tarfile.open(arc, "w") as tf:
        for p in sorted(root.iterdir()):
            tf.add(p, p.name)
    return arc


def _names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def _same(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


# ------------------------------------------------------------------ LOL
def _lol(stage: Path) -> Path:
    root = stage / "LOLdataset"
    for split, names in (("our485", (1, 2)), ("eval15", (22,))):
        for n in names:
            _png(root / split / "low" / f"{n}.png", seed=n)
            _png(root / split / "high" / f"{n}.png", seed=100 + n)
    return root


def test_lol_from_archive(tmp_path):
    import prepare_lol
    root = _lol(tmp_path / "stage")
    arc = _zip(tmp_path / "LOLdataset.zip", tmp_path / "stage")
    out = tmp_path / "LOL"
    base = ["--archive", str(arc), "--accept-hash", "--out", str(out)]
    with pytest.raises(PrepError, match="our485 pairs: found 2, the official release has 485"):
        prepare_lol.main(base)
    assert not out.exists()
    assert prepare_lol.main(base + ["--allow-partial"]) == 0
    assert _names(out / "train/degraded") == _names(out / "train/clean") == ["1.png", "2.png"]
    assert _names(out / "test/degraded") == ["22.png"]
    assert _same(out / "train/degraded/2.png", root / "our485/low/2.png")
    assert _same(out / "train/clean/2.png", root / "our485/high/2.png")
    m = verify_prepared(out, "prepare_lol")
    assert m["summary"] == {"train": {"pairs": 2, "from": "our485"}, "test": {"pairs": 1, "from": "eval15"}}
    assert m["source"]["archive"] == "LOLdataset.zip"
    assert m["source"]["sha256"] == hashlib.sha256(arc.read_bytes()).hexdigest()


def test_lol_missing_partner_names_the_file_and_keeps_the_old_output(tmp_path):
    import prepare_lol
    root = _lol(tmp_path / "src")
    out = tmp_path / "LOL"
    argv = ["--src", str(tmp_path / "src"), "--out", str(out), "--allow-partial"]
    assert prepare_lol.main(argv) == 0
    (root / "eval15/high/22.png").unlink()
    with pytest.raises(PrepError, match=f"{root / 'eval15/low/22.png'}: no partner"):
        prepare_lol.main(argv)
    assert verify_prepared(out, "prepare_lol")["summary"]["test"]["pairs"] == 1  # the old folder is intact


# ------------------------------------------------------------------ SIDD
def _mats(folder: Path, noisy_shape=(2, 3, 8, 8, 3), gt_shape=None, noisy_key="ValidationNoisyBlocksSrgb"):
    import scipy.io
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, noisy_shape, dtype=np.uint8)
    gt = rng.integers(0, 256, gt_shape or noisy_shape, dtype=np.uint8)
    scipy.io.savemat(folder / "ValidationNoisyBlocksSrgb.mat", {noisy_key: noisy})
    scipy.io.savemat(folder / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": gt})
    return folder / "ValidationNoisyBlocksSrgb.mat", folder / "ValidationGtBlocksSrgb.mat", noisy, gt


def test_sidd_blocks_become_pairs(tmp_path):
    import prepare_sidd
    noisy_mat, gt_mat, noisy, gt = _mats(tmp_path / "dl")
    out = tmp_path / "SIDD"
    argv = ["--noisy-mat", str(noisy_mat), "--gt-mat", str(gt_mat), "--accept-hash", "--out", str(out)]
    with pytest.raises(PrepError, match="pairs .*found 6, the official release has 1280"):
        prepare_sidd.main(argv)
    assert prepare_sidd.main(argv + ["--allow-partial"]) == 0
    names = [f"{i:02d}_{b:02d}.png" for i in range(2) for b in range(3)]
    assert _names(out / "val/degraded") == _names(out / "val/clean") == names
    assert np.array_equal(np.asarray(Image.open(out / "val/degraded/01_02.png")), noisy[1, 2])
    assert np.array_equal(np.asarray(Image.open(out / "val/clean/01_02.png")), gt[1, 2])
    m = verify_prepared(out, "prepare_sidd")
    assert m["summary"]["val"] == {"pairs": 6, "images": 2, "blocks": 3}
    assert set(m["source"]["files"]) == {"ValidationNoisyBlocksSrgb.mat", "ValidationGtBlocksSrgb.mat"}
    # --src finds both files; the hash recorded by --accept-hash is enforced afterwards
    assert prepare_sidd.main(["--src", str(tmp_path / "dl"), "--out", str(out), "--allow-partial"]) == 0
    _mats(tmp_path / "dl", noisy_shape=(1, 3, 8, 8, 3))
    with pytest.raises(VerificationError, match="ValidationNoisyBlocksSrgb.mat"):
        prepare_sidd.main(argv + ["--allow-partial"])


@pytest.mark.parametrize("case", ["channels", "mismatch", "key", "dtype"])
def test_sidd_bad_mat_names_the_file(tmp_path, case):
    import scipy.io
    import prepare_sidd
    kw = {"channels": {"gt_shape": (2, 3, 8, 8, 1)}, "mismatch": {"gt_shape": (2, 4, 8, 8, 3)},
          "key": {"noisy_key": "noisy"}, "dtype": {}}[case]
    noisy_mat, gt_mat, noisy, _ = _mats(tmp_path / "dl", **kw)
    if case == "dtype":
        scipy.io.savemat(noisy_mat, {"ValidationNoisyBlocksSrgb": noisy.astype(np.float32)})
    bad = noisy_mat if case in ("key", "dtype") else gt_mat
    with pytest.raises(PrepError) as e:
        prepare_sidd.main(["--src", str(tmp_path / "dl"), "--out", str(tmp_path / "out"), "--allow-partial"])
    assert "\n" not in str(e.value), str(e.value)
    if case == "mismatch":  # names both files
        assert str(noisy_mat) in str(e.value) and str(gt_mat) in str(e.value), str(e.value)
    else:
        assert str(e.value).startswith(f"{bad}: "), str(e.value)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ Rain13K
def test_rain13k_two_archives_and_parts(tmp_path):
    import prepare_rain13k
    train, test = tmp_path / "train_stage", tmp_path / "test_stage"
    for n in (1, 2):
        _png(train / "train/Rain13K/input" / f"{n}.png", seed=n)
        _png(train / "train/Rain13K/target" / f"{n}.png", seed=10 + n)
    _png(train / "train/Rain13K/input/3.JPG", seed=3)
    _png(train / "train/Rain13K/target/3.JPG", seed=13)
    for part in ("Rain100L", "Test100"):
        _png(test / "test" / part / "input/5.png", seed=5)
        _png(test / "test" / part / "target/5.png", seed=15)
    arcs = [_zip(tmp_path / "train.zip", train), _zip(tmp_path / "test.zip", test)]
    out = tmp_path / "Rain13K"
    base = ["--archive", *map(str, arcs), "--accept-hash", "--out", str(out)]
    with pytest.raises(PrepError, match="no Test1200, Test2800, Rain100H folder found"):
        prepare_rain13k.main(base + ["--parts", "test100", "test1200", "test2800", "rain100h"])
    assert prepare_rain13k.main(base + ["--allow-partial"]) == 0  # all six asked, three found
    assert sorted(p.name for p in out.iterdir()) == ["MANIFEST.json", "rain100l", "test100", "train"]
    assert _names(out / "train/degraded") == _names(out / "train/clean") == ["1.png", "2.png", "3.jpg"]
    assert _same(out / "train/degraded/2.png", train / "train/Rain13K/input/2.png")
    assert _same(out / "train/clean/2.png", train / "train/Rain13K/target/2.png")
    assert _same(out / "rain100l/clean/5.png", test / "test/Rain100L/target/5.png")
    m = verify_prepared(out, "prepare_rain13k")
    assert m["params"]["parts"] == ["train", "test100", "rain100l"]
    assert m["summary"]["train"] == {"pairs": 3, "from": "Rain13K"}
    assert sorted(m["source"]["archives"]) == ["test.zip", "train.zip"]
    # a wrong hash for one archive stops the run
    sums = tmp_path / "sums.sha256"
    sums.write_text(f"{hashlib.sha256(arcs[0].read_bytes()).hexdigest()}  train.zip\n{'0' * 64}  test.zip\n")
    with pytest.raises(VerificationError, match="test.zip"):
        prepare_rain13k.main(["--archive", *map(str, arcs), "--sha256-file", str(sums), "--out", str(out),
                              "--allow-partial"])


def test_rain13k_duplicate_and_missing_partner_are_named(tmp_path):
    import prepare_rain13k
    src = tmp_path / "Datasets"
    for name in ("7.png", "7.PNG"):
        _png(src / "train/Rain13K/input" / name)
        _png(src / "train/Rain13K/target" / name)
    argv = ["--src", str(src), "--parts", "train", "--out", str(tmp_path / "out"), "--allow-partial"]
    with pytest.raises(PrepError) as e:
        prepare_rain13k.main(argv)
    for name in ("7.PNG", "7.png"):
        assert str(src / "train/Rain13K/input" / name) in str(e.value), str(e.value)
    (src / "train/Rain13K/input/7.PNG").unlink()
    (src / "train/Rain13K/input/7.png").unlink()
    with pytest.raises(PrepError, match=f"{src / 'train/Rain13K/target/7.png'}: no partner"):
        prepare_rain13k.main(argv)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ HIDE
def test_hide_official_layout_counts_shots(tmp_path):
    import prepare_hide
    root = tmp_path / "stage/HIDE_dataset"
    for i, (shot, name) in enumerate((("close-ups", "a.png"), ("close-ups", "b.png"), ("long-shot", "c.png"))):
        _png(root / f"test/test-{shot}" / name, seed=i)
        _png(root / "GT" / name, seed=10 + i)
    _png(root / "GT/train_only.png")  # GT also holds the training frames
    arc = _zip(tmp_path / "HIDE_dataset.zip", tmp_path / "stage")
    out = tmp_path / "HIDE"
    assert prepare_hide.main(["--archive", str(arc), "--accept-hash", "--allow-partial", "--out", str(out)]) == 0
    assert _names(out / "test/degraded") == _names(out / "test/clean") == ["a.png", "b.png", "c.png"]
    assert _same(out / "test/degraded/c.png", root / "test/test-long-shot/c.png")
    assert _same(out / "test/clean/c.png", root / "GT/c.png")
    m = verify_prepared(out, "prepare_hide")
    assert m["summary"]["test"] == {"pairs": 3, "close_ups": 2, "long_shot": 1}
    # a frame in both shot folders is one name twice
    _png(root / "test/test-long-shot/a.png")
    with pytest.raises(PrepError) as e:
        prepare_hide.main(["--src", str(tmp_path / "stage"), "--allow-partial", "--out", str(out)])
    assert str(root / "test/test-close-ups/a.png") in str(e.value)
    assert str(root / "test/test-long-shot/a.png") in str(e.value)
    assert _names(out / "test/degraded") == ["a.png", "b.png", "c.png"]


def test_hide_restormer_repack_and_missing_gt(tmp_path):
    import prepare_hide
    src = tmp_path / "Datasets"
    for n in (1, 2):
        _png(src / "test/HIDE/input" / f"{n}.png", seed=n)
        _png(src / "test/HIDE/target" / f"{n}.png", seed=10 + n)
    out = tmp_path / "HIDE"
    assert prepare_hide.main(["--src", str(src), "--allow-partial", "--out", str(out), "--link", "symlink"]) == 0
    assert _same(out / "test/clean/2.png", src / "test/HIDE/target/2.png")
    assert verify_prepared(out, "prepare_hide")["summary"]["test"] == {"pairs": 2, "close_ups": None,
                                                                        "long_shot": None}
    official = tmp_path / "HIDE_dataset"
    _png(official / "test/test-close-ups/x.png")
    _png(official / "test/test-long-shot/y.png")
    _png(official / "GT/x.png")
    with pytest.raises(PrepError, match=f"{official / 'test/test-long-shot/y.png'}: no partner"):
        prepare_hide.main(["--src", str(official), "--allow-partial", "--out", str(out)])


# ------------------------------------------------------------------ denoising sets
def test_denoise_grey_and_colour_sets(tmp_path):
    import prepare_denoise
    stage = tmp_path / "stage"
    for i in range(3):
        _png(stage / "DnCNN/testsets/BSD68" / f"test{i:03d}.png", seed=i, mode="L")
    _png(stage / "DnCNN/testsets/Set12/01.png", mode="L")  # another set next to it is ignored
    arc = _zip(tmp_path / "BSD68.zip", stage)
    out = tmp_path / "BSD68"
    assert prepare_denoise.main(["--name", "BSD68", "--archive", str(arc), "--accept-hash", "--allow-partial",
                                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["MANIFEST.json", "clean"]
    assert _names(out / "clean") == ["test000.png", "test001.png", "test002.png"]
    assert _same(out / "clean/test001.png", stage / "DnCNN/testsets/BSD68/test001.png")
    m = verify_prepared(out, "prepare_denoise")
    assert m["summary"] == {"images": 3, "channels": 1} and m["params"]["name"] == "BSD68"
    src = tmp_path / "CBSD68"
    _png(src / "0.png", seed=1)
    _png(src / "1.BMP", seed=2)
    assert prepare_denoise.main(["--name", "CBSD68", "--src", str(src), "--allow-partial",
                                 "--out", str(tmp_path / "C")]) == 0
    assert _names(tmp_path / "C/clean") == ["0.png", "1.bmp"]
    assert verify_prepared(tmp_path / "C", "prepare_denoise")["summary"] == {"images": 2, "channels": 3}


def test_denoise_wrong_or_mixed_modes_are_named(tmp_path):
    import prepare_denoise
    src = tmp_path / "BSD68"
    _png(src / "a.png", mode="L")
    colour = _png(src / "b.png")
    with pytest.raises(PrepError) as e:
        prepare_denoise.main(["--name", "BSD68", "--src", str(src), "--allow-partial", "--out", str(tmp_path / "o")])
    assert str(src / "a.png") in str(e.value) and str(colour) in str(e.value) and "grey" in str(e.value)
    (src / "a.png").unlink()
    with pytest.raises(PrepError, match=f"{colour}: a colour image, but BSD68 is a grey set"):
        prepare_denoise.main(["--name", "BSD68", "--src", str(src), "--allow-partial", "--out", str(tmp_path / "o")])
    with pytest.raises(PrepError, match="BSD68 images: found 1, the official release has 68"):
        prepare_denoise.main(["--name", "BSD68", "--src", str(src), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ Flickr2K
def _flickr(stage: Path, lr4: bool = True) -> Path:
    root = stage / "Flickr2K"
    for n, (h, w) in ((1, (23, 26)), (2, (16, 20))):
        _png(root / "Flickr2K_HR" / f"{n:06d}.png", h=h, w=w, seed=n)
        if lr4:
            _png(root / "Flickr2K_LR_bicubic/X4" / f"{n:06d}x4.png", h=h // 4, w=w // 4, seed=10 + n)
    return root


def test_flickr2k_official_and_made_lr(tmp_path):
    import prepare_flickr2k
    from restore_lib.data.imresize import bicubic_downsample
    root = _flickr(tmp_path / "stage")
    arc = _tar(tmp_path / "Flickr2K.tar", tmp_path / "stage")
    out = tmp_path / "Flickr2K"
    assert prepare_flickr2k.main(["--archive", str(arc), "--accept-hash", "--allow-partial", "--scales", "2", "4",
                                  "--out", str(out)]) == 0
    assert _names(out / "Flickr2K_HR") == ["000001.png", "000002.png"]
    assert _names(out / "Flickr2K_LR_bicubic") == ["X2", "X4"]
    assert _same(out / "Flickr2K_LR_bicubic/X4/000001x4.png", root / "Flickr2K_LR_bicubic/X4/000001x4.png")
    assert _same(out / "Flickr2K_HR/000001.png", root / "Flickr2K_HR/000001.png")
    made = np.asarray(Image.open(out / "Flickr2K_LR_bicubic/X2/000001x2.png"))
    hr = np.asarray(Image.open(root / "Flickr2K_HR/000001.png"))
    assert made.shape == (11, 13, 3) and np.array_equal(made, bicubic_downsample(hr[:22, :26], 2))
    m = verify_prepared(out, "prepare_flickr2k")
    assert m["summary"]["hr"] == 2 and m["summary"]["lr"]["X4"] == "official"
    assert m["summary"]["lr"]["X2"].startswith("made") and m["params"]["scales"] == [2, 4]


def test_flickr2k_default_scale_and_bad_lr(tmp_path):
    import prepare_flickr2k
    root = _flickr(tmp_path / "src")
    out = tmp_path / "Flickr2K"
    assert prepare_flickr2k.main(["--src", str(tmp_path / "src"), "--allow-partial", "--out", str(out)]) == 0
    assert _names(out / "Flickr2K_LR_bicubic") == ["X4"]
    assert verify_prepared(out)["summary"]["lr"] == {"X4": "official"}
    (root / "Flickr2K_LR_bicubic/X4/000002x4.png").unlink()
    with pytest.raises(PrepError, match=f"{root / 'Flickr2K_HR/000002.png'}: LR partner .*000002x4.png missing"):
        prepare_flickr2k.main(["--src", str(tmp_path / "src"), "--allow-partial", "--out", str(out)])
    _png(root / "Flickr2K_LR_bicubic/X4/000002x4.png", h=3, w=5)
    with pytest.raises(PrepError, match="000002x4.png: size 5x3 is not 20x16 / 4"):
        prepare_flickr2k.main(["--src", str(tmp_path / "src"), "--allow-partial", "--out", str(out)])


# ------------------------------------------------------------------ loaders' commands
def test_every_new_script_has_a_prepare_command():
    for script in ("prepare_lol", "prepare_sidd", "prepare_rain13k", "prepare_hide", "prepare_denoise",
                   "prepare_flickr2k"):
        cmd = PREPARE_COMMANDS[script]
        assert f"data_scripts/{script}.py" in cmd and (SCRIPTS / f"{script}.py").is_file()
        assert "{out}" in cmd
