"""The trainer under torch.distributed (gloo, 2 CPU processes): gradients equal
single-process training on the same global batch; only rank 0 writes; resume
continues exactly under DDP."""
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from restore_lib.models import build_model
from restore_lib.train import TrainConfig, Trainer


class Crops(torch.utils.data.Dataset):
    def __init__(self, n=16, seed=0):
        g = torch.Generator().manual_seed(5)
        self.images = torch.rand(n, 3, 20, 20, generator=g)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        y, x = rng.integers(0, 5, size=2)
        gt = self.images[i, :, y:y + 16, x:x + 16]
        return {"lq": (gt + 0.1 * torch.from_numpy(rng.normal(size=gt.shape).astype(np.float32))).clamp(0, 1),
                "gt": gt}


def _l1(pred, gt, batch):
    return (pred - gt).abs().mean()


def _trainer(ckpt_dir, batch_size, steps=3):
    torch.manual_seed(0)
    model = build_model("baseline_cnn", width=8, depth=3)
    cfg = TrainConfig(total_steps=steps, batch_size=batch_size, lr=1e-3, log_every=1, seed=3)
    return Trainer(model, Crops(), _l1, cfg, ckpt_dir=ckpt_dir, device="cpu", progress=False)


def _worker(rank, world, port, out_dir):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        # one step: the gradients DDP averaged over both ranks
        t = _trainer(os.path.join(out_dir, "one"), batch_size=2)
        assert t.world_size == world
        t.fit(stop_at_step=1)
        if rank == 0:
            torch.save({k: p.grad.clone() for k, p in t.model.named_parameters()}, os.path.join(out_dir, "grads.pt"))
        # uninterrupted vs interrupted+resumed, both under DDP
        full = _trainer(os.path.join(out_dir, "full"), batch_size=2)
        full.fit()
        part = _trainer(os.path.join(out_dir, "part"), batch_size=2)
        part.fit(stop_at_step=1)
        resumed = _trainer(os.path.join(out_dir, "part"), batch_size=2)
        assert resumed.step == 1
        resumed.fit()
        if rank == 0:
            same = all(torch.equal(a, b) for a, b in zip(full.model.state_dict().values(),
                                                           resumed.model.state_dict().values()))
            torch.save({"resume_equal": same}, os.path.join(out_dir, "resume.pt"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_match_single_process(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ddp_grads = torch.load(tmp_path / "grads.pt", weights_only=True)
    # the same global batch (2 ranks x 2) in one process
    single = _trainer(tmp_path / "single", batch_size=4)
    single.fit(stop_at_step=1)
    for name, p in single.model.named_parameters():
        torch.testing.assert_close(ddp_grads[name], p.grad, rtol=1e-5, atol=1e-7, msg=name)
    assert torch.load(tmp_path / "resume.pt", weights_only=True)["resume_equal"]
    # checkpoints were written (by rank 0) and hold the DDP world size
    state = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and state["step"] == 3
    assert not any(k.startswith("module.") for k in state["model"])
