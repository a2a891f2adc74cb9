"""The embedded dataset: layout, splits, determinism, hashes, idempotency.

Builds use a subset of tasks (lowlight, sr_x4) to stay fast; the full build
is exercised by data_scripts/make_embedded.py."""
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from restore_lib.utils import sha256_file

from restore_lib.data import embedded as E
from restore_lib.data.degradations import degrade
from restore_lib.data.io import read_image, to_uint8

TASKS = ["lowlight", "sr_x4"]
HAVE_SPORCO = E.package_file("sporco", "data") is not None


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return E.build(tmp_path_factory.mktemp("emb") / "embedded", seed=0, tasks=TASKS, workers=1)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


def test_layout_and_names(root):
    m = E.read_manifest(root)
    assert m["tasks"] == TASKS and m["seed"] == 0
    for task in TASKS:
        for split in E.SPLITS:
            deg, clean = _names(root / task / split / "degraded"), _names(root / task / split / "clean")
            assert deg == clean and deg
            images = m["splits"][split]
            if split == "train":
                n_var = 1 if task == "sr_x4" else E.TRAIN_VARIANTS
                assert deg == sorted(f"{n}_v{v}.png" for n in images for v in range(n_var))
            else:
                assert deg == sorted(f"{n}.png" for n in images)
    assert sorted(p.name for p in root.iterdir()) == sorted(TASKS + ["manifest.json"])  # no staging left


def test_splits_are_by_image(root):
    m = E.read_manifest(root)
    seen = [n for s in E.SPLITS for n in m["splits"][s]]
    assert len(seen) == len(set(seen))  # no image in two splits
    assert 1 <= len(m["splits"]["val"]) <= 2
    assert "coffee" in m["splits"]["test"]
    if HAVE_SPORCO:
        assert {"monarch", "barbara", "kodim23"} <= set(m["splits"]["test"]) and m["sporco_used"]
    # the stereo pair stays together
    split_of = {n: s for s in E.SPLITS for n in m["splits"][s]}
    assert split_of["motorcycle_left"] == split_of["motorcycle_right"]


