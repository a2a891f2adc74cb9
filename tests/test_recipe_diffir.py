"""DiffIR training stages: losses against hand-computed values, what is
trained and what stays frozen, exact resume of stage 2 (with the IPR tracker),
teacher checks, the no-prior baseline and the evaluation helpers."""
import numpy as np
import pandas as pd
import pytest
import torch

from restore_lib.checkpoints import CheckpointError
from restore_lib.data.datasets import MemoryPairs
from restore_lib.data.io import to_tensor
from restore_lib.metrics import RGB, SR_Y
from restore_lib.models import build_model, count_parameters
from restore_lib.recipes.diffir import (DiffIRStage1Trainer, DiffIRStage2Trainer, IPRTracker, NoPriorDIRformer,
                                        init_s2_from_s1, ipr_distance, state_fingerprint)
from restore_lib.train import TrainConfig

TINY = dict(dim=8, n_feats=4)


def _models(task="deblur", seed=0):
    torch.manual_seed(seed)
    preset = "sr_small" if task == "sr" else "small"
    s1 = build_model("diffir_s1", preset, **TINY)
    s2 = build_model("diffir_s2", preset, **TINY)
    init_s2_from_s1(s2, s1, verbose=False)
    return s1, s2


def _pairs(n=4, size=24, scale=1, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gt = rng.random((size, size, 3)).astype(np.float32)
        lq = gt[::scale, ::scale] * 0.8 + 0.1
        out.append((f"img{i}", lq.astype(np.float32), gt))
    return out


def _cfg(**kw):
    base = dict(total_steps=4, batch_size=2, lr=1e-3, optimizer="adam", log_every=1, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before, module, prefix):
    after = module.state_dict()
    return [k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])]


# --------------------------------------------------------------------------- no-prior baseline

@pytest.mark.parametrize("task", ["deblur", "sr"])
def test_no_prior_matches_restore_without_ipr_and_drops_kernels(task):
    s1, _ = _models(task)
    kernels = sum(p.numel() for n, p in s1.G.named_parameters() if ".kernel." in n)
    g_params = sum(p.numel() for p in s1.G.parameters())
    scale = s1.scale
    lq = torch.rand(1, 3, 13, 19)
    with torch.no_grad():
        expected = s1.restore(lq, None)
    base = NoPriorDIRformer(s1).eval()
    assert count_parameters(base) == g_params - kernels and kernels > 0
    assert not any(".kernel." in k for k in base.state_dict())
    with torch.no_grad():
        out = base(lq)
    assert out.shape == (1, 3, 13 * scale, 19 * scale)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_no_prior_rejects_other_models():
    with pytest.raises(TypeError):
        NoPriorDIRformer(build_model("baseline_cnn"))


# --------------------------------------------------------------------------- stage 1

def test_stage1_loss_is_l1_with_gt_prior_and_trains_both_networks():
    s1, _ = _models()
    data = MemoryPairs(_pairs(), patch_size=16, seed=0)
    trainer = DiffIRStage1Trainer(s1, data, _cfg(total_steps=1), device="cpu", progress=False)
    batch = next(iter(trainer._loader(0, 0)))
    with torch.no_grad():
        pred, ipr = s1(batch["lq"], batch["gt"])
        expected = (pred - batch["gt"]).abs().mean().item()
    before = _snapshot(s1)
    trainer.fit()
    assert trainer.history[0]["loss"] == pytest.approx(expected, rel=1e-6)
    assert _changed(before, s1, "E.") and _changed(before, s1, "G.")


def test_stage1_validation_uses_the_gt_prior():
    s1, _ = _models()
    val = MemoryPairs(_pairs(2, seed=1))
    trainer = DiffIRStage1Trainer(s1, MemoryPairs(_pairs(), patch_size=16), _cfg(total_steps=1), val_set=val,
                                  device="cpu", progress=False)
    metrics = trainer.validate()
    with torch.no_grad():
        want = np.mean([RGB.evaluate(s1(val[i]["lq"][None], val[i]["gt"][None])[0].clamp(0, 1),
                                     val[i]["gt"][None])["psnr"] for i in range(2)])
    assert metrics["val_psnr"] == pytest.approx(want, rel=1e-9)


