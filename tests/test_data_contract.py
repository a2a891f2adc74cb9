"""The loaders' data contract: a prepared folder is read only when it matches
its MANIFEST.json, an unfinished preparation is refused with one line that
names the folder, the problem and the command, a raw folder is read after a
warning; and a relative data_root means the same folder from any directory."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restore_lib import utils
from restore_lib.data.datasets import GoProDataset, PairedFolderDataset
from restore_lib.data.folders import load_all_in_one, load_typed_pairs
from restore_lib.data.manifest import PrepError, UnverifiedFolderWarning, check_data_folder
from restore_lib.data.io import write_image
from restore_lib.data.pairs import data_provenance, load_pairs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "data_scripts"))


def _png(path: Path, seed: int, h: int = 8, w: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def _raw_hw4(root: Path) -> Path:
    for kind in ("rain", "snow"):
        for i in (1, 2, 3):
            _png(root / "train/degraded" / f"{kind}-{i}.png", i)
            _png(root / "train/clean" / f"{kind}_clean-{i}.png", 10 + i)
    for i in (0, 1):
        _png(root / "test/degraded" / f"{i}.png", 20 + i)
    return root


def _prepared_hw4(tmp_path: Path) -> Path:
    import prepare_hw4
    out = tmp_path / "hw4"
    assert prepare_hw4.main(["--src", str(_raw_hw4(tmp_path / "raw")), "--allow-partial", "--out", str(out),
                             "--val-ratio", "0.34"]) == 0
    return out


def _prepared_gopro(tmp_path: Path) -> Path:
    import prepare_gopro
    src = tmp_path / "GOPRO_Large"
    for split in ("train", "test"):
        for n, side in enumerate(("blur", "sharp")):
            _png(src / split / "S1" / side / "000001.png", n)
    out = tmp_path / "GoPro"
    assert prepare_gopro.main(["--src", str(src), "--out", str(out), "--allow-partial"]) == 0
    return out


def _one_line(err: pytest.ExceptionInfo, folder: Path, problem: str, command: str) -> str:
    msg = str(err.value)
    assert "\n" not in msg and str(folder) in msg and problem in msg and command in msg, msg
    return msg


def test_a_verified_prepared_folder_is_read_silently(tmp_path, recwarn):
    hw4 = _prepared_hw4(tmp_path)
    data = load_all_in_one(hw4)
    assert len(data.train) == 4 and len(data.val) == 2 and len(data.submission) == 2
    gopro = _prepared_gopro(tmp_path)
    assert len(GoProDataset(gopro, split="test")) == 1
    assert not [w for w in recwarn if issubclass(w.category, UnverifiedFolderWarning)]


def test_a_changed_prepared_folder_is_refused_with_the_command(tmp_path):
    hw4 = _prepared_hw4(tmp_path)
    victim = sorted((hw4 / "train/degraded").iterdir())[0]
    victim.unlink()   # 86 of 100 pairs copied
    with pytest.raises(PrepError) as e:
        load_all_in_one(hw4)
    _one_line(e, hw4, "train/degraded/: 4 in the manifest, 3 found", "python data_scripts/prepare_hw4.py")
    with pytest.raises(PrepError):
        load_typed_pairs(hw4, "val")
    gopro = _prepared_gopro(tmp_path)
    manifest = json.loads((gopro / "MANIFEST.json").read_text())
    (gopro / "MANIFEST.json").write_text(json.dumps({**manifest, "complete": False}))
    with pytest.raises(PrepError) as e:
        GoProDataset(gopro, split="test")
    _one_line(e, gopro, "not marked complete", f"prepare_gopro.py --archive GOPRO_Large.zip --sha256 <hash> "
                                                f"--out {gopro}")


def test_a_folder_of_another_script_is_refused(tmp_path):
    hw4 = _prepared_hw4(tmp_path)
    with pytest.raises(PrepError) as e:
        GoProDataset(hw4, split="train")
    _one_line(e, hw4, "prepared by 'prepare_hw4', not by 'prepare_gopro'", "prepare_gopro.py")


@pytest.mark.parametrize("kind", ["partial", "extract", "old"])
def test_an_unfinished_preparation_is_refused(tmp_path, kind):
    """No manifest and a staging sibling: an interrupted (or running) preparation, whether the folder exists
    (files copied by hand into it meanwhile) or not."""
    out = tmp_path / "GoPro"
    (tmp_path / f"GoPro.{kind}-4242-abcd" / "train").mkdir(parents=True)
    with pytest.raises(PrepError) as e:
        GoProDataset(out, split="train")
    _one_line(e, out, "did not finish (it does not exist and has no MANIFEST.json", "prepare_gopro.py")
    for split in ("train", "test"):
        for side in ("blur", "sharp"):
            _png(out / split / "S" / side / "1.png", 0)
    with pytest.raises(PrepError) as e:
        GoProDataset(out, split="train")
    msg = _one_line(e, out, f"GoPro.{kind}-4242-abcd is left next to it", f"--out {out}")
    assert "did not finish (it has no MANIFEST.json" in msg


def test_an_unfinished_split_is_refused_by_load_pairs(tmp_path):
    """Rain100L: one manifest per split; the test split finished, the train split was interrupted."""
    import prepare_rain100l
    src = tmp_path / "src"
    for n in (1, 2):
        _png(src / f"rain-{n}.png", n)
        _png(src / f"norain-{n}.png", 5 + n)
    out = tmp_path / "Rain100L"
    assert prepare_rain100l.main(["--split", "test", "--src", str(src), "--out", str(out), "--allow-partial"]) == 0
    assert [n for n, *_ in load_pairs("rain", "test", out)] == ["1.png", "2.png"]
    (tmp_path / "Rain100L" / "train.partial-4242-xyz").mkdir()
    with pytest.raises(PrepError) as e:
        load_pairs("rain", "train", out)
    _one_line(e, out / "train", "did not finish", f"--split train --archive <archive> --accept-hash --out {out}")
    (out / "test" / "degraded" / "3.png").write_bytes((out / "test" / "degraded" / "1.png").read_bytes())
    with pytest.raises(PrepError, match="degraded/: 2 in the manifest, 3 found"):
        load_pairs("rain", "test", out)


def test_a_raw_folder_is_read_after_one_warning(tmp_path):
    raw = _raw_hw4(tmp_path / "hw4_realse_dataset")
    with pytest.warns(UnverifiedFolderWarning) as warned:
        data = load_all_in_one(raw, val_ratio=0.34)
    msgs = [str(w.message) for w in warned if issubclass(w.category, UnverifiedFolderWarning)]
    assert len(msgs) == 1 and str(raw) in msgs[0] and "unverified" in msgs[0] and "prepare_hw4.py" in msgs[0]
    assert len(data.train) + len(data.val) == 6
    folder = tmp_path / "pairs" / "train"
    for side in ("degraded", "clean"):
        _png(folder / side / "a.png", 1)
    with pytest.warns(UnverifiedFolderWarning, match=str(folder)):
        assert len(PairedFolderDataset(folder)) == 1


def test_a_missing_folder_is_the_loaders_own_error(tmp_path):
    assert check_data_folder(tmp_path / "nope") is None
    with pytest.raises(FileNotFoundError, match="no 'train' folder"):
        load_pairs("x", "train", tmp_path / "nope")


def test_embedded_data_is_not_affected(recwarn):
    pairs = load_pairs("noise25", "val")
    assert pairs and data_provenance("noise25")["name"].startswith("embedded")
    assert not [w for w in recwarn if issubclass(w.category, UnverifiedFolderWarning)]


# ------------------------------------------------------------------ data_root
def test_relative_data_root_is_under_the_repo_root_whatever_the_cwd():
    code = "from restore_lib.utils import resolve_data_root as r; print(r('data/GoPro')); print(r(None))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    seen = {cwd: subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                                check=True, timeout=120).stdout
            for cwd in (REPO, REPO / "notebooks")}
    assert seen[REPO] == seen[REPO / "notebooks"] == f"{REPO / 'data' / 'GoPro'}\nNone\n"


def test_loaders_resolve_a_relative_data_root_against_the_repo_root(tmp_path, monkeypatch):
    """Every loader that takes a data_root, run from another directory."""
    monkeypatch.setattr(utils, "_checkout_root", lambda: tmp_path)
    monkeypatch.chdir("/")
    gopro = _prepared_gopro(tmp_path)
    hw4 = _prepared_hw4(tmp_path)
    assert len(GoProDataset(gopro.name, split="train")) == 1
    assert len(load_all_in_one(hw4.name).train) == 4
    assert [k for k, *_ in load_typed_pairs(hw4.name, "val")] == ["rain", "snow"]
    for side in ("degraded", "clean"):
        _png(tmp_path / "mine" / "val" / side / "a.png", 3)
    with pytest.warns(UnverifiedFolderWarning):
        assert [n for n, *_ in load_pairs("x", "val", "mine")] == ["a.png"]
    assert data_provenance("x", "mine")["split"].endswith("(listing hash of 2 files)")
    assert utils.resolve_data_root("/abs/path") == Path("/abs/path")
    monkeypatch.setattr(utils, "_checkout_root", lambda: None)
    with pytest.raises(ValueError, match="'mine' is relative.*absolute path"):
        load_pairs("x", "val", "mine")


def test_load_pairs_reads_a_real_x4_folder_at_its_scale(tmp_path):
    """A real SR folder has LR images a quarter of the HR ones: sr_x4 reads it, a same-size task refuses it."""
    from restore_lib.data.datasets import PairSizeError
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        write_image(tmp_path / "test" / "clean" / name, rng.random((32, 48, 3)).astype(np.float32))
        write_image(tmp_path / "test" / "degraded" / name, rng.random((8, 12, 3)).astype(np.float32))
    with pytest.warns(UnverifiedFolderWarning):     # a raw folder: read, with a warning
        pairs = load_pairs("sr_x4", "test", tmp_path)
        with pytest.raises(PairSizeError, match="a.png"):
            load_pairs("motion_blur", "test", tmp_path)
    assert [(n, lq.shape, gt.shape) for n, lq, gt in pairs] == [(n, (8, 12, 3), (32, 48, 3)) for n in ("a.png", "b.png")]
