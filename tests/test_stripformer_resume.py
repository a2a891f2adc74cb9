"""Notebook 02's training set-up resumes exactly: Stripformer (small preset),
the Stripformer loss (Charbonnier + edge + contrastive), Adam 1e-3 with the
report's betas, the report's monitor, a checkpoint after every epoch. A run
interrupted mid-epoch and resumed by a fresh Trainer ends bit-identical to an
uninterrupted run on CPU (weights, optimizer state and logged history)."""
import numpy as np
import pytest
import torch

from restore_lib.recipes.stripformer import ReportMonitor
from restore_lib.data.datasets import MemoryPairs
from restore_lib.data.degradations import motion_blur
from restore_lib.losses import StripformerLoss
from restore_lib.models import build_model
from restore_lib.train import TrainConfig, Trainer

STEPS = 7            # 6 pairs, batch 2: 3 steps per epoch, so the run ends inside epoch 2


def _pairs(n, size, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gt = np.clip(np.cumsum(rng.normal(0, 0.08, (size, size, 3)), axis=1) + 0.5, 0, 1).astype(np.float32)
        lq = motion_blur(gt, rng, kind="linear", length=(3, 7))[0].astype(np.float32)
        out.append((f"img{i}", lq, gt))
    return out


@pytest.fixture(scope="module")
def loss():
    return StripformerLoss()


def _trainer(ckpt_dir, loss, resume):
    torch.manual_seed(0)
    model = build_model("stripformer", "small", block_init="identity")
    data = MemoryPairs(_pairs(6, 24, 0), patch_size=16, seed=5)
    cfg = TrainConfig(total_steps=STEPS, batch_size=2, optimizer="adam", lr=1e-3, betas=(0.9, 0.999),
                      scheduler="constant", log_every=1, seed=5)
    monitor = ReportMonitor(_pairs(3, 20, 1), every=2, seed=5, verbose=False)
    return Trainer(model, data, loss, cfg, ckpt_dir=ckpt_dir, device="cpu", progress=False, resume=resume,
                   callbacks=[monitor])


def _assert_same(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    oa, ob = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert oa.keys() == ob.keys() and len(oa) == len(list(a.model.parameters()))
    for i in oa:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(oa[i][name], ob[i][name]), (i, name)


def test_interrupted_and_resumed_run_is_bit_identical(tmp_path, loss):
    assert "contrast" in loss.description
    full = _trainer(tmp_path / "full", loss, resume=False)
    full.fit()

    first = _trainer(tmp_path / "cut", loss, resume=False)
    first.fit(stop_at_step=4)                    # interrupted in the middle of epoch 1
    assert (first.step, first.epoch, first.batch_in_epoch) == (4, 1, 1)
    second = _trainer(tmp_path / "cut", loss, resume=True)
    assert second.resumed_from is not None and second.step == 4
    second.fit()

    assert second.step == full.step == STEPS
    _assert_same(full, second)
    assert second.history == full.history
    assert [r["test_psnr"] for r in full.history if "test_psnr" in r] == \
        [r["test_psnr"] for r in second.history if "test_psnr" in r]


def test_checkpoint_after_every_epoch_holds_model_and_optimizer(tmp_path, loss):
    trainer = _trainer(tmp_path, loss, resume=False)
    seen = []

    class Spy:
        def on_epoch_end(self, tr, epoch):
            seen.append(epoch)

    trainer.callbacks.append(Spy())
    trainer.fit(stop_at_step=3)                  # exactly one epoch
    assert seen == [0]
    state = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 1 and state["step"] == 3 and state["batch_in_epoch"] == 0
    assert state["model"].keys() == trainer.model.state_dict().keys()
    assert len(state["optimizer"]["state"]) == len(list(trainer.model.parameters()))
    assert tuple(state["optimizer"]["param_groups"][0]["betas"]) == (0.9, 0.999)
