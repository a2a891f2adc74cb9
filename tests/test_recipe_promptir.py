"""The course submission file (pred.npz): round trip and clear errors."""
import zipfile

import numpy as np
import pytest
import torch
from pandas import testing as pd_testing

from restore_lib.recipes.promptir import SubmissionError, read_submission, to_submission_array, write_submission


def _img(h=5, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(3, h, w), dtype=np.uint8)


def test_round_trip_uint8_and_float_tensor(tmp_path):
    a = _img()
    t = torch.rand(3, 4, 6)
    path = write_submission({"0.png": a, "1.png": t}, tmp_path / "pred.npz")
    assert path == tmp_path / "pred.npz"
    back = read_submission(path)
    assert sorted(back) == ["0.png", "1.png"]
    np.testing.assert_array_equal(back["0.png"], a)
    assert back["1.png"].dtype == np.uint8 and back["1.png"].shape == (3, 4, 6)
    # float -> uint8 is round(255 x), as saving a PNG does (oracle: numpy)
    np.testing.assert_array_equal(back["1.png"], np.round(t.double().numpy() * 255).astype(np.uint8))
    # what the course's checker does: plain np.load gives the same arrays
    with np.load(path) as raw:
        assert sorted(raw.files) == ["0.png", "1.png"]
        np.testing.assert_array_equal(raw["0.png"], a)


def test_uncompressed_and_expected_names_and_sizes(tmp_path):
    preds = {"0.png": _img(4, 4), "10.png": _img(6, 2, seed=1)}
    p = write_submission(preds, tmp_path / "pred.npz", compress=False, expected=["0.png", "10.png"])
    read_submission(p, expected={"0.png": (4, 4), "10.png": (6, 2)})
    with pytest.raises(SubmissionError, match="'10.png' is 6x2, the test image is 2x6"):
        read_submission(p, expected={"0.png": (4, 4), "10.png": (2, 6)})
    with pytest.raises(SubmissionError, match="1 missing image.*2.png"):
        read_submission(p, expected=["0.png", "10.png", "2.png"])
    with pytest.raises(SubmissionError, match="1 unexpected image.*10.png"):
        write_submission(preds, tmp_path / "other.npz", expected=["0.png"])
    assert not (tmp_path / "other.npz").exists()


@pytest.mark.parametrize("pred, message", [
    (np.zeros((3, 4, 4), np.float32), "numpy dtype float32 is not allowed"),
    (np.zeros((3, 4, 4), np.uint16), "numpy dtype uint16"),
    (torch.zeros(3, 4, 4, dtype=torch.int64), "tensor dtype torch.int64"),
    (np.zeros((4, 4, 3), np.uint8), r"looks like \(H, W, 3\)"),
    (np.zeros((1, 4, 4), np.uint8), "1 channels"),
    (np.zeros((4, 5, 6), np.uint8), "4 channels"),
    (np.zeros((1, 3, 4, 4), np.uint8), "a batch"),
    (np.zeros((4, 4), np.uint8), r"must be \(3, H, W\)"),
    (np.zeros((3, 0, 4), np.uint8), "empty image"),
    (torch.full((3, 4, 4), 1.5), r"in \[0, 1\].*clamp"),
    (torch.full((3, 4, 4), float("nan")), "NaN"),
    ([[0]], "expected a numpy array or torch tensor"),
])
def test_bad_predictions_are_named(tmp_path, pred, message):
    with pytest.raises(SubmissionError, match=message) as e:
        write_submission({"3.png": pred}, tmp_path / "pred.npz")
    assert "'3.png'" in str(e.value)
    assert not (tmp_path / "pred.npz").exists()


@pytest.mark.parametrize("name, message", [
    ("a/0.png", "without folders"), ("0.jpg", "ending in '.png'"), ("", "empty"), (" 0.png", "spaces"),
    (3, "must be a str"),
])
def test_bad_names(tmp_path, name, message):
    with pytest.raises(SubmissionError, match=message):
        write_submission({name: _img()}, tmp_path / "pred.npz")


def test_path_and_empty_checks(tmp_path):
    with pytest.raises(SubmissionError, match="must end in '.npz'"):
        write_submission({"0.png": _img()}, tmp_path / "pred.zip")
    with pytest.raises(SubmissionError, match="non-empty dict"):
        write_submission({}, tmp_path / "pred.npz")


def test_write_is_atomic_and_keeps_old_file_on_error(tmp_path):
    p = write_submission({"0.png": _img()}, tmp_path / "pred.npz")
    before = p.read_bytes()
    with pytest.raises(SubmissionError):
        write_submission({"0.png": _img(), "1.png": np.zeros((3, 2, 2), np.int32)}, p)
    assert p.read_bytes() == before
    assert [q.name for q in tmp_path.iterdir()] == ["pred.npz"]  # no temporary file left


