"""The training loop: exact resume, NaN guard, checkpoint contents, scheduling."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from restore_lib.checkpoints import CheckpointError
from restore_lib.models import build_model
from restore_lib.train import NonFiniteLossError, TrainConfig, Trainer


class NoisyCrops(torch.utils.data.Dataset):
    """Random crops + noise drawn from (seed, epoch, index) only."""

    def __init__(self, n=12, size=24, crop=16, seed=0):
        g = torch.Generator().manual_seed(123)
        self.images = torch.rand(n, 3, size, size, generator=g)
        self.crop, self.seed, self.epoch = crop, seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        y, x = rng.integers(0, self.images.shape[-1] - self.crop + 1, size=2)
        gt = self.images[i, :, y:y + self.crop, x:x + self.crop]
        noise = torch.from_numpy(rng.normal(0, 0.1, size=gt.shape).astype(np.float32))
        return {"lq": (gt + noise).clamp(0, 1), "gt": gt, "name": str(i)}


class DropoutNet(nn.Module):
    """Uses the global RNG (dropout) so resuming must restore RNG state too."""

    def __init__(self):
        super().__init__()
        self.body = build_model("baseline_cnn", width=8, depth=3)
        self.drop = nn.Dropout2d(0.2)

    def forward(self, x):
        return self.drop(self.body(x))


def l1(pred, gt, batch):
    return (pred - gt).abs().mean()


def _cfg(**kw):
    base = dict(total_steps=14, batch_size=4, lr=1e-3, log_every=2, seed=7)
    base.update(kw)
    return TrainConfig(**base)


def _make(tmp, cfg, resume=True):
    torch.manual_seed(0)
    return Trainer(DropoutNet(), NoisyCrops(), l1, cfg, ckpt_dir=tmp, device="cpu", progress=False,
                   resume=resume)


def test_resume_is_bit_identical(tmp_path):
    full = _make(tmp_path / "full", _cfg())
    full.fit()
    # interrupted mid-epoch (3 steps per epoch), then resumed by a fresh Trainer
    part = _make(tmp_path / "part", _cfg())
    part.fit(stop_at_step=5)
    assert part.step == 5 and (tmp_path / "part" / "last.pt").is_file()
    torch.manual_seed(999)  # resuming must not depend on the caller's RNG state
    resumed = _make(tmp_path / "part", _cfg())
    assert resumed.step == 5 and resumed.resumed_from is not None
    resumed.fit()
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    losses_full = [r["loss"] for r in full.history if "loss" in r]
    losses_res = [r["loss"] for r in resumed.history if "loss" in r]
    assert losses_full == losses_res


def test_checkpoint_contents_and_history(tmp_path):
    t = _make(tmp_path, _cfg(total_steps=6))
    hist = t.fit()
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "scaler", "rng", "step", "epoch", "history", "config"):
        assert key in state
    assert state["step"] == 6
    assert list(hist["step"].dropna().astype(int))[:3] == [2, 4, 6]
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind


def test_epoch_checkpoint_every_epoch(tmp_path):
    class Count:
        epochs = []

        def on_epoch_end(self, trainer, epoch):
            self.epochs.append((epoch, (tmp_path / "last.pt").is_file()))

    cb = Count()
    t = Trainer(DropoutNet(), NoisyCrops(), l1, _cfg(total_steps=7), ckpt_dir=tmp_path, device="cpu",
                progress=False, callbacks=[cb])
    t.fit()
    assert [e for e, _ in cb.epochs] == [0, 1]
    assert t.epoch == 2 and t.batch_in_epoch == 1


def test_nan_loss_stops_with_clear_error(tmp_path):
    def bad(pred, gt, batch):
        return (pred - gt).abs().mean() * float("nan")

    t = Trainer(DropoutNet(), NoisyCrops(), bad, _cfg(), device="cpu", progress=False)
    with pytest.raises(NonFiniteLossError, match="step 0"):
        t.fit()


def test_cosine_reaches_eta_min_and_loss_decreases(tmp_path):
    torch.manual_seed(0)
    model = build_model("baseline_cnn", width=16, depth=4)
    t = Trainer(model, NoisyCrops(n=16), l1, _cfg(total_steps=60, lr=2e-3, eta_min=1e-5, log_every=10),
                val_set=NoisyCrops(n=4), device="cpu", progress=False)
    hist = t.fit()
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    losses = hist["loss"].dropna().tolist()
    assert losses[-1] < losses[0]
    assert "val_psnr" in hist.columns


def test_resume_rejects_foreign_checkpoint(tmp_path):
    torch.save({"params": {}}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="not a restore_lib training checkpoint"):
        _make(tmp_path, _cfg())


def test_config_validation():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="fewer than one batch"):
        Trainer(DropoutNet(), NoisyCrops(n=2), l1, _cfg(batch_size=4), device="cpu")


def test_plain_torch_losses_work_too(tmp_path):
    t = Trainer(DropoutNet(), NoisyCrops(), nn.L1Loss(), _cfg(total_steps=2), device="cpu", progress=False)
    t.fit()
    assert t.step == 2


def test_resume_refuses_a_changed_configuration(tmp_path):
    _make(tmp_path, _cfg()).fit(stop_at_step=3)
    with pytest.raises(CheckpointError, match=r"lr: 0.001 -> 0.002"):
        _make(tmp_path, _cfg(lr=2e-3))
    _make(tmp_path, _cfg(log_every=5))  # logging cadence may change


# ---------------------------------------------------------------- nothing wrong passes silently
@pytest.mark.parametrize("field, value", [("grad_clip", -1.0), ("grad_clip", float("nan")), ("val_every", -1),
                                          ("lr", 0.0), ("ckpt_every", -5), ("total_steps", 2.5),
                                          ("betas", (0.9,)), ("weight_decay", float("inf"))])
def test_train_config_refuses_values_that_would_train_wrongly(field, value):
    from restore_lib.train import TrainConfig

    with pytest.raises(ValueError, match=f"TrainConfig: {field} must be"):
        TrainConfig(**{field: value})


def test_refitting_a_finished_run_changes_nothing(tmp_path):
    first = Trainer(DropoutNet(), NoisyCrops(), l1, _cfg(total_steps=6), val_set=NoisyCrops(n=2), ckpt_dir=tmp_path,
                    device="cpu", progress=False)
    first.fit()
    saved = (tmp_path / "last.pt").read_bytes()
    again = Trainer(DropoutNet(), NoisyCrops(), l1, _cfg(total_steps=6), val_set=NoisyCrops(n=2), ckpt_dir=tmp_path,
                    device="cpu", progress=False)
    history = again.fit()
    assert len(history) == len(first.history)               # no second "final" validation row
    assert sum("val_psnr" in r for r in again.history) == 1
    assert (tmp_path / "last.pt").read_bytes() == saved


def test_orphaned_temp_files_of_a_killed_write_are_removed(tmp_path):
    _make(tmp_path, _cfg(total_steps=3)).fit()
    orphan = tmp_path / ".last.pt.abc123.tmp"                  # what a kill during atomic_torch_save leaves
    orphan.write_bytes(b"half a checkpoint")
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    _make(tmp_path, _cfg(total_steps=3))
    assert not orphan.exists() and keep.read_text() == "mine"


def test_a_last_pt_that_is_not_a_file_is_refused(tmp_path):
    (tmp_path / "last.pt").mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match="last.pt: expected a checkpoint file, found a folder"):
        _make(tmp_path, _cfg())
    (tmp_path / "blocked").write_text("x")
    with pytest.raises(NotADirectoryError, match="blocked: the checkpoint folder is a file"):
        _make(tmp_path / "blocked", _cfg())


def test_resume_refuses_other_run_info_naming_the_field(tmp_path):
    def make(**info):
        torch.manual_seed(0)
        return Trainer(DropoutNet(), NoisyCrops(), l1, _cfg(), ckpt_dir=tmp_path, device="cpu", progress=False,
                       run_info=info)

    make(task="noise25", patch_size=16).fit(stop_at_step=2)
    with pytest.raises(CheckpointError, match=r"task: 'noise25' -> 'motion_blur'"):
        make(task="motion_blur", patch_size=16)
    with pytest.raises(CheckpointError, match=r"loss: None -> 'mse'"):
        make(task="noise25", patch_size=16, loss="mse")
    assert make(task="noise25", patch_size=16).step == 2      # the same run resumes


def test_resume_into_another_architecture_names_the_checkpoint(tmp_path):
    _make(tmp_path, _cfg()).fit(stop_at_step=2)
    with pytest.raises(CheckpointError, match=r"last.pt: the checkpoint's weights do not fit this model"):
        Trainer(nn.Sequential(nn.Conv2d(3, 3, 1)), NoisyCrops(), l1, _cfg(), ckpt_dir=tmp_path, device="cpu",
                progress=False)


def test_resume_refuses_an_optimizer_state_saved_for_another_parameter_order(tmp_path):
    class TwoConvs(nn.Module):
        """Same names and shapes; ``swap`` creates them in the other order (what reordering __init__ does)."""

        def __init__(self, swap=False):
            super().__init__()
            if swap:
                self.b = nn.Conv2d(3, 3, 3, padding=1)
                self.a = nn.Conv2d(3, 3, 3, padding=1)
            else:
                self.a = nn.Conv2d(3, 3, 3, padding=1)
                self.b = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.b(self.a(x))

    def make(swap):
        return Trainer(TwoConvs(swap), NoisyCrops(), l1, _cfg(), ckpt_dir=tmp_path, device="cpu", progress=False)

    make(False).fit(stop_at_step=2)
    with pytest.raises(CheckpointError, match=r"optimizer state was saved for parameters in another order .*"
                                              r"position 0: 'a.weight' vs 'b.weight'"):
        make(True)
    assert make(False).step == 2


def test_sgd_optimizer_uses_its_momentum_and_rejects_a_bad_one():
    from restore_lib.train import build_optimizer

    p = [torch.nn.Parameter(torch.zeros(3))]
    opt = build_optimizer(p, TrainConfig(optimizer="sgd", lr=0.1, momentum=0.5, weight_decay=0.01))
    assert isinstance(opt, torch.optim.SGD)
    assert opt.defaults["momentum"] == 0.5 and opt.defaults["lr"] == 0.1 and opt.defaults["weight_decay"] == 0.01
    # f(p) = sum(p): gradient 1 (+ decay 0.01 p); step 1: v = 1, p = -0.1; step 2: v = 0.5 + 0.999, p = -0.2499
    for expected in (-0.1, -0.2499):
        opt.zero_grad()
        p[0].sum().backward()
        opt.step()
        torch.testing.assert_close(p[0].detach(), torch.full((3,), expected), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="momentum"):
        TrainConfig(optimizer="sgd", momentum=-1)
    with pytest.raises(ValueError, match="'sgd'"):
        TrainConfig(optimizer="rmsprop")
