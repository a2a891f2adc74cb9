"""DiffIR's two training stages on the shared :class:`restore_lib.train.Trainer`.

DiffIR (``restore_lib.archs.diffir``) restores an image with a DIRformer
guided by a compact prior vector, the IR prior representation (IPR), and is
trained in two stages:

* **Stage 1** (:class:`DiffIRStage1Trainer`): CPEN_S1 sees the ground truth
  and the degraded image and produces the IPR ``z``; CPEN_S1 and the
  DIRformer are trained jointly with an L1 loss on the restored image.
* **Stage 2** (:class:`DiffIRStage2Trainer`): the stage-1 model is frozen and
  only serves as a teacher that gives the target ``z = CPEN_S1(LQ, GT)``.
  The stage-2 model (initialised with
  :func:`restore_lib.archs.diffir.init_s2_from_s1`) noises ``z`` to step T,
  runs **all** T reverse steps of its diffusion (CPEN_S2 + denoiser) inside
  the training step and feeds the estimate ``z_hat`` to its DIRformer. The
  loss is ``ipr_weight * L1(z_hat, z) + rec_weight * L1(restored, gt)``, and
  CPEN_S2, the denoiser and the DIRformer are trained jointly
  (``joint=True``, DiffIR). ``joint=False`` freezes the DIRformer and trains
  only the diffusion part with ``L1(z_hat, z)`` (what the reference's first
  ``encoder_iter`` deblurring iterations do, and the "estimate the prior,
  then plug it in" alternative that DiffIR's joint training improves on).

Both trainers are ordinary :class:`Trainer` subclasses: same checkpoints
(atomic, in ``ckpt_dir``), exact resume and progress bar. Stage 2 stores a
fingerprint of the frozen teacher in its checkpoint and refuses to resume
with a different one; the state of callbacks that have ``state_dict`` (such
as :class:`IPRTracker`) is saved and restored with it. The diffusion noise of
a training step comes from the global torch RNG, which the checkpoint
restores, so a resumed stage-2 run is bit-identical on the CPU.

Also here:

* :class:`NoPriorDIRformer`: the DIRformer of a DiffIR model without any
  prior (every modulation skipped and the modulation layers removed), the
  "no prior" baseline, trainable with the plain :class:`Trainer`.
* :class:`IPRTracker`: a callback that, at every validation, samples the
  stage-2 IPR from each validation image (seeded) and measures its L1
  distance and cosine similarity to the stage-1 target.
* :func:`diffir_methods`: the learned rows of a DiffIR table as restorers
  ``f(lq, gt)`` (the stage-1 oracle needs the ground truth), scored with
  :func:`restore_lib.evaluate.evaluate` ``(..., args=("lq", "gt"))``.
* :func:`init_s2_from_s1`: the stage-1 DIRformer copied into a stage-2 model.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..archs._common import crop_to, pad_to_multiple
from ..archs.diffir import DiffIRS1, DiffIRS2
from ..checkpoints import (CheckpointError, canonicalize_state_dict, mismatch_report, read_checkpoint_file,
                           state_dict_mismatch)
from ..data.io import to_tensor
from ..evaluate import make_val_fn
from ..metrics import RGB, MetricSpec
from ..train import TrainConfig, Trainer
from ..utils import pick_device

__all__ = ["NoPriorDIRformer", "DiffIRStage1Trainer", "DiffIRStage2Trainer", "IPRTracker", "ipr_distance",
           "state_fingerprint", "diffir_methods", "nearest_upsample", "ipr_figure",
           "init_s2_from_s1", "S2InitReport"]

Restorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _require(obj: Any, cls: type, what: str) -> None:
    if not isinstance(obj, cls):
        raise TypeError(f"{what} must be a {cls.__name__}, got {type(obj).__name__}")


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def state_fingerprint(model: nn.Module) -> str:
    """SHA-256 (first 16 hex digits) over the names, shapes and bytes of a
    model's state_dict: identifies the frozen stage-1 teacher in a checkpoint."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        t = v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- the no-prior baseline

