"""Unpaired image folders and typed HW4 pairs (raw and prepared layouts)."""
import numpy as np
import pytest
from PIL import Image

from restore_lib.data.datasets import EmptyDatasetError, MissingPairError
from restore_lib.data.folders import (ImageFolder, UnknownTypeError, degradation_type, has_clean, load_images,
                                      load_typed_pairs, split_by_image)


def _save(path, seed, size=(6, 5)):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return arr


def _raw_hw4(root, n=3):
    """The course archive: train/degraded/{rain,snow}-N, train/clean/{rain,snow}_clean-N, test/degraded/N."""
    arrays = {}
    for kind in ("rain", "snow"):
        for i in range(1, n + 1):
            arrays[f"{kind}-{i}.png"] = (_save(root / "train" / "degraded" / f"{kind}-{i}.png", 2 * i + (kind == "snow")),
                                         _save(root / "train" / "clean" / f"{kind}_clean-{i}.png", 100 + i))
    for i in (0, 1, 2, 10):
        _save(root / "test" / "degraded" / f"{i}.png", 50 + i, size=(4, 8))
    return arrays


def test_image_folder_natural_order_and_values(tmp_path):
    _raw_hw4(tmp_path)
    ds = ImageFolder(tmp_path / "test" / "degraded")
    assert ds.names == ["0.png", "1.png", "2.png", "10.png"]
    item = ds[3]
    assert item["name"] == "10.png" and item["lq"].shape == (3, 4, 8)
    want = np.asarray(Image.open(tmp_path / "test" / "degraded" / "10.png"), dtype=np.float32) / 255
    np.testing.assert_allclose(item["lq"].permute(1, 2, 0).numpy(), want, atol=1e-7)
    pairs = load_images(tmp_path / "test" / "degraded")
    assert [n for n, _ in pairs] == ds.names and pairs[0][1].dtype == np.uint8
    mem = ImageFolder(tmp_path / "test" / "degraded", in_memory=True)
    np.testing.assert_array_equal(mem.array(-1), ds.array(3))


def test_image_folder_errors(tmp_path):
    with pytest.raises(EmptyDatasetError, match="folder not found"):
        ImageFolder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyDatasetError, match="no images"):
        ImageFolder(tmp_path / "empty")


def test_degradation_type():
    assert degradation_type("rain-12.png") == "rain"
    assert degradation_type("snow_clean-3.png") == "snow"
    assert degradation_type("dir/Snow-3.png") == "snow"
    assert degradation_type("rain_light-x.png", types=("rain",)) == "rain"
    for bad in ("fog-1.png", "12.png", "rainy.png"):
        with pytest.raises(UnknownTypeError, match="cannot tell the degradation type"):
            degradation_type(bad)


def test_raw_layout_pairs_by_hw4_names(tmp_path):
    arrays = _raw_hw4(tmp_path)
    items = load_typed_pairs(tmp_path, "train")
    assert [(k, n) for k, n, _, _ in items] == [("rain", "rain-1.png"), ("rain", "rain-2.png"), ("rain", "rain-3.png"),
                                                ("snow", "snow-1.png"), ("snow", "snow-2.png"), ("snow", "snow-3.png")]
    for kind, name, lq, gt in items:
        np.testing.assert_array_equal(lq, arrays[name][0])
        np.testing.assert_array_equal(gt, arrays[name][1])
    sub = load_typed_pairs(tmp_path, "train", files=["snow-2.png"])
    assert [n for _, n, _, _ in sub] == ["snow-2.png"]
    assert has_clean(tmp_path, "train") and not has_clean(tmp_path, "test")
    with pytest.raises(MissingPairError, match="has no clean images"):
        load_typed_pairs(tmp_path, "test")
    with pytest.raises(EmptyDatasetError, match="val/degraded: folder not found"):
        load_typed_pairs(tmp_path, "val")


def test_prepared_layout_same_names(tmp_path):
    for split, names in (("train", ["rain-1.png", "snow-1.png"]), ("val", ["snow-7.png"])):
        for i, n in enumerate(names):
            _save(tmp_path / split / "degraded" / n, i)
            _save(tmp_path / split / "clean" / n, 10 + i)
    assert [(k, n) for k, n, _, _ in load_typed_pairs(tmp_path, "val")] == [("snow", "snow-7.png")]


