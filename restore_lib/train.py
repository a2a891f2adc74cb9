"""A small, readable training loop shared by every notebook.

What it does, in order, each step:

1. take the next batch of an epoch-seeded permutation of the dataset;
2. forward + loss (under autocast on CUDA), refuse a NaN/inf loss;
3. backward (with a gradient scaler for fp16), optional gradient clipping,
   optimizer step, scheduler step (cosine annealing down to ``eta_min``);
4. every ``log_every`` steps, record loss / lr / batch PSNR in ``history``;
5. every ``val_every`` steps (and at the end), validate;
6. at the end of every epoch (or every ``ckpt_every`` steps) write a
   checkpoint atomically: model, optimizer, scheduler, scaler, RNG states,
   step, position inside the epoch and the history.

Resuming from that checkpoint continues *exactly*: the data order depends only
on (seed, epoch), random crops only on (seed, epoch, index) (datasets with a
``set_epoch`` method), and the RNG states are restored — on CPU the resumed
run ends with bit-identical weights (tested).

Under ``torchrun`` (``WORLD_SIZE > 1``) the same loop wraps the model in
DistributedDataParallel and shards each epoch like DistributedSampler; only
rank 0 writes checkpoints and validates.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .checkpoints import CheckpointError
from .metrics import psnr
from .utils import atomic_torch_save, pick_device

__all__ = ["TrainConfig", "Trainer", "to_channels_last", "build_optimizer", "build_scheduler", "NonFiniteLossError",
           "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = 1


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stops instead of silently
    corrupting the weights."""


@dataclasses.dataclass
class TrainConfig:
    """Hyper-parameters of one training run (all plain values, saved in the checkpoint)."""

    total_steps: int = 1000
    batch_size: int = 8
    optimizer: str = "adamw"          # "adam" | "adamw" | "sgd" (with ``momentum``; betas unused)
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.999)
    momentum: float = 0.9             # SGD only
    scheduler: str = "cosine"         # "cosine" | "constant"
    eta_min: float = 1e-6
    grad_clip: float | None = None    # max global grad norm
    amp: str = "auto"                 # "auto" (bf16 on CUDA, off elsewhere) | "fp16" | "bf16" | "off"
    channels_last: str = "auto"       # "auto" (on CUDA: model and 4-D batches in channels_last) | "on" | "off"
    log_every: int = 10
    val_every: int = 0                # 0: validate only at the end
    ckpt_every: int = 0               # 0: at the end of every epoch
    seed: int = 0
    num_workers: int = 0

    def __post_init__(self):
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adam', 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.scheduler not in ("cosine", "constant"):
            raise ValueError(f"scheduler must be 'cosine' or 'constant', got {self.scheduler!r}")
        if self.amp not in ("auto", "fp16", "bf16", "off"):
            raise ValueError(f"amp must be 'auto', 'fp16', 'bf16' or 'off', got {self.amp!r}")
        if self.channels_last not in ("auto", "on", "off"):
            raise ValueError(f"channels_last must be 'auto', 'on' or 'off', got {self.channels_last!r}")
        problems = []

        def whole(name, least):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < least:
                problems.append(f"{name} must be a whole number >= {least}, got {v!r}")

        def real(name, least, *, strict=False, optional=False):
            v = getattr(self, name)
            if optional and v is None:
                return
            bad = isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) \
                or (v <= least if strict else v < least)
            if bad:
                problems.append(f"{name} must be a finite number {'>' if strict else '>='} {least}"
                                f"{' (or None)' if optional else ''}, got {v!r}")

        for name in ("total_steps", "batch_size"):
            whole(name, 1)
        for name in ("log_every", "val_every", "ckpt_every", "seed", "num_workers"):
            whole(name, 0)
        real("lr", 0, strict=True)
        real("weight_decay", 0)
        real("eta_min", 0)
        real("momentum", 0)
        real("grad_clip", 0, strict=True, optional=True)   # a negative max-norm would flip the gradients
        betas = tuple(self.betas) if isinstance(self.betas, (list, tuple)) else ()
        if len(betas) != 2 or not all(isinstance(b, numbers.Real) and 0 <= b < 1 for b in betas):
            problems.append(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if problems:
            raise ValueError("TrainConfig: " + "; ".join(problems))
        self.betas = betas


def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


#: settings that may change between an interrupted run and its resumption
RESUMABLE_CHANGES = ("log_every", "val_every", "num_workers")


def _norm(v):
    return list(v) if isinstance(v, tuple) else v


def _changes(saved: dict, current: dict, only=None, skip=()) -> str:
    """``"field: saved -> current, ..."`` over the fields that differ (those of ``only`` present in both, when
    given; else every field of either, a missing one counting as None), less ``skip``; "" when none does."""
    if only is not None:
        fields = [k for k in only if k in saved]
    else:
        fields = sorted(set(saved) | set(current))
    diff = [k for k in fields if k not in skip and _norm(saved.get(k)) != _norm(current.get(k))]
    return ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in sorted(diff))