class NoPriorDIRformer(nn.Module):
    """The DIRformer of a DiffIR model, run without a prior.

    ``forward(lq)`` = ``DiffIRS1.restore(lq, ipr=None)``: every dynamic block
    uses ``F' = Norm(F)`` instead of ``(W1 z) * Norm(F) + W2 z``, so the
    network is a plain Restormer-style U-Net (SR: with DiffIR's x4 tail).
    Because ``W1``/``W2`` (the ``kernel`` Linear layers) are never used, they
    are removed: ``count_parameters`` counts what the baseline really trains.
    State_dict keys are the DIRformer's (``G.*``) minus the kernels.

    Build it from a DiffIR model (``NoPriorDIRformer(build_model("diffir_s1",
    "small"))``); only its ``G`` is kept.
    """

    def __init__(self, diffir_model: nn.Module):
        super().__init__()
        if not isinstance(diffir_model, (DiffIRS1, DiffIRS2)):
            raise TypeError(f"NoPriorDIRformer: expected a DiffIRS1 or DiffIRS2 model, "
                            f"got {type(diffir_model).__name__}")
        self.G = diffir_model.G
        self.task = diffir_model.task
        self.scale = diffir_model.scale
        self.size_multiple = diffir_model.size_multiple
        for module in self.G.modules():
            if hasattr(module, "kernel") and isinstance(getattr(module, "kernel"), nn.Module):
                module.kernel = None  # unused when ipr is None (see archs.diffir.modulate)

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        if lq.dim() != 4:
            raise ValueError(f"NoPriorDIRformer: expected an (N, C, H, W) image, got shape {tuple(lq.shape)}")
        lq_p, size = pad_to_multiple(lq, self.size_multiple, mode="reflect")
        return crop_to(self.G(lq_p, None), size, self.scale)


# --------------------------------------------------------------------------- stage 1

class DiffIRStage1Trainer(Trainer):
    """Stage 1: CPEN_S1 and the DIRformer trained jointly with
    ``L1(G(lq, CPEN_S1(lq, gt)), gt)``.

    Same arguments as :class:`Trainer` without ``loss_fn``. With a ``val_set``
    and no ``val_fn`` it validates the restoration with the GT prior under
    ``val_spec`` (default RGB).
    """

    def __init__(self, model: DiffIRS1, train_set, config: TrainConfig, *, val_set=None,
                 val_fn: Callable[[nn.Module], dict] | None = None, val_spec: MetricSpec = RGB, **kwargs):
        _require(model, DiffIRS1, "DiffIRStage1Trainer: model")
        if val_fn is None and val_set is not None:
            val_fn = make_val_fn(val_set, val_spec, lambda m, lq, gt: m(lq, gt)[0], args=("lq", "gt"))
        super().__init__(model, train_set, None, config, val_set=val_set, val_fn=val_fn, **kwargs)

    def forward_loss(self, batch: dict):
        pred, _ = self.net(batch["lq"], batch["gt"])
        return F.l1_loss(pred, batch["gt"]), {}, pred


# --------------------------------------------------------------------------- stage 2