def test_read_rejects_malformed_files(tmp_path):
    with pytest.raises(SubmissionError, match="file not found"):
        read_submission(tmp_path / "missing.npz")
    txt = tmp_path / "text.npz"
    txt.write_text("not an archive")
    with pytest.raises(SubmissionError, match="not an .npz archive"):
        read_submission(txt)
    npy = tmp_path / "single.npz"
    with open(npy, "wb") as f:
        np.save(f, _img())
    with pytest.raises(SubmissionError, match="not an .npz archive"):
        read_submission(npy)
    empty = tmp_path / "empty.npz"
    np.savez(empty)
    with pytest.raises(SubmissionError, match="no images"):
        read_submission(empty)
    hwc = tmp_path / "hwc.npz"
    np.savez(hwc, **{"0.png": np.zeros((4, 4, 3), np.uint8)})
    with pytest.raises(SubmissionError, match=r"hwc.npz: '0.png'.*transpose"):
        read_submission(hwc)
    floats = tmp_path / "floats.npz"
    np.savez(floats, **{"0.png": np.zeros((3, 4, 4), np.float64)})
    with pytest.raises(SubmissionError, match="float64 is not allowed"):
        read_submission(floats)
    objects = tmp_path / "objects.npz"
    np.savez(objects, **{"0.png": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(SubmissionError, match="not a readable .npz archive"):
        read_submission(objects)
    broken = tmp_path / "broken.npz"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("0.png.npy", b"\x93NUMPY garbage")
    with pytest.raises(SubmissionError, match="not a readable .npz archive"):
        read_submission(broken)


def test_to_submission_array_keeps_uint8_tensors():
    t = torch.arange(3 * 2 * 2, dtype=torch.uint8).view(3, 2, 2)
    np.testing.assert_array_equal(to_submission_array(t), t.numpy())


def test_oversized_submissions_are_refused_before_anything_is_allocated(tmp_path):
    import io

    good = tmp_path / "pred.npz"
    write_submission({"0.png": np.zeros((3, 16, 16), np.uint8)}, good)
    assert read_submission(good, max_bytes=10_000)["0.png"].shape == (3, 16, 16)
    with pytest.raises(SubmissionError, match=r"pred\.npz: unpacks to more than"):
        read_submission(good, max_bytes=100)
    # a .npy header that claims a huge array on a few bytes of data: refused by its header, never allocated
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (3, 200_000, 200_000)})
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w") as zf:
        zf.writestr("0.png.npy", header.getvalue() + b"\0" * 64)
    with pytest.raises(SubmissionError, match=r"bomb\.npz: unpacks to more than 2\.0 GiB"):
        read_submission(bomb)


# --- the reports' pipelines -------------------------------------------------------------------------------
from restore_lib.data.io import to_tensor  # noqa: E402
from restore_lib.evaluate import evaluate  # noqa: E402
from restore_lib.metrics import PROMPTIR, RGB  # noqa: E402
from restore_lib.recipes.promptir import (ReportAScheme, evaluate_by_type, resize, type_table,  # noqa: E402
                                          typed_val_fn)


def _typed_pairs(seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for t, n in (("rain", 3), ("snow", 1)):
        pairs = []
        for i in range(n):
            gt = rng.random((20, 28, 3)).astype(np.float32)
            lq = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1).astype(np.float32)
            pairs.append((f"{t}-{i}.png", lq, gt))
        out[t] = pairs
    return out


def test_report_a_patch_grid_and_exact_blending():
    scheme = ReportAScheme(32, "patch", "hann")
    assert (scheme.patch, scheme.stride) == (16, 8)
    items = [("rain", name, lq, gt) for name, lq, gt in _typed_pairs()["rain"]]
    pairs = scheme.training_pairs(items)
    assert len(pairs) == 9 * len(items) and pairs[0][0] == "rain-0.png#0"
    assert all(t.dtype == torch.uint8 and t.shape == (3, 16, 16) for _, lq, gt in pairs for t in (lq, gt))
    x = to_tensor(items[0][2])[None]
    # patches that agree blend back exactly: an identity model gives the resize round trip
    torch.testing.assert_close(scheme.forward(lambda p: p, x), resize(resize(x, (32, 32)), (20, 28)), atol=1e-5,
                               rtol=0)
    direct = ReportAScheme(32, "direct")
    assert all(t.shape == (3, 16, 16) for _, lq, gt in direct.training_pairs(items) for t in (lq, gt))
    assert direct.forward(lambda p: p, x).shape == x.shape


@pytest.mark.parametrize("kwargs,message", [({"scheme": "tiles"}, "scheme must be one of patch, direct"),
                                            ({"size": 30}, "multiple of 4")])
def test_report_a_scheme_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReportAScheme(**kwargs)


def test_evaluate_by_type_scores_each_spec_like_evaluate_and_averages_types_equally():
    typed = _typed_pairs()
    methods = {"input": None, "blur": lambda x: torch.nn.functional.avg_pool2d(x, 3, 1, 1)}
    (rgb, pir), outputs = evaluate_by_type(methods, typed, [RGB, PROMPTIR])
    for spec, long in ((RGB, rgb), (PROMPTIR, pir)):
        for t, pairs in typed.items():
            want = evaluate(methods, pairs, spec)
            got = long[long["type"] == t].drop(columns="type").reset_index(drop=True)
            pd_testing.assert_frame_equal(got, want)
    table = type_table(rgb, {"input": "input", "blur": "blurred"}).set_index("type")
    per_type = [evaluate(methods, typed[t], RGB).groupby("method")["psnr"].mean()["blur"] for t in typed]
    assert table.loc["average", "PSNR blurred"] == pytest.approx(np.mean(per_type), abs=1e-12)
    assert set(outputs["blur"]["rain"]) == {name for name, *_ in typed["rain"]}
    validate = typed_val_fn(typed, RGB, lambda model, x: model(x))
    assert validate(torch.nn.AvgPool2d(3, 1, 1))["val_psnr"] == pytest.approx(np.mean(per_type), abs=1e-9)