def test_stage1_rejects_a_stage2_model():
    _, s2 = _models()
    with pytest.raises(TypeError, match="DiffIRS1"):
        DiffIRStage1Trainer(s2, MemoryPairs(_pairs(), patch_size=16), _cfg(), device="cpu")


# --------------------------------------------------------------------------- stage 2

def test_stage2_loss_matches_hand_computation_and_freezes_the_teacher():
    s1, s2 = _models()
    data = MemoryPairs(_pairs(), patch_size=16, seed=0)
    trainer = DiffIRStage2Trainer(s2, s1, data, _cfg(total_steps=1), device="cpu", progress=False)
    assert not any(p.requires_grad for p in s1.parameters()) and not s1.training
    batch = next(iter(trainer._loader(0, 0)))
    state = torch.get_rng_state()
    with torch.no_grad():
        z = s1.encode(batch["lq"], batch["gt"])
        # the forward process by hand: z_T = sqrt(abar_T) z + sqrt(1 - abar_T) eps, then 4 posterior means
        eps = torch.randn(z.shape)
        abar = torch.cumprod(1 - torch.linspace(0.1 ** 0.5, 0.99 ** 0.5, 4, dtype=torch.float64) ** 2, 0)
        zt = (abar[-1].sqrt() * z + (1 - abar[-1]).sqrt() * eps).float()
        c = s2.condition(batch["lq"])
        betas = 1 - abar / torch.cat([abar.new_ones(1), abar[:-1]])
        prev = torch.cat([abar.new_ones(1), abar[:-1]])
        for i in reversed(range(4)):
            z0 = s2.denoise(zt, torch.full((z.shape[0],), i), c)
            c1 = (betas[i] * prev[i].sqrt() / (1 - abar[i])).float()
            c2 = ((1 - prev[i]) * (1 - betas[i]).sqrt() / (1 - abar[i])).float()
            zt = c1 * z0 + c2 * zt
        restored = s2.restore(batch["lq"], zt)
        want_ipr = (zt - z).abs().mean().item()
        want_rec = (restored - batch["gt"]).abs().mean().item()
    torch.set_rng_state(state)
    before_teacher, before = _snapshot(s1), _snapshot(s2)
    trainer.fit()
    rec = trainer.history[0]
    assert rec["loss_ipr"] == pytest.approx(want_ipr, rel=1e-4, abs=1e-7)
    assert rec["loss_rec"] == pytest.approx(want_rec, rel=1e-5)
    assert rec["loss"] == pytest.approx(want_ipr + want_rec, rel=1e-5)
    assert not _changed(before_teacher, s1, "")
    for prefix in ("G.", "condition.", "denoise."):
        assert _changed(before, s2, prefix), prefix


def test_stage2_prior_only_keeps_the_dirformer():
    s1, s2 = _models()
    data = MemoryPairs(_pairs(), patch_size=16, seed=0)
    trainer = DiffIRStage2Trainer(s2, s1, data, _cfg(total_steps=2), joint=False, device="cpu", progress=False)
    before = _snapshot(s2)
    trainer.fit()
    assert not _changed(before, s2, "G.")
    assert _changed(before, s2, "condition.") and _changed(before, s2, "denoise.")
    assert "loss_rec" not in trainer.history[0]
    assert trainer.history[0]["loss"] == trainer.history[0]["loss_ipr"]


def test_stage2_checks_its_arguments():
    s1, s2 = _models()
    sr1, _ = _models("sr")
    data = MemoryPairs(_pairs(), patch_size=16)
    with pytest.raises(ValueError, match="teacher"):
        DiffIRStage2Trainer(s2, sr1, data, _cfg(), device="cpu")
    with pytest.raises(TypeError, match="teacher"):
        DiffIRStage2Trainer(s2, s2, data, _cfg(), device="cpu")
    with pytest.raises(TypeError, match="params"):
        DiffIRStage2Trainer(s2, s1, data, _cfg(), device="cpu", params=list(s2.parameters()))


