"""The training CLI, alone and under torchrun (2 CPU processes, gloo)."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from restore_lib.data.io import write_image


def _pairs(root: Path, split: str, n: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(n):
        clean = rng.random((40, 48, 3)).astype(np.float32)
        noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
        write_image(root / split / "clean" / f"im{i}.png", clean)
        write_image(root / split / "degraded" / f"im{i}.png", noisy)


@pytest.fixture()
def data_root(tmp_path):
    _pairs(tmp_path / "data", "train", 8, 0)
    _pairs(tmp_path / "data", "val", 2, 1)
    return tmp_path / "data"


def _args(steps=4):
    return ["--model", "baseline_cnn", "--preset", "tiny", "--steps", str(steps), "--batch-size", "2",
            "--patch-size", "32"]


ARGS = _args()


def test_cli_trains_and_resumes(tmp_path, data_root):
    run = tmp_path / "run"

    def cli(steps):
        cmd = [sys.executable, "-m", "restore_lib.train_cli", *_args(steps), "--data-root", str(data_root),
               "--run-dir", str(run)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    out = cli(4)
    assert out.returncode == 0, out.stderr
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 4
    again = cli(4)  # the same command finds the finished run and resumes it (nothing left to do)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stdout and "at step 4" in again.stdout
    other = cli(6)  # a different schedule is a different run: refused, with the reason
    assert other.returncode != 0
    assert "total_steps: 4 -> 6" in other.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                    reason="torchrun not installed")
def test_cli_under_torchrun_two_processes(tmp_path, data_root):
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    run = tmp_path / "ddp"
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "restore_lib.train_cli", *ARGS,
           "--data-root", str(data_root), "--run-dir", str(run)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1",
                                                                                 "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and state["step"] == 4
    assert out.stdout.count("done: 4 steps on 2 process(es)") == 1  # only rank 0 reports
