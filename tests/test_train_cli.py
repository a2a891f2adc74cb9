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


def _cli(argv, capsys):
    """Run the CLI in-process; returns (exit code, stderr)."""
    from restore_lib import train_cli

    try:
        code = train_cli.main(argv)
    except SystemExit as e:       # argparse's own errors
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("change, field", [
    (["--loss", "mse"], "loss: 'l1' -> 'mse'"),
    (["--patch-size", "24"], "patch_size: 32 -> 24"),
    (["--model-config", '{"width": 8}'], "model_config: {} -> {'width': 8}"),
])
def test_resume_refuses_a_change_of_what_is_trained(tmp_path, data_root, capsys, change, field):
    run = ["--data-root", str(data_root), "--run-dir", str(tmp_path / "run")]
    args = ["--model", "baseline_cnn", "--preset", "tiny", "--steps", "2", "--batch-size", "2", "--patch-size", "32"]
    assert _cli([*args, *run], capsys)[0] == 0
    before = (tmp_path / "run" / "last.pt").read_bytes()
    code, err = _cli([*args, *change, *run], capsys)
    assert code == 2 and field in err and "last.pt" in err, err
    assert len(err.strip().splitlines()) == 1, err          # one line, no traceback
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


def test_resume_with_another_model_is_a_named_error(tmp_path, data_root, capsys):
    run = ["--data-root", str(data_root), "--run-dir", str(tmp_path / "run"), "--steps", "2", "--batch-size", "2",
           "--patch-size", "32"]
    assert _cli(["--model", "baseline_cnn", "--preset", "tiny", *run], capsys)[0] == 0
    code, err = _cli(["--model", "baseline_cnn", "--preset", "default", *run], capsys)
    assert code == 2 and "preset: 'tiny' -> 'default'" in err and str(tmp_path / "run" / "last.pt") in err


@pytest.mark.parametrize("option, value, message", [
    ("--grad-clip", "-1", "argument --grad-clip: must be > 0"),
    ("--grad-clip", "nan", "argument --grad-clip: must be > 0"),
    ("--val-every", "-1", "argument --val-every: must be >= 0"),
    ("--steps", "0", "argument --steps: must be >= 1"),
    ("--lr", "0", "argument --lr: must be > 0"),
    ("--model-config", "{width: 8}", "argument --model-config: not valid JSON"),
    ("--model-config", "[1, 2]", "argument --model-config: must be a JSON object"),
])
def test_bad_numeric_and_json_options_are_refused_before_training(tmp_path, data_root, capsys, option, value,
                                                                  message):
    code, err = _cli([*ARGS, "--data-root", str(data_root), "--run-dir", str(tmp_path / "run"), option, value],
                     capsys)
    assert code == 2 and message in err, err
    assert not (tmp_path / "run").exists()


def test_run_dir_that_is_a_file_is_refused_at_once(tmp_path, data_root, capsys):
    (tmp_path / "run").write_text("not a folder")
    code, err = _cli([*ARGS, "--data-root", str(data_root), "--run-dir", str(tmp_path / "run")], capsys)
    assert code == 2 and "--run-dir" in err and "is a file" in err
