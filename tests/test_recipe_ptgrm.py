"""PTG-RM training helpers (restore_lib.recipes.ptgrm): the output formula
against hand-computed values and against PTGRM itself, aligned and
reproducible crops, frozen vs joint training (which weights move), the logged
loss terms against an independent computation, cached F outputs against F run
on the crop, evaluation against direct scoring, and the
restoration-model prior loaded from (or retrained without) a checkpoint."""
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from restore_lib.data.io import to_tensor
from restore_lib.recipes import ptgrm as pt
from restore_lib.archs.ptgrm import PTGRM
from restore_lib.metrics import RGB
from restore_lib.priors import ZeroPrior
from restore_lib.train import TrainConfig, Trainer

TINY_R = dict(nf=4, num_blocks=1)


class PointwiseF(nn.Module):
    """A 1x1-conv 'restoration network': no spatial context, so F(crop) equals
    the crop of F(image) exactly."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1) * 0.9)
            self.conv.bias.fill_(0.05)

    def forward(self, x):
        return self.conv(x)


class MeanPrior(nn.Module):
    """A trivial frozen prior: the per-channel mean repeated to ``dim`` values."""

    def __init__(self, dim=6):
        super().__init__()
        self.dim = dim
        self.description = "channel means"

    def forward(self, x):
        return x.mean((2, 3)).repeat(1, self.dim // 3)


def make_pairs(n=4, h=40, w=44, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gt = rng.random((h, w, 3)).astype(np.float32)
        lq = np.clip(gt * 0.6 + 0.1 * rng.standard_normal((h, w, 3)), 0, 1).astype(np.float32)
        out.append((f"img{i}", lq, gt))
    return out


# --------------------------------------------------------------------- the output formula
def test_fuse_matches_hand_computation():
    i_c = torch.tensor([[[[0.5, 1.2]]]])
    i_d = torch.tensor([[[[0.1, 0.3]]]])
    i_m = torch.tensor([[[[0.5, 2.0]]]])
    i_r = torch.tensor([[[[0.01, -0.1]]]])
    paper = pt.fuse(i_c, i_d, i_m, i_r, "paper")
    assert torch.allclose(paper, torch.tensor([[[[0.1 + 0.4 * 0.5 + 0.01, 0.3 + 0.9 * 2.0 - 0.1]]]]))
    code = pt.fuse(i_c, i_d, None, i_r, "code")
    assert torch.allclose(code, torch.tensor([[[[0.51, 0.9]]]]))  # Î_c clamped to 1 before adding I_r
    with pytest.raises(ValueError, match="i_m"):
        pt.fuse(i_c, i_d, None, i_r, "paper")
    with pytest.raises(ValueError, match="mode"):
        pt.fuse(i_c, i_d, i_m, i_r, "other")


@pytest.mark.parametrize("mode", ["code", "paper"])
def test_fuse_is_the_modules_output_formula(mode):
    torch.manual_seed(0)
    module = PTGRM(prior_dim=8, output_mode=mode, **TINY_R).eval()
    i_c, i_d, g = torch.rand(2, 3, 12, 16), torch.rand(2, 3, 12, 16), torch.randn(2, 8)
    maps = {}
    hook = module.conv_last3.register_forward_hook(lambda m, i, o: maps.setdefault("out", o))
    with torch.no_grad():
        out = module(i_c, i_d, g)
    hook.remove()
    i_m, i_r = (None, maps["out"]) if mode == "code" else maps["out"].chunk(2, 1)
    assert torch.allclose(pt.fuse(i_c, i_d, i_m, i_r, mode), out, atol=1e-6)


# --------------------------------------------------------------------- data
def test_refinement_pairs_crops_are_aligned_and_reproducible():
    pairs = make_pairs()
    initial = {name: torch.from_numpy(lq).permute(2, 0, 1) + 1.0 for name, lq, _ in pairs}
    ds = pt.RefinementPairs(pairs, 16, initial=initial, seed=3)
    item = ds[1]
    assert item["lq"].shape == item["gt"].shape == item["init"].shape == (3, 16, 16)
    assert torch.equal(item["init"], item["lq"] + 1.0)  # F output cropped at the same place
    lq_full = torch.from_numpy(pairs[1][1]).permute(2, 0, 1)
    gt_full = torch.from_numpy(pairs[1][2]).permute(2, 0, 1)
    hits = [(t, l) for t in range(40 - 15) for l in range(44 - 15)
            if torch.equal(lq_full[:, t:t + 16, l:l + 16], item["lq"])]
    assert len(hits) == 1
    t, l = hits[0]
    assert torch.equal(gt_full[:, t:t + 16, l:l + 16], item["gt"])
    again = pt.RefinementPairs(pairs, 16, initial=initial, seed=3)[1]
    assert torch.equal(again["lq"], item["lq"])
    ds.set_epoch(1)
    assert not torch.equal(ds[1]["lq"], item["lq"])


def test_refinement_pairs_errors():
    pairs = make_pairs(2)
    with pytest.raises(KeyError, match="img1"):
        pt.RefinementPairs(pairs, 16, initial={"img0": torch.zeros(3, 40, 44)})
    with pytest.raises(ValueError, match="does not match"):
        pt.RefinementPairs(pairs, 16, initial={"img0": torch.zeros(3, 40, 44), "img1": torch.zeros(3, 8, 8)})
    with pytest.raises(ValueError, match="smaller than patch_size"):
        pt.RefinementPairs(pairs, 64)
    with pytest.raises(ValueError, match="same size|one size"):
        pt.RefinementPairs([("x", np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))], 4)


# --------------------------------------------------------------------- the model wrapper
def test_refined_model_keeps_prior_out_of_state_and_f_frozen():
    f = PointwiseF()
    model = pt.RefinedModel(f, PTGRM(prior_dim=6, **TINY_R), MeanPrior())
    assert all(k.startswith(("target.", "refiner.")) for k in model.state_dict())
    assert not any(p.requires_grad for p in model.target.parameters())
    model.train()
    assert model.refiner.training and not model.target.training
    model.double()  # .to()/.double() reach the unregistered prior as well
    out, init = model(torch.rand(1, 3, 12, 12, dtype=torch.float64), return_initial=True)
    assert out.dtype == torch.float64 and out.shape == init.shape == (1, 3, 12, 12)
    with pytest.raises(ValueError, match="prior"):
        pt.RefinedModel(PointwiseF(), PTGRM(prior_dim=6, **TINY_R), None)
    plain = pt.build_refiner(6, "Large R w/o SP/CA/SA", nf=4, plain_blocks=1)
    assert not plain.uses_prior
    assert pt.RefinedModel(PointwiseF(), plain, None)(torch.rand(1, 3, 12, 12)).shape == (1, 3, 12, 12)


def test_build_refiner_applies_ablation_rows():
    assert pt.build_refiner(32, "SNR Value as Mask", **TINY_R).sve_mask == "snr"
    assert pt.build_refiner(32, "Use 2D Priors via Con.", nf=4, plain_blocks=1).prior_dim == 1280
    assert pt.build_refiner(32).prior_dim == 32
    with pytest.raises(ValueError, match="unknown PTG-RM ablation"):
        pt.build_refiner(32, "w/o everything")


# --------------------------------------------------------------------- training
def _trainer(model, data, steps=3, joint=False, lambda1=1.0):
    cfg = TrainConfig(total_steps=steps, batch_size=2, lr=1e-3, log_every=1, seed=0)
    return pt.RefinementTrainer(model, data, cfg, joint=joint, lambda1=lambda1, device="cpu", progress=False)


def test_frozen_training_moves_only_r_and_logs_both_terms():
    torch.manual_seed(0)
    pairs = make_pairs()
    model = pt.RefinedModel(PointwiseF(), PTGRM(prior_dim=6, **TINY_R), MeanPrior())
    f_before = {k: v.clone() for k, v in model.target.state_dict().items()}
    r_before = {k: v.clone() for k, v in model.refiner.state_dict().items()}
    data = pt.RefinementPairs(pairs, 16, seed=0)
    trainer = _trainer(model, data, lambda1=0.5)
    # the first batch, and F's loss on it computed independently
    batch = next(iter(trainer._loader(0, 0)))
    charb = lambda a, b: torch.sqrt((a - b) ** 2 + 1e-6).mean()  # noqa: E731
    with torch.no_grad():
        expected_f = float(charb(model.target(batch["lq"]), batch["gt"]))
    hist = trainer.fit()
    first = hist.dropna(subset=["loss_R"]).iloc[0]
    assert first["loss_F"] == pytest.approx(expected_f, rel=1e-5)
    assert first["loss"] == pytest.approx(first["loss_F"] + 0.5 * first["loss_R"], rel=1e-6)
    assert all(torch.equal(v, f_before[k]) for k, v in model.target.state_dict().items())
    assert any(not torch.equal(v, r_before[k]) for k, v in model.refiner.state_dict().items())


def test_cached_f_outputs_give_the_same_training():
    pairs = make_pairs()
    runs = []
    for cached in (False, True):
        torch.manual_seed(0)
        f = PointwiseF()
        model = pt.RefinedModel(f, PTGRM(prior_dim=6, **TINY_R), MeanPrior())
        initial = pt.initial_outputs(f, pairs) if cached else None
        runs.append(_trainer(model, pt.RefinementPairs(pairs, 16, initial=initial, seed=0)).fit())
    cols = ["loss", "loss_F", "loss_R"]
    a, b = (r.dropna(subset=["loss_R"])[cols].to_numpy() for r in runs)
    assert np.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_joint_training_moves_f_too():
    torch.manual_seed(0)
    model = pt.RefinedModel(PointwiseF(), PTGRM(prior_dim=6, **TINY_R), MeanPrior(), freeze_target=False)
    f_before = model.target.conv.weight.clone()
    _trainer(model, pt.RefinementPairs(make_pairs(), 16, seed=0), joint=True).fit()
    assert not torch.equal(model.target.conv.weight, f_before)
    with pytest.raises(ValueError, match="freeze_target"):
        _trainer(pt.RefinedModel(PointwiseF(), PTGRM(prior_dim=6, **TINY_R), MeanPrior()),
                 pt.RefinementPairs(make_pairs(), 16), joint=True)
    with pytest.raises(ValueError, match="jointly"):
        pt.train_refiner(PointwiseF(), MeanPrior(), make_pairs(), steps=1, batch_size=2, patch_size=16, lr=1e-3,
                         seed=0, initial={}, joint=True)


def test_train_refiner_is_seeded_and_uses_the_prior_width():
    pairs = make_pairs()
    kw = dict(steps=2, batch_size=2, patch_size=16, lr=1e-3, seed=5, **TINY_R)
    m1, h1 = pt.train_refiner(PointwiseF(), ZeroPrior(dim=12), pairs, **kw)
    torch.manual_seed(123)  # global state before the call must not matter
    m2, h2 = pt.train_refiner(PointwiseF(), ZeroPrior(dim=12), pairs, **kw)
    assert m1.refiner.prior_dim == 12
    assert all(torch.equal(a, b) for a, b in zip(m1.refiner.state_dict().values(), m2.refiner.state_dict().values()))
    assert list(h1["loss_R"].dropna()) == list(h2["loss_R"].dropna())


def test_final_losses_average_the_last_quarter():
    hist = pd.DataFrame({"step": range(1, 9), "loss_F": [1.0] * 8, "loss_R": [8, 7, 6, 5, 4, 3, 2, 1.0]})
    out = pt.final_losses(hist)
    assert out == {"loss_F": 1.0, "loss_R": 1.5, "steps": 8, "averaged_over": 2}
    with pytest.raises(ValueError, match="loss_R"):
        pt.final_losses(pd.DataFrame({"step": [1], "loss": [1.0]}))


# --------------------------------------------------------------------- evaluation
def test_evaluate_refinement_scores_input_f_and_refined_output():
    torch.manual_seed(0)
    pairs = make_pairs(3)
    f = PointwiseF()
    model = pt.RefinedModel(f, PTGRM(prior_dim=6, **TINY_R), MeanPrior()).eval()
    ours = pt.evaluate_refinement(model, pairs, RGB)
    with torch.no_grad():
        for (name, lq, gt), row in zip(pairs, ours.itertuples()):
            lq, gt = to_tensor(lq)[None], to_tensor(gt)[None]
            assert row.name == name
            assert row.psnr_in == pytest.approx(RGB.evaluate(lq, gt)["psnr"])
            assert row.psnr_F == pytest.approx(RGB.evaluate(f(lq).clamp(0, 1), gt)["psnr"])
            assert row.psnr == pytest.approx(RGB.evaluate(model(lq).clamp(0, 1), gt)["psnr"])
            assert row.ssim == pytest.approx(RGB.evaluate(model(lq).clamp(0, 1), gt)["ssim"])
    cached = pt.evaluate_refinement(model, pairs, RGB, initial=pt.initial_outputs(f, pairs))
    assert np.allclose(cached[["psnr", "psnr_F"]], ours[["psnr", "psnr_F"]])


def test_with_delta_prints_like_the_paper():
    assert pt.with_delta(22.91, 19.87) == "22.91 (+3.04)"
    assert pt.with_delta(0.767, 0.706, "ssim") == "0.767 (+6.1)"
    assert pt.with_delta(20.0, 20.5) == "20.00 (-0.50)"


# --------------------------------------------------------------------- the "-r" prior network
def test_restoration_prior_network_loads_or_retrains(tmp_path):
    pairs = make_pairs(8, 32, 32)
    torch.manual_seed(0)
    from restore_lib.data.datasets import MemoryPairs
    from restore_lib.models import build_model

    net = build_model("baseline_cnn")
    cfg = TrainConfig(total_steps=2, batch_size=4, lr=1e-3, seed=0)
    Trainer(net, MemoryPairs(pairs, patch_size=16), nn.L1Loss(), cfg, ckpt_dir=tmp_path / "run", device="cpu",
            progress=False).fit()
    loaded, source = pt.restoration_prior_network(tmp_path / "run" / "last.pt")
    assert "loaded from" in source and not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values()))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        pt.restoration_prior_network(tmp_path / "missing.pt")
    trained, source = pt.restoration_prior_network(tmp_path / "missing.pt", fallback_pairs=pairs, steps=2,
                                                   batch_size=4, patch_size=16)
    assert "trained here" in source and "missing.pt" in source


def test_evaluate_refinement_reuses_baseline_scores():
    torch.manual_seed(0)
    pairs = make_pairs(2)
    model = pt.RefinedModel(PointwiseF(), PTGRM(prior_dim=6, **TINY_R), MeanPrior()).eval()
    first = pt.evaluate_refinement(model, pairs, RGB)
    fake = first.assign(psnr_F=[1.0, 2.0], psnr_in=[3.0, 4.0])
    again = pt.evaluate_refinement(model, pairs, RGB, baseline=fake)
    assert list(again["psnr_F"]) == [1.0, 2.0] and list(again["psnr_in"]) == [3.0, 4.0]  # taken, not recomputed
    assert np.allclose(again["psnr"], first["psnr"])


def test_prior_signal_measures_the_mapped_prior():
    torch.manual_seed(0)
    pairs = make_pairs(3, 16, 20)
    f = PointwiseF()
    refiner = PTGRM(prior_dim=6, **TINY_R).eval()
    zero = pt.prior_signal(refiner, ZeroPrior(dim=6), pairs, target=f)
    assert zero["Tm_rms"] == zero["Tc_rms"] == zero["Tm_spread"] == 0.0 and zero["f_rms"] > 0
    sig = pt.prior_signal(refiner, MeanPrior(), pairs, initial=pt.initial_outputs(f, pairs))
    g = torch.stack([torch.from_numpy(lq).permute(2, 0, 1).mean((1, 2)).repeat(2) for _, lq, _ in pairs])
    tm = refiner.mapp_space2(torch.nn.functional.leaky_relu(refiner.mapp_space1(g), 0.1)).detach()
    assert sig["Tm_rms"] == pytest.approx(float(tm.pow(2).mean().sqrt()), rel=1e-5)
    assert sig["Tm_spread"] == pytest.approx(float((tm - tm.mean(0)).pow(2).mean().sqrt()), rel=1e-5)
    with pytest.raises(ValueError, match="full setting|learned SVE"):
        pt.prior_signal(pt.build_refiner(6, "w/o SP, with CA and SA", **TINY_R), MeanPrior(), pairs, target=f)