class DiffIRStage2Trainer(Trainer):
    """Stage 2: estimate the stage-1 IPR from the degraded image alone.

    ``teacher`` is the trained stage-1 model; it is frozen (``requires_grad``
    off, eval mode) and moved to the training device. Each step:
    ``z = teacher.encode(lq, gt)`` (no gradient), then
    ``restored, z_hat = model(lq, ipr_target=z)`` (noise ``z`` to step T, all
    T reverse steps, DIRformer), and the loss
    ``ipr_weight * L1(z_hat, z) + rec_weight * L1(restored, gt)``.

    ``joint=False`` trains only CPEN_S2 and the denoiser on
    ``ipr_weight * L1(z_hat, z)``; the DIRformer stays as initialised from
    stage 1 and is not run during training (single process only).

    The checkpoint records the teacher's :func:`state_fingerprint`, ``joint``
    and the state of callbacks that define ``state_dict``/``load_state_dict``;
    resuming with another teacher raises :class:`restore_lib.checkpoints.CheckpointError`.
    With a ``val_set`` and no ``val_fn``, validation samples the IPR with the
    seed ``val_seed`` and scores the restoration under ``val_spec``.
    """

    def __init__(self, model: DiffIRS2, teacher: DiffIRS1, train_set, config: TrainConfig, *,
                 joint: bool = True, ipr_weight: float = 1.0, rec_weight: float = 1.0, val_set=None,
                 val_fn: Callable[[nn.Module], dict] | None = None, val_spec: MetricSpec = RGB, val_seed: int = 0,
                 device: str | torch.device = "auto", **kwargs):
        _require(model, DiffIRS2, "DiffIRStage2Trainer: model")
        _require(teacher, DiffIRS1, "DiffIRStage2Trainer: teacher")
        if teacher.scale != model.scale or teacher.ipr_dim != model.ipr_dim:
            raise ValueError(f"DiffIRStage2Trainer: teacher (scale {teacher.scale}, IPR {teacher.ipr_dim}) does not "
                             f"match the stage-2 model (scale {model.scale}, IPR {model.ipr_dim})")
        if "params" in kwargs:
            raise TypeError("DiffIRStage2Trainer: no params argument; it chooses the trained parameters itself (see joint)")
        self.joint = bool(joint)
        self.ipr_weight, self.rec_weight = float(ipr_weight), float(rec_weight)
        teacher.requires_grad_(False)
        self.teacher = teacher.eval().to(pick_device(device))
        self.teacher_fingerprint = state_fingerprint(teacher)
        params = None if self.joint else [p for n, p in model.named_parameters() if not n.startswith("G.")]
        if val_fn is None and val_set is not None:
            val_fn = make_val_fn(val_set, val_spec, lambda m, lq: m(lq, generator=val_seed))
        super().__init__(model, train_set, None, config, val_set=val_set, val_fn=val_fn, device=device,
                         params=params, **kwargs)
        if not self.joint and self.world_size > 1:
            raise NotImplementedError("DiffIRStage2Trainer(joint=False) runs in a single process only")

    def forward_loss(self, batch: dict):
        lq, gt = batch["lq"], batch["gt"]
        with torch.no_grad():
            target = self.teacher.encode(lq, gt)
        if self.joint:
            pred, ipr = self.net(lq, target)
        else:
            pred, (ipr, _) = None, self.model.diffuse_ipr(lq, target)
        loss_ipr = F.l1_loss(ipr, target)
        logs = {"loss_ipr": float(loss_ipr.detach())}
        loss = self.ipr_weight * loss_ipr
        if pred is not None:
            loss_rec = F.l1_loss(pred, gt)
            logs["loss_rec"] = float(loss_rec.detach())
            loss = loss + self.rec_weight * loss_rec
        return loss, logs, pred

    def _stateful_callbacks(self) -> list:
        return [cb for cb in self.callbacks if hasattr(cb, "state_dict") and hasattr(cb, "load_state_dict")]

    def extra_state(self) -> dict:
        return {"teacher_fingerprint": self.teacher_fingerprint, "joint": self.joint,
                "callbacks": [cb.state_dict() for cb in self._stateful_callbacks()]}

    def load_extra_state(self, state: dict) -> None:
        saved = state.get("teacher_fingerprint")
        if saved != self.teacher_fingerprint:
            raise CheckpointError(f"stage-2 checkpoint was trained with the stage-1 teacher {saved}, but the "
                                  f"teacher given now is {self.teacher_fingerprint}; resume with the same "
                                  f"stage-1 weights or start a new run (resume=False)")
        if state.get("joint", True) != self.joint:
            raise CheckpointError(f"stage-2 checkpoint has joint={state.get('joint')}, this trainer "
                                  f"joint={self.joint}")
        saved_cbs = state.get("callbacks", [])
        mine = self._stateful_callbacks()
        if len(saved_cbs) != len(mine):
            raise CheckpointError(f"stage-2 checkpoint holds the state of {len(saved_cbs)} callback(s), this "
                                  f"trainer has {len(mine)}")
        for cb, cb_state in zip(mine, saved_cbs):
            cb.load_state_dict(cb_state)


