"""Losses against independent formulas / scikit-image."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from restore_lib.losses import (CharbonnierLoss, EdgeLoss, L1SSIMLoss, MultiStageLoss, SSIMLoss, TVLoss,
                                build_loss)


def _pair(seed=0, shape=(2, 3, 32, 32)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), torch.rand(shape, generator=g)


def test_charbonnier_formula():
    p, t = _pair()
    d = (p - t).numpy().astype(np.float64)
    assert float(CharbonnierLoss()(p, t)) == pytest.approx(np.mean(np.sqrt(d ** 2 + 1e-6)), rel=1e-5)
    assert float(CharbonnierLoss()(p, p)) == pytest.approx(1e-3, rel=1e-5)


def test_ssim_loss_matches_skimage():
    p, t = _pair(shape=(1, 3, 32, 32))
    ref = structural_similarity(t[0].permute(1, 2, 0).double().numpy(), p[0].permute(1, 2, 0).double().numpy(),
                                data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert float(SSIMLoss()(p, t)) == pytest.approx(1 - ref, abs=1e-5)


def test_l1_ssim_is_convex_combination():
    p, t = _pair()
    total, logs = L1SSIMLoss(alpha=0.84)(p, t)
    assert float(total) == pytest.approx(0.84 * logs["ssim_loss"] + 0.16 * logs["l1"], rel=1e-6)
    assert logs["l1"] == pytest.approx(float(F.l1_loss(p, t)))
    with pytest.raises(ValueError):
        L1SSIMLoss(alpha=2)


def test_edge_loss_laplacian_vanishes_on_constant_and_linear_ramps():
    edge = EdgeLoss()
    const = torch.full((1, 3, 32, 32), 0.3)
    # interior only: like MPRNet, the zero-inserted image is replicate-padded, which biases the border
    assert edge.laplacian(const)[..., 4:-4, 4:-4].abs().max() < 1e-6
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32).contiguous()
    lap = edge.laplacian(ramp)[..., 4:-4, 4:-4]
    sharp = ramp.clone()
    sharp[..., 16:] += 0.5  # a step edge gives a strong response
    assert edge.laplacian(sharp)[..., 4:-4, 4:-4].abs().max() > 10 * lap.abs().max()
    p, t = _pair()
    assert float(edge(p, p)) == pytest.approx(1e-3, rel=1e-4)
    assert float(edge(p, t)) > 0.05


def test_multistage_sums_stages():
    p, t = _pair()
    p2 = (p + t) / 2
    total, logs = MultiStageLoss()([p, p2], t)
    single = [float(MultiStageLoss()(x, t)[0]) for x in (p, p2)]
    assert float(total) == pytest.approx(sum(single), rel=1e-6)
    assert set(logs) == {"stage1", "stage2"}


def test_tv_zero_on_constant():
    assert float(TVLoss()(torch.full((1, 3, 8, 8), 0.5))) == 0.0
    x = torch.zeros(1, 1, 2, 2)
    x[..., 0, 0] = 1
    # differences: vertical (1-0)^2 at one of 2 pairs, horizontal the same
    assert float(TVLoss()(x)) == pytest.approx(0.5 + 0.5)


def test_build_loss_unknown():
    with pytest.raises(ValueError, match="known losses"):
        build_loss("l3")
    assert float(build_loss("l1")(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))) == 1.0


def test_feature_losses_use_offline_mobilenet_and_say_so(monkeypatch, tmp_path):
    from restore_lib.losses import ContrastLoss, PerceptualLoss, SRGANGeneratorLoss, StripformerLoss

    monkeypatch.setenv("RESTORE_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    p, t = _pair(shape=(1, 3, 32, 32))
    per = PerceptualLoss()
    assert "mobilenet" in per.description.lower()
    assert float(per(p, p)) == 0.0 and float(per(p, t)) > 0
    con = ContrastLoss()
    batch = {"lq": t}
    # the anchor equal to the positive gives 0; equal to the negative gives ~1/eps-free ratio > 0
    assert float(con(t, p, {"lq": p + 0.1})) > 0
    assert float(con(p, p, batch)) == 0.0
    with pytest.raises(ValueError, match="degraded input"):
        con(p, t)
    total, logs = StripformerLoss()(p, t, batch)
    assert set(logs) == {"char", "edge", "contrast"}
    assert float(total) == pytest.approx(logs["char"] + 0.05 * logs["edge"] + 0.0005 * logs["contrast"], rel=1e-5)
    no_con = StripformerLoss(contrast_weight=0)
    assert "contrast" not in no_con(p, t, batch)[1]
    g_total, g_logs = SRGANGeneratorLoss()(p, t, {"d_fake_logits": torch.zeros(1, 1)})
    assert "adversarial" in g_logs and "mobilenet" in SRGANGeneratorLoss().description.lower()
    # parameters of the frozen network never train
    assert not any(q.requires_grad for q in per.parameters())


def test_srgan_generator_loss_pixel_weight_adds_the_pixel_mse():
    from restore_lib.losses import SRGANGeneratorLoss

    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    plain = SRGANGeneratorLoss(kind="mobilenet_v2")
    with_pixel = SRGANGeneratorLoss(kind="mobilenet_v2", pixel_weight=2.0)
    with_pixel.content = plain.content                  # the same frozen features
    (a, logs_a), (b, logs_b) = plain(pred, target), with_pixel(pred, target)
    torch.testing.assert_close(b - a, 2.0 * F.mse_loss(pred, target))
    assert "pixel" not in logs_a and logs_b["pixel"] == pytest.approx(float(F.mse_loss(pred, target)))
    assert with_pixel.description.startswith("2*pixel MSE + content MSE")


def test_stripformer_loss_contrast_layer_reaches_the_feature_extractor():
    from restore_lib.losses import StripformerLoss

    official = StripformerLoss(kind="mobilenet_v2")
    report = StripformerLoss(kind="mobilenet_v2", contrast_layer="conv3_2")
    assert "vgg19 relu3_1 (stripformer_contrast)" in official.description
    assert "vgg19 conv3_2" in report.description and "relu3_1" not in report.description
    assert StripformerLoss(contrast_weight=0.0, contrast_layer="conv3_2").contrast is None