def test_missing_partner_and_size_mismatch_are_named(tmp_path):
    _raw_hw4(tmp_path, n=2)
    (tmp_path / "train" / "clean" / "snow_clean-2.png").unlink()
    with pytest.raises(MissingPairError, match=r"snow-2.png \(expected snow_clean-2.png\)"):
        load_typed_pairs(tmp_path, "train")
    _save(tmp_path / "train" / "clean" / "snow_clean-2.png", 3, size=(7, 5))
    with pytest.raises(MissingPairError, match="sizes differ"):
        load_typed_pairs(tmp_path, "train")


def test_unknown_type_in_folder(tmp_path):
    _save(tmp_path / "train" / "degraded" / "fog-1.png", 0)
    _save(tmp_path / "train" / "clean" / "fog-1.png", 1)
    with pytest.raises(UnknownTypeError, match="fog-1.png"):
        load_typed_pairs(tmp_path, "train")


def test_split_by_image_is_seeded_stratified_and_disjoint():
    names = [f"rain-{i}.png" for i in range(1, 201)] + [f"snow-{i}.png" for i in range(1, 101)]
    train, val = split_by_image(names, 0.05, seed=3)
    assert sorted(train + val) == sorted(names) and not set(train) & set(val)
    assert sum(n.startswith("rain") for n in val) == 10 and sum(n.startswith("snow") for n in val) == 5
    assert split_by_image(names, 0.05, seed=3) == (train, val)
    assert split_by_image(names, 0.05, seed=4)[1] != val
    # Report A's 0.5 %: at least one validation image per type
    _, tiny = split_by_image(names, 0.005)
    assert sum(n.startswith("rain") for n in tiny) == 1 and sum(n.startswith("snow") for n in tiny) == 1
    assert split_by_image(names, 0.0) == (names, [])
    with pytest.raises(ValueError, match="val_ratio"):
        split_by_image(names, 1.0)


def test_load_all_in_one_raw_layout_splits_by_image(tmp_path):
    from restore_lib.data.folders import load_all_in_one

    _raw_hw4(tmp_path, n=4)
    d = load_all_in_one(tmp_path, val_ratio=0.25, seed=0)
    assert d.types == ["rain", "snow"] and d.eval_split == "val" and d.eval is d.val
    assert d.counts()["train"] == {"rain": 3, "snow": 3} and d.counts()["val"] == {"rain": 1, "snow": 1}
    assert not {n for _, n, *_ in d.train} & {n for _, n, *_ in d.val}
    assert [n for n, _ in d.submission] == ["0.png", "1.png", "2.png", "10.png"]
    by = d.by_type("val")
    assert list(by) == ["rain", "snow"] and all(len(v) == 1 and v[0][0].startswith(k) for k, v in by.items())
    with pytest.raises(EmptyDatasetError, match="no validation images"):
        load_all_in_one(tmp_path, val_ratio=0.0)
    with pytest.raises(EmptyDatasetError, match="data_root folder not found"):
        load_all_in_one(tmp_path / "missing")


def test_load_all_in_one_prepared_layout(tmp_path):
    from restore_lib.data.folders import load_all_in_one

    for split, names in (("train", ["rain-1.png", "snow-1.png", "snow-2.png"]), ("val", ["rain-2.png", "snow-3.png"])):
        for i, n in enumerate(names):
            _save(tmp_path / split / "degraded" / n, i)
            _save(tmp_path / split / "clean" / n, 10 + i)
    d = load_all_in_one(tmp_path)
    assert d.counts()["train"] == {"rain": 1, "snow": 2} and d.counts()["eval"] == {"rain": 1, "snow": 1}
    assert d.submission == [] and "val/ folders" in d.source


def test_load_all_in_one_embedded():
    from restore_lib.data.folders import EMBEDDED_RAIN_SNOW, load_all_in_one

    d = load_all_in_one(tasks=("rain_light", "snow"))
    assert d.types == ["rain_light", "snow"] and d.eval_split == "test"
    assert [n for n, _ in d.submission] == [n for _, n, _, _ in d.eval]
    assert all(n.startswith(f"{t}-") and n.endswith(".png") for t, n, _, _ in d.train + d.val + d.eval)
    # splits by photo: no test photo appears in training
    photo = lambda n: n.split("-", 1)[1].rsplit("_v", 1)[0].removesuffix(".png")  # noqa: E731
    assert not {photo(n) for _, n, *_ in d.eval} & {photo(n) for _, n, *_ in d.train}
    assert EMBEDDED_RAIN_SNOW == ("rain_light", "rain_heavy", "snow")