def _kind(path: Path) -> str:
    return "folder" if path.is_dir() else "special file"


def _accepts_three_args(fn) -> bool:
    """Our losses take (pred, target, batch); torch's nn.L1Loss etc. take two."""
    import inspect

    target = fn.forward if isinstance(fn, nn.Module) else fn
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return True
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 3


LossFn = Callable[[torch.Tensor, torch.Tensor, dict], Any]


def to_channels_last(model: nn.Module) -> nn.Module:
    """Put every 4-D parameter and buffer of ``model`` in channels_last, in place
    (``Module.to(memory_format=...)`` refuses models that hold a 5-D tensor,
    such as PromptIR's prompt components)."""
    for t in [*model.parameters(), *model.buffers()]:
        if t.dim() == 4:
            t.data = t.data.contiguous(memory_format=torch.channels_last)
    return model


def build_optimizer(params, config: TrainConfig, lr: float | None = None) -> torch.optim.Optimizer:
    """Adam, AdamW (with the config's betas) or SGD (with its momentum), as ``config.optimizer``
    says, with the config's weight decay; ``lr`` overrides ``config.lr``."""
    lr = config.lr if lr is None else lr
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return opt_cls(params, lr=lr, betas=tuple(config.betas), weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    """Cosine annealing to ``config.eta_min`` over ``total_steps``, or a constant rate."""
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.total_steps,
                                                          eta_min=config.eta_min)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


