"""restore_lib.recipes.srgan: FSRCNN's Y wrapper and loss, SRGAN's adversarial
phase (updates, logs, exact resume) and the SR evaluation helpers."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from restore_lib.data.datasets import MemoryPairs
from restore_lib.data.imresize import imresize
from restore_lib.metrics import RGB, SR_Y
from restore_lib.models import build_model
from restore_lib.data.io import to_tensor
from restore_lib.evaluate import evaluate, method_table, per_image_table, subset_table
from restore_lib.recipes.srgan import (SRGANTrainer, YChannelSR, discriminator_loss,
                                     y_channel_loss, y_model_forward)
from restore_lib.train import TrainConfig, Trainer


def _y_oracle(rgb):
    """BT.601 studio-swing luma written out: (16 + 65.481 R + 128.553 G + 24.966 B) / 255."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    return (16.0 + 65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def _sr_pairs(n=3, h=8, w=10, scale=4, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gt = rng.random((h * scale, w * scale, 3)).astype(np.float32)
        lq = imresize(torch.from_numpy(gt).permute(2, 0, 1)[None], scale=1 / scale).clamp(0, 1)[0]
        out.append((f"img{i}", lq.permute(1, 2, 0).numpy(), gt))
    return out


# --------------------------------------------------------------------------- Y channel

def test_y_wrapper_feeds_bt601_luma_to_the_network():
    class Probe(nn.Module):
        scale = 2

        def forward(self, x):
            self.seen = x
            return F.interpolate(x, scale_factor=2, mode="nearest")

    probe = Probe()
    x = torch.rand(2, 3, 5, 7)
    out = YChannelSR(probe)(x)
    torch.testing.assert_close(probe.seen, _y_oracle(x), atol=1e-6, rtol=0)
    assert out.shape == (2, 1, 10, 14)