# --------------------------------------------------------------------------- IPR tracking

@torch.no_grad()
def ipr_distance(pred: torch.Tensor, target: torch.Tensor) -> dict:
    """Per-vector L1 distance (mean absolute difference per dimension, the
    stage-2 loss), cosine similarity and relative L1 (``|pred - target|_1 /
    |target|_1``), averaged over the batch."""
    if pred.shape != target.shape or pred.dim() != 2:
        raise ValueError(f"ipr_distance: expected two (N, D) tensors of the same shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    pred, target = pred.double(), target.double()
    l1 = (pred - target).abs().mean(dim=1)
    rel = (pred - target).abs().sum(dim=1) / target.abs().sum(dim=1).clamp_min(1e-12)
    cos = F.cosine_similarity(pred, target, dim=1, eps=1e-12)
    return {"l1": float(l1.mean()), "cosine": float(cos.mean()), "rel_l1": float(rel.mean())}


class IPRTracker:
    """Callback: how close the stage-2 IPR gets to the stage-1 target.

    At every validation of a :class:`DiffIRStage2Trainer` (``on_validate``),
    and whenever :meth:`measure` is called (e.g. at step 0, before training),
    it samples ``z_hat = model.sample_ipr(lq, generator=seed)`` for each
    validation pair (the inference path: the reverse process from seeded
    noise) and compares it with ``z = teacher.encode(lq, gt)``. A record is
    ``{"step", "ipr_l1", "ipr_cosine", "ipr_rel_l1", "const_l1", "zero_l1"}``
    (averages over the pairs). Two references put the L1 distance in scale:
    ``const_l1`` is the L1 distance of the best image-independent guess (the
    mean target over the pairs), ``zero_l1`` that of the all-zero guess. An
    estimate below ``const_l1`` carries information about the particular
    image. The records survive a resume through the trainer's checkpoint.

    ``pairs``: ``(name, lq, gt)`` arrays (as :func:`restore_lib.data.pairs.load_pairs`)
    or ``(lq, gt)`` tensors, whole images.
    """

    def __init__(self, teacher: DiffIRS1, pairs: Sequence, *, seed: int = 0):
        _require(teacher, DiffIRS1, "IPRTracker: teacher")
        if not pairs:
            raise ValueError("IPRTracker: no validation pairs given")
        self.teacher = teacher
        self.seed = int(seed)
        self.pairs = [(to_tensor(p[-2])[None], to_tensor(p[-1])[None]) for p in pairs]
        self.records: list[dict] = []
        self._targets: list[torch.Tensor] | None = None
        self._fingerprint: str | None = None

    def _teacher_targets(self, device) -> list[torch.Tensor]:
        fp = state_fingerprint(self.teacher)
        if self._targets is None or fp != self._fingerprint:
            was_training = self.teacher.training
            self.teacher.eval()
            tdev = _device_of(self.teacher)
            self._targets = [self.teacher.encode(lq.to(tdev), gt.to(tdev)).cpu() for lq, gt in self.pairs]
            self.teacher.train(was_training)
            self._fingerprint = fp
        return self._targets

    @torch.no_grad()
    def measure(self, model: DiffIRS2, step: int) -> dict:
        """Measure now and store the record for ``step`` (replacing an older one)."""
        _require(model, DiffIRS2, "IPRTracker.measure: model")
        targets = self._teacher_targets(_device_of(model))
        was_training = model.training
        model.eval()
        dev = _device_of(model)
        preds = [model.sample_ipr(lq.to(dev), generator=self.seed).float().cpu() for lq, _ in self.pairs]
        model.train(was_training)
        z = torch.cat(targets)
        d = ipr_distance(torch.cat(preds), z)
        rec = {"step": int(step), "ipr_l1": d["l1"], "ipr_cosine": d["cosine"], "ipr_rel_l1": d["rel_l1"],
               "const_l1": float((z - z.mean(dim=0)).abs().mean()), "zero_l1": float(z.abs().mean())}
        self.records = sorted([r for r in self.records if r["step"] != rec["step"]] + [rec],
                              key=lambda r: r["step"])
        return rec

    def on_validate(self, trainer: Trainer, metrics: dict) -> None:
        self.measure(trainer.model, trainer.step)

    def state_dict(self) -> dict:
        return {"records": [dict(r) for r in self.records], "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if int(state.get("seed", self.seed)) != self.seed:
            raise ValueError(f"IPRTracker: saved records used seed {state.get('seed')}, this tracker {self.seed}")
        self.records = [dict(r) for r in state.get("records", [])]

    def frame(self):
        """The records as a DataFrame (one row per measured step)."""
        import pandas as pd

        return pd.DataFrame(self.records, columns=["step", "ipr_l1", "ipr_cosine", "ipr_rel_l1", "const_l1",
                                                   "zero_l1"])


def ipr_figure(frames: Mapping[str, Any], title: str | None = None):
    """Two panels (L1 distance, cosine similarity to the stage-1 IPR) against
    the stage-2 training step, one line per entry of ``frames``
    (``{label: IPRTracker.frame()}``); dashed: the L1 distance of the best
    image-independent guess (``const_l1``). Log scale for the L1 distance."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
    for i, (label, df) in enumerate(frames.items()):
        color = f"C{i}"
        axes[0].plot(df["step"], df["ipr_l1"], marker=".", color=color, label=label)
        axes[0].axhline(float(df["const_l1"].iloc[0]), color=color, linestyle="--", linewidth=0.8)
        axes[1].plot(df["step"], df["ipr_cosine"], marker=".", color=color, label=label)
    axes[0].set_title("L1(z_hat, z); dashed: best constant guess")
    axes[0].set_yscale("log")
    axes[1].set_title("cosine(z_hat, z)")
    for ax in axes:
        ax.set_xlabel("stage-2 step")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- evaluation

def nearest_upsample(lq: torch.Tensor, scale: int) -> torch.Tensor:
    """The LR image shown at HR size (pixel replication)."""
    return F.interpolate(lq, scale_factor=scale, mode="nearest")


def diffir_methods(s1: DiffIRS1, s2: DiffIRS2, no_prior: nn.Module | None = None, *,
                   seed: int = 0) -> dict[str, Restorer]:
    """The learned rows of a DiffIR table as ``{label: f(lq, gt)}``:
    the DIRformer without a prior (if given), stage 1 with the GT prior
    (oracle) and stage 2 with the IPR sampled from noise seeded with ``seed``
    (deterministic)."""
    methods: dict[str, Restorer] = {}
    if no_prior is not None:
        methods["DIRformer, no prior"] = lambda lq, gt: no_prior(lq)
    methods["DiffIR-S1, GT prior (oracle)"] = lambda lq, gt: s1(lq, gt)[0]
    methods["DiffIR-S2, estimated prior"] = lambda lq, gt: s2(lq, generator=seed)
    return methods


# --------------------------------------------------------------------------- stage 1 -> stage 2 initialisation

@dataclasses.dataclass
class S2InitReport:
    """What :func:`init_s2_from_s1` copied and what it left alone."""

    source: str
    copied: list[str]
    #: stage-1 keys that have no stage-2 counterpart (the GT-seeing CPEN ``E.*``)
    not_transferred: list[str]
    #: stage-2 parameters left at their fresh initialisation, one name per tensor
    newly_initialised: list[str]
    #: the same tensors under their second state_dict name (``diffusion.model.*``/``diffusion.condition.*``)
    aliases: list[str]
    #: schedule buffers, computed from the betas (not learned)
    schedule_buffers: list[str]

    def __str__(self) -> str:
        groups: dict[str, int] = {}
        for k in self.newly_initialised:
            groups[k.split(".")[0] + ".*"] = groups.get(k.split(".")[0] + ".*", 0) + 1
        fresh = ", ".join(f"{g} ({n})" for g, n in groups.items())
        return (f"init_s2_from_s1: copied {len(self.copied)} G.* tensors from {self.source}; "
                f"newly initialised: {fresh} (also listed as {len(self.aliases)} diffusion.model.*/"
                f"diffusion.condition.* keys); {len(self.schedule_buffers)} diffusion schedule buffers from the "
                f"betas; not transferred from stage 1: {len(self.not_transferred)} E.* tensors (the stage-1 CPEN, "
                f"which sees the ground truth; keep it as the frozen teacher)")


def _read_s1_state_dict(src: Any) -> tuple[dict[str, torch.Tensor], str]:
    if isinstance(src, nn.Module):
        return dict(src.state_dict()), f"<{type(src).__name__} module>"
    if isinstance(src, (str, os.PathLike)):
        sd, _, _ = canonicalize_state_dict(read_checkpoint_file(src))
        return sd, str(src)
    if isinstance(src, Mapping):
        sd, _, _ = canonicalize_state_dict(src)
        return sd, "<state_dict>"
    raise TypeError(f"init_s2_from_s1: expected a state_dict, a checkpoint path or a DiffIRS1 module, "
                    f"got {type(src).__name__}")


def init_s2_from_s1(s2_model: DiffIRS2, s1_state_dict_or_path: Any, verbose: bool = True) -> S2InitReport:
    """Initialise a stage-2 model from a stage-1 checkpoint.

    What the reference does: ``train_DiffIRS2*.yml`` loads the stage-1
    ``params_ema`` into DiffIRS2 with ``strict_load_g: False``, which copies
    the keys whose names exist in both. Those are exactly the DIRformer's
    ``G.*`` keys (504 for deblurring, 499 for x4 SR): the stage-1 CPEN is
    named ``E.*`` while the stage-2 one is ``condition.*``, and its first conv
    differs anyway (it sees LQ+GT, 96 or 51 input channels, against 48 or 3).
    So CPEN_S2 and the denoiser start from scratch and the stage-1 CPEN only
    serves as the frozen teacher.

    This function copies exactly that list, explicitly: every ``G.*`` key of
    ``s2_model``. ``s1_state_dict_or_path`` is a state_dict (bare or wrapped,
    e.g. ``{"params_ema": sd}``), a checkpoint path, or a DiffIRS1 module. It
    raises :class:`restore_lib.checkpoints.CheckpointError`, before copying
    anything, when a ``G.*`` key is missing on either side, a shape differs,
    or the source has keys other than ``G.*``/``E.*`` (not a stage-1 model).
    Returns (and with ``verbose`` prints) an :class:`S2InitReport`.
    """
    if not isinstance(s2_model, DiffIRS2):
        raise TypeError(f"init_s2_from_s1: s2_model must be a DiffIRS2, got {type(s2_model).__name__}")
    sd, source = _read_s1_state_dict(s1_state_dict_or_path)
    target = s2_model.state_dict(keep_vars=True)

    foreign = sorted(k for k in sd if not k.startswith(("G.", "E.")))
    want = [k for k in target if k.startswith("G.")]
    missing, extra, shapes = state_dict_mismatch({k: v for k, v in sd.items() if k.startswith("G.")},
                                                 {k: target[k] for k in want}, against="stage 2")
    problem = mismatch_report(f"{source}: cannot initialise DiffIRS2 from it", [
        ("keys that are not G.*/E.* (not a DiffIRS1 state_dict?)", foreign),
        ("G.* keys missing from the stage-1 checkpoint", missing),
        ("G.* keys unknown to the stage-2 model", extra), ("shape mismatches", shapes)], limit=8)
    if problem:
        raise CheckpointError(problem)

    with torch.no_grad():
        for k in want:
            target[k].copy_(sd[k])

    buffers = {f"diffusion.{name}" for name, _ in s2_model.diffusion.named_buffers(recurse=False)}
    unique = {id(t): k for k, t in reversed(list(target.items()))}  # first name of each tensor
    rest = [k for k in target if not k.startswith("G.") and k not in buffers]
    report = S2InitReport(
        source=source, copied=want, not_transferred=sorted(k for k in sd if k.startswith("E.")),
        newly_initialised=[k for k in rest if unique[id(target[k])] == k],
        aliases=[k for k in rest if unique[id(target[k])] != k],
        schedule_buffers=[k for k in target if k in buffers])
    if verbose:
        print(report)
    return report
