"""restore_lib.evaluate: the one evaluation loop, checked against direct
scoring, its method-argument conventions, the validation-function builder and
the tables."""
import numpy as np
import pandas as pd
import pytest
import torch

from restore_lib.data.io import to_tensor
from restore_lib.evaluate import evaluate, evaluate_model, method_table, per_image_table, summarize, make_val_fn
from restore_lib.metrics import RGB


def _pairs(n=3, size=16, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gt = rng.random((size, size, 3), dtype=np.float32)
        lq = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1).astype(np.float32)
        out.append((f"img{i}", lq, gt))
    return out


def test_evaluate_matches_skimage_psnr_and_passes_the_requested_arguments():
    from skimage.metrics import peak_signal_noise_ratio

    pairs = _pairs()
    seen = []

    def oracle(lq, gt, name):
        seen.append(name)
        return 0.5 * (lq + gt)

    df, outs = evaluate({"input": None, "half way": oracle}, pairs, RGB, args=("lq", "gt", "name"),
                        keep_outputs=True)
    assert list(df.columns) == ["image", "method", "psnr", "ssim"] and seen == ["img0", "img1", "img2"]
    for name, lq, gt in pairs:
        # RGB protocol: 8-bit quantised, no border crop
        q = lambda a: np.round(np.clip(a, 0, 1) * 255) / 255  # noqa: E731
        want = peak_signal_noise_ratio(q(gt).astype(np.float64), q(0.5 * (lq + gt)).astype(np.float64), data_range=1.0)
        got = df[(df.image == name) & (df.method == "half way")]["psnr"].item()
        assert got == pytest.approx(want, abs=1e-6)
        assert torch.equal(outs[(name, "input")], to_tensor(lq))
    with pytest.raises(ValueError, match="unknown method argument"):
        evaluate({"x": None}, pairs, RGB, args=("lq", "target"))
    with pytest.raises(ValueError, match="ground truth"):
        evaluate({"crop": lambda lq: lq[..., 1:, :]}, pairs, RGB)


def test_evaluate_model_is_input_versus_restored_per_image():
    pairs = _pairs(2)
    model = torch.nn.Identity()
    df, outs = evaluate_model(model, pairs, RGB, keep_outputs=True)
    assert list(df.columns) == ["name", "psnr_in", "ssim_in", "psnr", "ssim"]
    assert np.array_equal(df["psnr_in"], df["psnr"]) and set(outs) == {"img0", "img1"}
    s = summarize(df)
    assert s.loc[0, "PSNR"] == pytest.approx(df["psnr_in"].mean())


def test_val_fn_scores_the_model_on_whole_images():
    pairs = _pairs(2)
    conv = torch.nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        want = np.mean([RGB.evaluate(conv(to_tensor(lq)[None]).clamp(0, 1), to_tensor(gt)[None])["psnr"]
                        for _, lq, gt in pairs])
    assert make_val_fn(pairs, RGB)(conv)["val_psnr"] == pytest.approx(want)
    items = [{"lq": to_tensor(lq), "gt": to_tensor(gt)} for _, lq, gt in pairs]
    assert make_val_fn(items, RGB)(conv)["val_psnr"] == pytest.approx(want)


def test_method_table_and_per_image_table():
    df = pd.DataFrame([
        {"image": "a", "method": "input", "psnr": 20.0, "ssim": 0.5},
        {"image": "b", "method": "input", "psnr": 30.0, "ssim": 0.7},
        {"image": "a", "method": "model", "psnr": 21.0, "ssim": 0.6},
        {"image": "b", "method": "model", "psnr": 29.5, "ssim": 0.8},
    ])
    t = method_table(df)
    assert list(t["method"]) == ["input", "model"]
    row = t.set_index("method").loc["model"]
    assert row["PSNR"] == pytest.approx(25.25) and row["SSIM"] == pytest.approx(0.7)
    assert row["ΔPSNR"] == pytest.approx(0.25) and row["images better"] == 1
    wide = per_image_table(df)
    assert list(wide.columns) == ["image", "input", "model"] and wide["model"].tolist() == [21.0, 29.5]
    with pytest.raises(KeyError):
        method_table(df, reference="nope")
