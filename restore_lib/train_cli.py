"""Train any registered model from the command line, on one device or many.

    python -m restore_lib.train_cli --model nafnet --preset small --task motion_blur --steps 2000
    torchrun --nproc_per_node=4 -m restore_lib.train_cli --model nafnet --data-root data/GoPro_pairs \\
        --steps 200000 --batch-size 8 --patch-size 256 --lr 1e-3 --run-dir runs/nafnet_gopro

Under ``torchrun`` every process joins the process group (NCCL on CUDA, gloo
on CPU), uses ``cuda:$LOCAL_RANK``, and the same :class:`restore_lib.train.Trainer`
wraps the model in DistributedDataParallel and shards each epoch. ``--batch-size``
is per process (the global batch is N times larger). Only rank 0 writes the
checkpoint (``<run-dir>/last.pt``) and the history; running the same command
again resumes from that checkpoint, also under DDP (with the same number of
processes).

Data: ``--task`` uses the embedded dataset; ``--data-root`` a folder laid out
as ``<root>/train|val/degraded|clean/*.png`` (what ``data_scripts/`` write).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from .data.pairs import load_pairs, train_val_sets
from .losses import build_loss
from .checkpoints import CheckpointError
from .models import ConfigError, UnknownModelError, build_model
from .train import TrainConfig, Trainer
from .utils import runs_dir, seed_everything


def _init_distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size(), local_rank


def _number(kind, least, *, strict=False):
    """An argparse type: ``kind`` (int or float) that must be >= ``least`` (> with ``strict``)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}")
        if value != value or value in (float("inf"), float("-inf")) or (value <= least if strict else value < least):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {least:g}, got {text}")
        return value
    return parse


def _model_config(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg} at character {e.pos}): {text!r}")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object of constructor arguments, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m restore_lib.train_cli", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="registry name (restore_lib.models.list_models())")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--model-config", type=_model_config, default={}, help="JSON dict of constructor overrides")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", help="embedded-dataset task, e.g. motion_blur, noise25, sr_x4")
    src.add_argument("--data-root", help="folder with train/ and val/ pairs (a path relative to the current "
                                         "directory, like every path option)")
    ap.add_argument("--loss", default="l1", help="restore_lib.losses name")
    ap.add_argument("--steps", type=_number(int, 1), default=1000)
    ap.add_argument("--batch-size", type=_number(int, 1), default=8, help="per process")
    ap.add_argument("--patch-size", type=_number(int, 1), default=64, help="clean-image crop side")
    ap.add_argument("--lr", type=_number(float, 0, strict=True), default=2e-4)
    ap.add_argument("--weight-decay", type=_number(float, 0), default=0.0)
    ap.add_argument("--optimizer", default="adamw", choices=("adam", "adamw"))
    ap.add_argument("--amp", default="auto", choices=("auto", "fp16", "bf16", "off"))
    ap.add_argument("--grad-clip", type=_number(float, 0, strict=True), default=None,
                    help="max global gradient norm (> 0)")
    ap.add_argument("--val-every", type=_number(int, 0), default=0, help="0: only at the end")
    ap.add_argument("--seed", type=_number(int, 0), default=0)
    ap.add_argument("--workers", type=_number(int, 0), default=0)
    ap.add_argument("--run-dir", default=None, help="checkpoint folder (default runs/cli/<model>)")
    return ap


def main(argv=None) -> int:
    """Parse, train; a bad option, file or checkpoint ends with one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run_dir and os.path.exists(args.run_dir) and not os.path.isdir(args.run_dir):
        parser.error(f"--run-dir {args.run_dir}: is a file, not a folder")
    if args.data_root and not os.path.isdir(args.data_root):
        parser.error(f"--data-root {args.data_root}: no such folder")
    if args.data_root:   # the library reads a relative data_root under the repository root; a CLI path is the shell's
        args.data_root = os.path.abspath(args.data_root)
    try:
        return _train(args)
    except (CheckpointError, ConfigError, UnknownModelError, FileNotFoundError, NotADirectoryError,
            IsADirectoryError, ValueError) as e:
        print(f"{parser.prog}: error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2


def _train(args) -> int:
    rank, world, local_rank = _init_distributed()
    seed_everything(args.seed)
    model = build_model(args.model, args.preset, **args.model_config)
    scale = getattr(model, "scale", 1)
    if args.task:
        train_pairs, val_pairs = load_pairs(args.task, "train"), load_pairs(args.task, "val")
    else:
        train_pairs, val_pairs = load_pairs("data", "train", args.data_root), load_pairs("data", "val",
                                                                                         args.data_root)
    train_set, val_set = train_val_sets(train_pairs, val_pairs, patch_size=args.patch_size, scale=scale,
                                        seed=args.seed)
    cfg = TrainConfig(total_steps=args.steps, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                      weight_decay=args.weight_decay, amp=args.amp, grad_clip=args.grad_clip,
                      val_every=args.val_every, seed=args.seed, num_workers=args.workers)
    device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    run_dir = args.run_dir or runs_dir("cli") / args.model
    # what is trained besides cfg: a resume with any other value is refused, naming the option
    run_info = {"model": args.model, "preset": args.preset, "model_config": args.model_config, "task": args.task,
                "data_root": os.path.abspath(args.data_root) if args.data_root else None, "loss": args.loss,
                "patch_size": args.patch_size}
    trainer = Trainer(model, train_set, build_loss(args.loss), cfg, val_set=val_set, ckpt_dir=run_dir,
                      device=device, progress=rank == 0, run_info=run_info)
    if rank == 0 and trainer.resumed_from:
        print(f"resuming from {trainer.resumed_from} at step {trainer.step}")
    history = trainer.fit()
    if rank == 0:
        last = history.dropna(subset=["val_psnr"]).tail(1) if "val_psnr" in history else history.tail(1)
        print(f"done: {trainer.step} steps on {world} process(es); checkpoint {run_dir}/last.pt")
        print(last.to_string(index=False))
    if world > 1:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