def test_y_loss_matches_explicit_formula_and_checks_shapes():
    pred = torch.rand(2, 1, 8, 8)
    gt = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(y_channel_loss("mse")(pred, gt), ((pred - _y_oracle(gt)) ** 2).mean(),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(y_channel_loss("l1")(pred, gt), (pred - _y_oracle(gt)).abs().mean(),
                               atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="target Y"):
        y_channel_loss()(torch.rand(2, 1, 4, 4), gt)
    with pytest.raises(ValueError, match="kind"):
        y_channel_loss("huber")


def test_y_wrapper_rejects_models_without_scale_and_grey_inputs():
    with pytest.raises(ValueError, match="scale"):
        YChannelSR(nn.Conv2d(1, 1, 3))
    with pytest.raises(ValueError, match="RGB"):
        YChannelSR(build_model("fsrcnn", "small"))(torch.rand(1, 1, 8, 8))


def test_fsrcnn_trains_on_y_and_its_rgb_output_keeps_bicubic_chroma():
    torch.manual_seed(0)
    pairs = _sr_pairs(4, 6, 6)
    wrapper = YChannelSR(build_model("fsrcnn", "small"))
    cfg = TrainConfig(total_steps=3, batch_size=2, lr=1e-3, optimizer="adam", log_every=1, seed=0)
    ds = MemoryPairs(pairs, scale=4, patch_size=16)
    before = [p.detach().clone() for p in wrapper.parameters()]
    Trainer(wrapper, ds, y_channel_loss(), cfg, device="cpu", progress=False).fit()
    assert any(not torch.equal(a, b) for a, b in zip(before, wrapper.parameters()))
    lq = to_tensor(pairs[0][1])[None]
    with torch.no_grad():
        rgb = y_model_forward(wrapper, lq)
        y = wrapper(lq).clamp(0, 1)
    assert rgb.shape == (1, 3, 24, 24)
    # the luminance of the RGB output is the network's (up to the final RGB clamp)
    inside = ((rgb > 1e-4) & (rgb < 1 - 1e-4)).all(1, keepdim=True)
    torch.testing.assert_close(_y_oracle(rgb)[inside], y[inside], atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- SRGAN

def test_discriminator_loss_is_binary_cross_entropy():
    real, fake = torch.randn(5, 1), torch.randn(5, 1)
    sig = torch.sigmoid
    expected = -(torch.log(sig(real))).mean() - (torch.log(1 - sig(fake))).mean()
    torch.testing.assert_close(discriminator_loss(real, fake), expected, atol=1e-5, rtol=0)


class _PixelGenLoss(nn.Module):
    """MSE + 1e-3 * adversarial: a cheap stand-in for the feature content loss."""

    def forward(self, pred, target, batch=None):
        logits = batch["d_fake_logits"]
        adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        mse = F.mse_loss(pred, target)
        return mse + 1e-3 * adv, {"content": float(mse.detach()), "adversarial": float(adv.detach())}


def _gan(seed=0):
    torch.manual_seed(seed)
    g = build_model("srresnet", "small", n_channels=8, n_blocks=1)
    d = build_model("srgan_discriminator", "small", n_channels=4, n_blocks=2, fc_size=8)
    return g, d


def _gan_trainer(g, d, ckpt_dir, steps=4, resume=False, gen_loss=None):
    pairs = _sr_pairs(4, 6, 6)
    ds = MemoryPairs(pairs, scale=4, patch_size=16, seed=0)
    cfg = TrainConfig(total_steps=steps, batch_size=2, lr=1e-3, optimizer="adam", log_every=1, seed=0,
                      ckpt_every=2)
    return SRGANTrainer(g, d, ds, cfg, gen_loss=gen_loss or _PixelGenLoss(), d_lr=5e-4, ckpt_dir=ckpt_dir,
                        device="cpu", resume=resume, progress=False)


def test_srgan_step_updates_both_networks_and_logs_parts(tmp_path):
    g, d = _gan()
    g0 = [p.detach().clone() for p in g.parameters()]
    d0 = [p.detach().clone() for p in d.parameters()]
    tr = _gan_trainer(g, d, tmp_path / "a", steps=2)
    hist = tr.fit()
    assert any(not torch.equal(a, b) for a, b in zip(g0, g.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, d.parameters()))
    row = hist.dropna(subset=["loss"]).iloc[-1]
    for key in ("loss", "content", "adversarial", "d_loss", "d_real", "d_fake", "train_psnr"):
        assert key in row and math.isfinite(row[key]), key
    assert 0.0 < row["d_real"] < 1.0 and 0.0 < row["d_fake"] < 1.0
    assert tr.d_optimizer.param_groups[0]["lr"] < 5e-4  # the discriminator's own cosine schedule stepped


def test_srgan_resume_is_exact(tmp_path):
    g1, d1 = _gan()
    _gan_trainer(g1, d1, tmp_path / "full", steps=4).fit()
    g2, d2 = _gan()
    _gan_trainer(g2, d2, tmp_path / "cut", steps=4).fit(stop_at_step=2)
    g3, d3 = _gan(seed=123)  # different init: everything must come from the checkpoint
    tr = _gan_trainer(g3, d3, tmp_path / "cut", steps=4, resume=True)
    assert tr.step == 2
    tr.fit()
    for a, b in zip(g1.state_dict().values(), g3.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(d1.state_dict().values(), d3.state_dict().values()):
        assert torch.equal(a, b)


def test_srgan_default_loss_is_the_srgan_objective(tmp_path):
    g, d = _gan()
    tr = _gan_trainer(g, d, None, steps=1, gen_loss=None)
    tr_default = SRGANTrainer(g, d, tr.train_set, tr.config, device="cpu", progress=False)
    desc = tr_default.loss_fn.description
    assert "1e-03*adversarial" in desc.replace("0.001", "1e-03") and "2e-08*TV" in desc


# --------------------------------------------------------------------------- evaluation

def test_evaluate_matches_a_skimage_oracle_on_the_sr_y_protocol():
    pairs = _sr_pairs(3, 10, 12)
    spec = SR_Y(4)
    df = evaluate({"bicubic": None, "nearest": lambda x: F.interpolate(x, scale_factor=4)}, pairs, spec, scale=4)
    nearest = F.interpolate(to_tensor(pairs[0][1])[None], scale_factor=4).clamp(0, 1)
    # oracle: skimage PSNR on the explicit BT.601 Y, 8-bit quantised, border 4 cropped (the SR_Y protocol)
    from skimage.metrics import peak_signal_noise_ratio

    def y8(t):
        return (torch.round(t * 255) / 255)

    py = _y_oracle(y8(nearest))[0, 0, 4:-4, 4:-4].double().numpy()
    gy = _y_oracle(y8(to_tensor(pairs[0][2])[None]))[0, 0, 4:-4, 4:-4].double().numpy()
    expected = peak_signal_noise_ratio(gy, py, data_range=1.0)
    assert abs(df[(df.method == "nearest") & (df.image == "img0")]["psnr"].item() - expected) < 1e-6
    assert "lpips" not in df  # no LPIPS model given

    table = method_table(df, "bicubic", lpips_note="n/a (no trunk weights)")
    assert list(table.columns) == ["method", "PSNR", "SSIM", "LPIPS", "ΔPSNR", "images better"]
    assert table.loc[0, "ΔPSNR"] == 0.0 and table.loc[0, "images better"] == 0
    assert (table["LPIPS"] == "n/a (no trunk weights)").all()
    d = table.set_index("method")
    assert abs(d.loc["nearest", "ΔPSNR"] - (d.loc["nearest", "PSNR"] - d.loc["bicubic", "PSNR"])) < 1e-12
    with pytest.raises(KeyError, match="unknown reference"):
        method_table(df, "lanczos")

    sub = subset_table(df, {"first two": ["img0", "img1"], "all": ["img0", "img1", "img2"]})
    assert sub.loc[0, "images"] == 2
    assert abs(sub.loc[1, "bicubic PSNR"] - df[df.method == "bicubic"]["psnr"].mean()) < 1e-9
    wide = per_image_table(df)
    assert list(wide.columns) == ["image", "bicubic", "nearest"]


def test_evaluate_rejects_wrong_output_size():
    pairs = _sr_pairs(1, 6, 6)
    with pytest.raises(ValueError, match="ground truth"):
        evaluate({"same size": lambda x: x}, pairs, RGB, scale=4)