def _stage2_run(tmp, stop=None, teacher_seed=0, resume=True):
    s1, s2 = _models()
    if teacher_seed:
        torch.manual_seed(teacher_seed)
        s1 = build_model("diffir_s1", "small", **TINY)
    tracker = IPRTracker(s1, _pairs(2, seed=5), seed=1)
    data = MemoryPairs(_pairs(5), patch_size=16, seed=0)
    trainer = DiffIRStage2Trainer(s2, s1, data, _cfg(total_steps=6, val_every=2), val_set=MemoryPairs(_pairs(2, seed=5)),
                                  callbacks=[tracker], ckpt_dir=tmp, device="cpu", progress=False, resume=resume)
    if trainer.step == 0:
        tracker.measure(s2, 0)
    trainer.fit(stop_at_step=stop)
    return trainer, tracker


def test_stage2_resume_is_bit_identical_with_tracker_records(tmp_path):
    full, full_tracker = _stage2_run(tmp_path / "full")
    part, _ = _stage2_run(tmp_path / "part", stop=3)
    assert part.step == 3
    torch.manual_seed(1234)  # the resumed run must not depend on the caller's RNG
    resumed, tracker = _stage2_run(tmp_path / "part")
    assert resumed.resumed_from is not None
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert [r["step"] for r in tracker.records] == [0, 2, 4, 6]
    assert tracker.records == full_tracker.records
    assert [r.get("loss") for r in full.history] == [r.get("loss") for r in resumed.history]


def test_stage2_refuses_to_resume_with_another_teacher(tmp_path):
    _stage2_run(tmp_path, stop=2)
    with pytest.raises(CheckpointError, match="teacher"):
        _stage2_run(tmp_path, teacher_seed=7)


def test_state_fingerprint_changes_with_weights():
    s1, _ = _models()
    fp = state_fingerprint(s1)
    assert fp == state_fingerprint(s1)
    with torch.no_grad():
        next(s1.parameters()).add_(1e-3)
    assert state_fingerprint(s1) != fp


# --------------------------------------------------------------------------- IPR tracking

def test_ipr_distance_against_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 8)), rng.normal(size=(3, 8))
    d = ipr_distance(torch.from_numpy(a), torch.from_numpy(b))
    cos = [x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b)]
    assert d["l1"] == pytest.approx(np.abs(a - b).mean())
    assert d["cosine"] == pytest.approx(np.mean(cos))
    assert d["rel_l1"] == pytest.approx(np.mean(np.abs(a - b).sum(1) / np.abs(b).sum(1)))
    assert ipr_distance(torch.from_numpy(b), torch.from_numpy(b))["cosine"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ipr_distance(torch.zeros(2, 3), torch.zeros(3, 3))


def test_tracker_measures_the_seeded_sample_against_the_teacher():
    s1, s2 = _models()
    pairs = _pairs(2, seed=9)
    tracker = IPRTracker(s1, pairs, seed=4)
    rec = tracker.measure(s2, 0)
    with torch.no_grad():
        preds, targets = [], []
        for _, lq, gt in pairs:
            lq, gt = to_tensor(lq)[None], to_tensor(gt)[None]
            preds.append(s2.sample_ipr(lq, generator=4))
            targets.append(s1.encode(lq, gt))
    want = ipr_distance(torch.cat(preds), torch.cat(targets))
    assert rec["ipr_l1"] == pytest.approx(want["l1"]) and rec["ipr_cosine"] == pytest.approx(want["cosine"])
    spread = torch.cat(targets)
    assert rec["const_l1"] == pytest.approx(float((spread - spread.mean(0)).abs().mean()))
    tracker.measure(s2, 0)  # same step again: replaced, not duplicated
    assert len(tracker.records) == 1
    other = IPRTracker(s1, pairs, seed=4)
    other.load_state_dict(tracker.state_dict())
    assert other.records == tracker.records
    with pytest.raises(ValueError, match="seed"):
        IPRTracker(s1, pairs, seed=5).load_state_dict(tracker.state_dict())