class Trainer:
    """Train ``model`` on a dataset of ``{"lq", "gt", ...}`` items.

    ``loss_fn(pred, gt, batch)`` returns a scalar tensor, or ``(tensor, logs)``.
    For multi-network training (GANs, DiffIR stage 2) subclass and override
    :meth:`train_step`, and :meth:`extra_state` / :meth:`load_extra_state`
    for anything else that must survive a resume.

    ``callbacks`` are objects with optional methods ``on_log(trainer, record)``,
    ``on_validate(trainer, metrics)`` and ``on_epoch_end(trainer, epoch)``.
    """

    def __init__(self, model: nn.Module, train_set: Dataset, loss_fn: LossFn | None, config: TrainConfig, *,
                 val_set: Dataset | None = None, val_fn: Callable[[nn.Module], dict] | None = None,
                 ckpt_dir: str | os.PathLike | None = None, device: str | torch.device = "auto",
                 resume: bool = True, progress: bool = True, callbacks: Iterable[Any] = (),
                 params: Iterable[torch.nn.Parameter] | None = None, run_info: dict | None = None):
        self.config = config
        #: what is trained besides ``config`` (model name/preset/config, data, loss, crop size, ...): saved in
        #: the checkpoint, and a resume with any other value is refused naming the field
        self.run_info = {str(k): _norm(v) for k, v in (run_info or {}).items()}
        self.device = pick_device(device)
        self.rank, self.world_size = _dist_info()
        self.model = model.to(self.device)
        #: NHWC memory layout (faster convolutions under bf16 on tensor cores); the same numbers up to rounding
        self.memory_format = torch.channels_last if config.channels_last == "on" or (
            config.channels_last == "auto" and self.device.type == "cuda") else torch.contiguous_format
        if self.memory_format is torch.channels_last:
            to_channels_last(self.model)
        self.train_set = train_set
        self.loss_fn = loss_fn
        self._loss_takes_batch = _accepts_three_args(loss_fn) if loss_fn is not None else False
        self.val_set, self.val_fn = val_set, val_fn
        self.ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else None
        self.progress = progress and self.rank == 0
        self.callbacks = list(callbacks)
        if len(train_set) < config.batch_size * self.world_size:
            raise ValueError(f"the training set has {len(train_set)} items, fewer than one batch "
                             f"({config.batch_size} x {self.world_size} processes)")

        self.net = self.model
        if self.world_size > 1:
            ddp_kw = {"device_ids": [self.device.index]} if self.device.type == "cuda" else {}
            self.net = nn.parallel.DistributedDataParallel(self.model, **ddp_kw)

        trainable = list(params) if params is not None else [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(trainable, config)
        #: the names of the optimized tensors, in optimizer order: an optimizer state saved for another order
        #: (e.g. before a model's parameters were reordered) would land on the wrong tensors
        names = {id(p): n for n, p in self.model.named_parameters()}
        self.param_order = [names.get(id(p), f"<external {tuple(p.shape)}>") for p in trainable]
        self.scheduler = build_scheduler(self.optimizer, config)

        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.history: list[dict] = []
        self.wall_time_s = 0.0
        self.resumed_from: str | None = None
        if self.ckpt_dir is not None:
            last = self.ckpt_dir / "last.pt"
            if self.ckpt_dir.exists() and not self.ckpt_dir.is_dir():
                raise NotADirectoryError(f"{self.ckpt_dir}: the checkpoint folder is a file")
            if last.exists() and not last.is_file():
                raise IsADirectoryError(f"{last}: expected a checkpoint file, found a {_kind(last)}")
            if self.rank == 0 and self.ckpt_dir.is_dir():
                for orphan in self.ckpt_dir.glob(".last.pt.*.tmp"):    # a write killed before its rename
                    orphan.unlink()
            if resume and last.is_file():
                self.load_checkpoint(last)

    # ------------------------------------------------------------------ set-up helpers
    def _amp_dtype(self):
        amp = self.config.amp
        if amp == "off" or self.device.type != "cuda":
            return None
        if amp == "fp16":
            return torch.float16
        return torch.bfloat16

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_set) // (self.config.batch_size * self.world_size)

    def _epoch_indices(self, epoch: int) -> list[int]:
        sampler = DistributedSampler(self.train_set, num_replicas=self.world_size, rank=self.rank, shuffle=True,
                                     seed=self.config.seed, drop_last=True)
        sampler.set_epoch(epoch)
        return list(sampler)

    def _loader(self, epoch: int, start_batch: int) -> DataLoader:
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        bs = self.config.batch_size
        indices = self._epoch_indices(epoch)[: self.steps_per_epoch * bs][start_batch * bs:]
        # a private generator: creating a loader must not consume the global RNG
        # (that would make a resumed run diverge from an uninterrupted one)
        gen = torch.Generator().manual_seed(self.config.seed * 100003 + epoch)
        return DataLoader(self.train_set, batch_size=bs, sampler=indices, num_workers=self.config.num_workers,
                          drop_last=True, generator=gen)

    def _to_device(self, batch: dict) -> dict:
        def move(v):
            v = v.to(self.device, non_blocking=True)
            return v.contiguous(memory_format=self.memory_format) if v.dim() == 4 else v

        return {k: move(v) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    # ------------------------------------------------------------------ one step
    def forward_loss(self, batch: dict) -> tuple[torch.Tensor, dict, torch.Tensor | None]:
        """Forward pass and loss for the default single-network case."""
        pred = self.net(batch["lq"])
        out = self.loss_fn(pred, batch["gt"], batch) if self._loss_takes_batch else self.loss_fn(pred, batch["gt"])
        loss, logs = (out if isinstance(out, tuple) else (out, {}))
        return loss, dict(logs), pred

    def check_finite(self, loss: torch.Tensor, name: str = "loss") -> None:
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteLossError(
                f"{name} became {loss.detach().float().item()} at step {self.step} (epoch {self.epoch}, "
                f"lr {self.optimizer.param_groups[0]['lr']:.3g}); lower the learning rate, enable grad_clip "
                f"or check the data")

    def backward_step(self, loss: torch.Tensor, optimizer=None, params=None) -> None:
        """Backward, clip, step (with the scaler when fp16)."""
        optimizer = optimizer or self.optimizer
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip:
            self.scaler.unscale_(optimizer)
            params = params if params is not None else [p for g in optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()

    def train_step(self, batch: dict) -> dict:
        """One optimisation step; returns the values to log (must include "loss")."""
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            loss, logs, pred = self.forward_loss(batch)
        self.check_finite(loss)
        self.backward_step(loss)
        logs["loss"] = float(loss.detach())
        if pred is not None and pred.shape == batch["gt"].shape:
            logs["train_psnr"] = psnr(pred.detach().float().clamp(0, 1), batch["gt"].float())
        return logs

    # ------------------------------------------------------------------ loop
    def fit(self, stop_at_step: int | None = None) -> "Any":
        """Train until ``config.total_steps`` (or ``stop_at_step``, which writes
        a checkpoint and returns early: this is how notebooks demonstrate an
        interrupted run). Returns the history as a pandas DataFrame."""
        import pandas as pd
        from tqdm.auto import tqdm

        cfg = self.config
        if self.step >= cfg.total_steps:       # resumed a finished run: nothing to train, validate or save again
            return pd.DataFrame(self.history)
        target = cfg.total_steps if stop_at_step is None else min(stop_at_step, cfg.total_steps)
        bar = tqdm(total=cfg.total_steps, initial=self.step, disable=not self.progress, desc="train",
                   leave=False)
        self._t0, self._wall_base = time.perf_counter(), self.wall_time_s
        try:
            while self.step < target:
                loader = self._loader(self.epoch, self.batch_in_epoch)
                for batch in loader:
                    self.model.train()
                    logs = self.train_step(self._to_device(batch))
                    self.scheduler.step()
                    self.step += 1
                    self.batch_in_epoch += 1
                    bar.update(1)
                    if self.step % cfg.log_every == 0 or self.step == cfg.total_steps:
                        self._log(logs)
                    if cfg.val_every and self.step % cfg.val_every == 0 and self.step < cfg.total_steps:
                        self.validate()
                    if cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                        self._checkpoint_now()
                    if self.step >= target:
                        break
                if self.batch_in_epoch >= self.steps_per_epoch:
                    finished = self.epoch
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    for cb in self.callbacks:
                        if hasattr(cb, "on_epoch_end"):
                            cb.on_epoch_end(self, finished)
                    if not cfg.ckpt_every:
                        self._checkpoint_now()
            if self.step >= cfg.total_steps:
                self.validate()
            self._checkpoint_now()
        finally:
            bar.close()
        return pd.DataFrame(self.history)

    def _checkpoint_now(self) -> None:
        self.wall_time_s = self._wall_base + time.perf_counter() - self._t0
        if self.ckpt_dir is not None:
            self.save_checkpoint(self.ckpt_dir / "last.pt")

    def _log(self, logs: dict) -> None:
        rec = {"step": self.step, "epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"], **logs}
        self.history.append(rec)
        for cb in self.callbacks:
            if hasattr(cb, "on_log"):
                cb.on_log(self, rec)

    @torch.no_grad()
    def validate(self) -> dict:
        """Run ``val_fn(model)`` or the default mean PSNR over ``val_set``;
        the result is appended to the history (rank 0 only)."""
        if self.rank != 0 or (self.val_fn is None and self.val_set is None):
            return {}
        self.model.eval()
        if self.val_fn is not None:
            metrics = dict(self.val_fn(self.model))
        else:
            values = []
            for i in range(len(self.val_set)):
                item = self.val_set[i]
                pred = self.model(item["lq"][None].to(self.device)).float().clamp(0, 1).cpu()
                values.append(psnr(pred, item["gt"][None]))
            metrics = {"val_psnr": float(np.mean(values))}
        self.model.train()
        rec = {"step": self.step, "epoch": self.epoch, **metrics}
        self.history.append(rec)
        for cb in self.callbacks:
            if hasattr(cb, "on_validate"):
                cb.on_validate(self, metrics)
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def extra_state(self) -> dict:
        """Override to save more (extra networks' optimizers, EMA, ...)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Override together with :meth:`extra_state`."""

    def state_dict(self) -> dict:
        np_state = np.random.get_state()
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "history": self.history,
            "wall_time_s": self.wall_time_s,
            "config": dataclasses.asdict(self.config),
            "run_info": self.run_info,
            "param_order": self.param_order,
            "world_size": self.world_size,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
                "python": random.getstate(),
            },
            "extra": self.extra_state(),
        }

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Atomic write (rank 0 only; other ranks wait)."""
        if self.rank == 0:
            atomic_torch_save(self.state_dict(), path)
        if self.world_size > 1:
            torch.distributed.barrier()

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore everything :meth:`state_dict` saved (``weights_only=True``)."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - re-raised with the file name
            raise CheckpointError(f"{path}: cannot resume from this checkpoint ({e})") from e
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: not a restore_lib training checkpoint (format "
                                  f"{state.get('format') if isinstance(state, dict) else type(state).__name__})")
        current = dataclasses.asdict(self.config)
        changed = _changes(state.get("config", {}), current, only=current, skip=RESUMABLE_CHANGES)
        if changed:
            raise CheckpointError(f"{path}: the run was started with a different configuration ({changed}); "
                                  f"resuming would not continue it exactly. Use a new checkpoint folder, or "
                                  f"restore the original settings")
        changed = _changes(state.get("run_info", {}), self.run_info)
        if changed:
            raise CheckpointError(f"{path}: the run was started on something else ({changed}); resuming would "
                                  f"train a different run. Use a new checkpoint folder, or restore the original "
                                  f"settings")
        if state.get("world_size", 1) != self.world_size:
            raise CheckpointError(f"{path}: saved with {state.get('world_size')} processes, resuming with "
                                  f"{self.world_size}; the data order would differ")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(f"{path}: the checkpoint's weights do not fit this model (another model, preset "
                                  f"or model config?): {first}") from e
        saved_order = state.get("param_order")
        if saved_order is not None and list(saved_order) != self.param_order:
            first = next((i for i, (a, b) in enumerate(zip(saved_order, self.param_order)) if a != b),
                         min(len(saved_order), len(self.param_order)))
            raise CheckpointError(f"{path}: the optimizer state was saved for parameters in another order (first "
                                  f"difference at position {first}: {saved_order[first] if first < len(saved_order) else 'end'!r} "
                                  f"vs {self.param_order[first] if first < len(self.param_order) else 'end'!r}); it "
                                  f"would be applied to the wrong tensors. Start a new run")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.history = list(state["history"])
        self.wall_time_s = float(state.get("wall_time_s", 0.0))
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        name, keys, *rest = rng["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
        version, internal, gauss = rng["python"]
        random.setstate((version, tuple(internal), gauss))
        self.load_extra_state(state.get("extra", {}))
        self.resumed_from = str(path)
