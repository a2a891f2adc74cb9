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
* :func:`evaluate_methods` / :func:`method_table`: score several restorers
  ``f(lq, gt)`` (the stage-1 oracle needs the ground truth) on held-out pairs
  under a metric protocol.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .archs._common import crop_to, pad_to_multiple
from .archs.diffir import DiffIRS1, DiffIRS2
from .experiment import per_image_table  # noqa: F401  (shared; re-exported for the notebooks)
from .metrics import RGB, MetricSpec
from .train import TrainConfig, Trainer

__all__ = ["NoPriorDIRformer", "DiffIRStage1Trainer", "DiffIRStage2Trainer", "IPRTracker", "ipr_distance",
           "restoration_val_fn", "state_fingerprint", "evaluate_methods", "method_table", "diffir_methods",
           "nearest_upsample", "ipr_figure", "per_image_table"]

Restorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _require(obj: Any, cls: type, what: str) -> None:
    if not isinstance(obj, cls):
        raise TypeError(f"{what} must be a {cls.__name__}, got {type(obj).__name__}")


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _as_tensor(img) -> torch.Tensor:
    from .experiment import to_tensor

    return to_tensor(img)


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


# --------------------------------------------------------------------------- validation

def restoration_val_fn(val_set, restore: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
                       spec: MetricSpec = RGB) -> Callable[[nn.Module], dict]:
    """``val_fn(model) -> {"val_psnr", "val_ssim"}``: mean over the items of
    ``val_set`` (dicts with "lq"/"gt", whole images) of ``restore(model, lq,
    gt)`` scored under ``spec``. Used because the stage-1 model needs the
    ground truth and stage 2 samples with a fixed seed."""

    def val_fn(model: nn.Module) -> dict:
        dev = _device_of(model)
        ps, ss = [], []
        for i in range(len(val_set)):
            item = val_set[i]
            lq, gt = item["lq"][None].to(dev), item["gt"][None].to(dev)
            pred = restore(model, lq, gt).float().clamp(0, 1).cpu()
            m = spec.evaluate(pred, gt.cpu())
            ps.append(m["psnr"])
            ss.append(m["ssim"])
        return {"val_psnr": float(np.mean(ps)), "val_ssim": float(np.mean(ss))}

    return val_fn


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
            val_fn = restoration_val_fn(val_set, lambda m, lq, gt: m(lq, gt)[0], val_spec)
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
    resuming with another teacher raises :class:`restore_lib.models.CheckpointError`.
    With a ``val_set`` and no ``val_fn``, validation samples the IPR with the
    seed ``val_seed`` and scores the restoration under ``val_spec``.
    """

    def __init__(self, model: DiffIRS2, teacher: DiffIRS1, train_set, config: TrainConfig, *,
                 joint: bool = True, ipr_weight: float = 1.0, rec_weight: float = 1.0, val_set=None,
                 val_fn: Callable[[nn.Module], dict] | None = None, val_spec: MetricSpec = RGB, val_seed: int = 0,
                 device: str | torch.device = "auto", **kwargs):
        from .utils import pick_device

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
            val_fn = restoration_val_fn(val_set, lambda m, lq, gt: m(lq, generator=val_seed), val_spec)
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
        from .models import CheckpointError

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

    ``pairs``: ``(name, lq, gt)`` arrays (as :func:`restore_lib.experiment.load_pairs`)
    or ``(lq, gt)`` tensors, whole images.
    """

    def __init__(self, teacher: DiffIRS1, pairs: Sequence, *, seed: int = 0):
        _require(teacher, DiffIRS1, "IPRTracker: teacher")
        if not pairs:
            raise ValueError("IPRTracker: no validation pairs given")
        self.teacher = teacher
        self.seed = int(seed)
        self.pairs = [(_as_tensor(p[-2])[None], _as_tensor(p[-1])[None]) for p in pairs]
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


@torch.no_grad()
def evaluate_methods(methods: Mapping[str, Restorer | None], pairs: Sequence, spec: MetricSpec, *,
                     scale: int = 1, device: str | torch.device = "cpu", keep_outputs: bool = False):
    """Score each ``method(lq, gt) -> restored`` on whole held-out ``pairs``
    (``(name, lq, gt)``) under ``spec``; ``None`` is the degraded input
    itself (MATLAB-bicubic upsampled for SR, as
    :func:`restore_lib.experiment.identity_baseline`). Models are put in eval
    mode by the caller. Returns a long DataFrame ``(image, method, psnr,
    ssim)`` and, with ``keep_outputs``, ``{(image, method): tensor}``."""
    import pandas as pd

    from .experiment import identity_baseline

    dev = torch.device(device) if not isinstance(device, torch.device) else device
    rows, outputs = [], {}
    for name, lq_np, gt_np in pairs:
        lq, gt = _as_tensor(lq_np)[None], _as_tensor(gt_np)[None]
        for label, fn in methods.items():
            if fn is None:
                pred = identity_baseline(lq, scale)
            else:
                pred = fn(lq.to(dev), gt.to(dev)).float().cpu()
            pred = pred.clamp(0, 1)
            if pred.shape != gt.shape:
                raise ValueError(f"{label} on {name}: output {tuple(pred.shape)} != ground truth {tuple(gt.shape)}")
            m = spec.evaluate(pred, gt)
            rows.append({"image": name, "method": label, "psnr": m["psnr"], "ssim": m["ssim"]})
            if keep_outputs:
                outputs[(name, label)] = pred[0]
    df = pd.DataFrame(rows)
    return (df, outputs) if keep_outputs else df


def method_table(df, reference: str | None = None):
    """Mean PSNR/SSIM per method (in the order of first appearance) from
    :func:`evaluate_methods`, with ``ΔPSNR`` against ``reference`` (a method
    label; default the first one) and the number of images on which the
    method's PSNR is higher than the reference's."""
    import pandas as pd

    order = list(dict.fromkeys(df["method"]))
    reference = reference or order[0]
    if reference not in order:
        raise KeyError(f"method_table: unknown reference method {reference!r}; methods: {order}")
    ref = df[df["method"] == reference].set_index("image")["psnr"]
    rows = []
    for m in order:
        d = df[df["method"] == m]
        per = d.set_index("image")["psnr"]
        rows.append({"method": m, "PSNR": float(d["psnr"].mean()), "SSIM": float(d["ssim"].mean()),
                     "ΔPSNR": float(d["psnr"].mean() - ref.mean()),
                     "images better": int((per > ref.reindex(per.index)).sum())})
    return pd.DataFrame(rows)