def test_clean_preprocessing(root):
    for name, deg, clean in E.load_split("sr_x4", "test", root):
        h, w = clean.shape[:2]
        assert max(h, w) <= E.MAX_SIDE and h % 16 == 0 and w % 16 == 0
        assert deg.shape == (h // 4, w // 4, 3)
    m = E.read_manifest(root)
    coffee = next(s for s in m["sources"] if s["name"] == "coffee")
    assert coffee["original_shape"] == [400, 600, 3] and coffee["shape"] == [208, 320, 3]
    assert coffee["licence"] == "CC0" and coffee["package"] == "scikit-image" and coffee["package_version"]


def test_clean_matches_piq_bicubic_within_one_level(root):
    """Independent check of the preprocessing: piq's MATLAB bicubic of the original."""
    piq_resize = pytest.importorskip("piq.functional").imresize
    import skimage.data
    import torch
    orig = skimage.data.coffee().astype(np.float32) / 255
    ref = piq_resize(torch.from_numpy(orig).permute(2, 0, 1)[None], sizes=(213, 320))[0].permute(1, 2, 0).numpy()
    ref = to_uint8(ref[:208])
    ours = to_uint8(read_image(root / "lowlight/test/clean/coffee.png"))
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


def test_files_are_seeded_degradations_of_the_clean(root):
    """The stored degraded file is degrade(task, clean, SeedSequence([seed, h(task), h(image), variant]))."""
    clean = read_image(root / "lowlight/train/clean/astronaut_v1.png")
    expected = to_uint8(degrade("lowlight", clean, E.item_seed(0, "lowlight", "astronaut", 1)))
    assert np.array_equal(to_uint8(read_image(root / "lowlight/train/degraded/astronaut_v1.png")), expected)
    other = to_uint8(read_image(root / "lowlight/train/degraded/astronaut_v0.png"))
    assert not np.array_equal(other, expected)  # variants differ


def test_seed_derivation_is_stable():
    """Pinned: independent of Python's hash() randomisation and of build order."""
    ss = E.item_seed(0, "lowlight", "astronaut", 1)
    assert ss.entropy == [0, E._name_int("lowlight"), E._name_int("astronaut"), 1]
    assert E._name_int("lowlight") == int.from_bytes(
        __import__("hashlib").sha256(b"lowlight").digest()[:4], "little")


def test_manifest_hashes_match_files(root):
    m = E.read_manifest(root)
    for rel, digest in list(m["files"].items())[:20]:
        assert sha256_file(root / rel) == digest
    assert E.dataset_hash(root) == m["dataset_hash"]
    assert E.dataset_hash(root, "sr_x4") == m["task_hashes"]["sr_x4"] != m["dataset_hash"]
    lines = "".join(f"{r}\t{m['files'][r]}\n" for r in sorted(m["files"]))
    assert m["dataset_hash"] == __import__("hashlib").sha256(lines.encode()).hexdigest()


def test_rebuild_elsewhere_gives_same_bytes(root, tmp_path):
    """Determinism: a second build (two worker processes) has the same dataset hash."""
    other = E.build(tmp_path / "again", seed=0, tasks=TASKS, workers=2)
    assert E.dataset_hash(other) == E.dataset_hash(root)
    assert (other / "manifest.json").read_bytes() == (root / "manifest.json").read_bytes()


def test_idempotent_and_rebuilds_on_change(root, tmp_path):
    r = E.build(tmp_path / "d", seed=0, tasks=["sr_x4"])
    mtime = (r / "manifest.json").stat().st_mtime_ns
    E.build(r, seed=0, tasks=["sr_x4"])
    assert (r / "manifest.json").stat().st_mtime_ns == mtime  # nothing rewritten
    victim = r / "sr_x4/test/clean/coffee.png"
    victim.unlink()
    E.build(r, seed=0, tasks=["sr_x4"])  # a missing file triggers a rebuild
    assert victim.is_file() and E.dataset_hash(r) == E.dataset_hash(root, "sr_x4")
    E.build(r, seed=5, tasks=["sr_x4"])  # another seed: rebuilt, seed recorded
    assert E.read_manifest(r)["seed"] == 5
    before = E.dataset_hash(r)
    f = r / "sr_x4/val/degraded/chelsea.png"
    f.write_bytes(f.read_bytes() + b"\0")  # tampering changes the recomputed hash
    assert E.dataset_hash(r) != before


def test_refuses_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("do not delete")
    with pytest.raises(E.EmbeddedDatasetError, match="refusing"):
        E.build(tmp_path / "mine", tasks=["sr_x4"])
    assert (tmp_path / "mine" / "thesis.tex").exists()


def test_fallback_without_sporco(tmp_path, monkeypatch):
    monkeypatch.setattr(E, "_sporco_dir", lambda: None)
    assert not any(E.SOURCES[n][0] == "sporco" for n in E.available_sources())
    r = E.build(tmp_path / "fb", tasks=["sr_x4"], workers=1)
    m = E.read_manifest(r)
    assert not m["sporco_used"] and m["splits"]["test"] == ["coffee", "astronaut"]
    assert {s["name"] for s in m["sources"]} == {n for s in E.SPLITS for n in m["splits"][s]}


def test_load_split_sorted_and_typed(root):
    items = E.load_split("lowlight", "train", root)
    names = [n for n, _, _ in items]
    assert names == sorted(names) and names[0] == "astronaut_v0"
    _, deg, clean = items[0]
    assert deg.dtype == np.float32 and deg.shape == clean.shape and deg.mean() < clean.mean()


def test_load_split_errors(root, tmp_path):
    with pytest.raises(ValueError, match="rain_light"):
        E.load_split("rain", "test", root)
    with pytest.raises(ValueError, match="val"):
        E.load_split("lowlight", "dev", root)
    with pytest.raises(E.EmbeddedDatasetError, match="not built"):
        E.load_split("snow", "test", root)
    with pytest.raises(E.EmbeddedDatasetError, match="make_embedded"):
        E.load_split("snow", "test", tmp_path / "nothing")
    with pytest.raises(ValueError, match="unknown tasks"):
        E.build(tmp_path / "x", tasks=["snowfall"])


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("RESTORE_DATA", str(tmp_path))
    assert E.default_root() == tmp_path / "embedded"
    monkeypatch.delenv("RESTORE_DATA")
    repo = Path(E.__file__).resolve().parents[2]
    assert (repo / "pyproject.toml").is_file() and E.default_root() == repo / "data" / "embedded"


def test_ensure_builds_only_when_needed(root, tmp_path, monkeypatch, capsys):
    assert E.ensure(root, tasks=TASKS) == root and capsys.readouterr().out == ""
    calls = []
    monkeypatch.setattr(E, "build", lambda r=None, **kw: calls.append((r, kw)) or r)
    E.ensure(tmp_path / "missing")
    out = capsys.readouterr().out
    assert calls == [(tmp_path / "missing", {"seed": 0, "tasks": list(E.TASKS)})]
    assert out.count("\n") == 1 and "building" in out and "missing" in out
    E.ensure(root, tasks=["snow"])  # a task that was not built: added, the rest kept
    assert calls[-1] == (root, {"seed": 0, "tasks": ["snow", "lowlight", "sr_x4"]})
    assert "lacks snow" in capsys.readouterr().out


def test_cli_reports_up_to_date(root, capsys):
    """The CLI on an existing dataset: nothing rebuilt, summary printed."""
    script = Path(E.__file__).resolve().parents[2] / "data_scripts" / "make_embedded.py"
    spec = importlib.util.spec_from_file_location("make_embedded", script)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["--root", str(root), "--tasks", *TASKS]) == 0
    out = capsys.readouterr().out
    assert "already up to date" in out
    assert re.search(r"dataset hash ([0-9a-f]{64})", out).group(1) == E.read_manifest(root)["dataset_hash"]
    assert json.loads((root / "manifest.json").read_text())["tasks"] == TASKS
