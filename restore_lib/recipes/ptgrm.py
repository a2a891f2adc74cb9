"""Training and evaluating PTG-RM on top of a target network F (report 05).

The paper's pipeline, with our names::

    Î_c = F(I_d)                 target network (``RefinedModel.target``)
    g   = G(I_d)                 frozen prior extractor (``RefinedModel.prior``)
    Ī_c = R(Î_c, I_d, g)         the PTG-RM refinement module (``RefinedModel.refiner``)
    loss = L_g(Î_c, I_c) + λ1 · L_g(Ī_c, I_c)

Two training regimes:

* **frozen F** (``joint=False``): F was trained first and stays fixed; only R
  learns. Then the first loss term is a constant (it is still logged: it is
  "F's loss alone" on the same crops, which R's loss must end below).
  F's outputs can be computed once on whole training images
  (:func:`initial_outputs`) and cropped together with the pair
  (:class:`RefinementPairs`), which is exactly what R sees at test time and
  saves one F forward pass per step.
* **joint** (``joint=True``): F and R are optimised together by the same loss
  (the paper's "R can be jointly trained with F"); F runs on every crop.

The prior is computed from the network's input, as in the reference code: on
the training crop during training and on the whole image at test time (the
reference's ``test()`` calls CLIP on every test image although the paper says
the pre-trained model is not needed at inference; so do we).

``L_g`` is the Charbonnier loss (eps = 1e-3), the pixel term of the reference
(which adds 0.1 · VGG perceptual loss; we leave that out) or L1.

Notebook helpers: :func:`train_target` (F alone), :func:`train_refiner` (a
seeded R, frozen or joint), :func:`evaluate_refinement` (input, F and F + R
scores per test image), :func:`final_losses` (the paired end-of-training
losses), :func:`prior_signal` (how large the mapped prior is inside R),
:func:`restoration_prior_network` (the "-r" prior's network: notebook 00's
checkpoint, or retrained with 00's recipe) and :func:`with_delta` (the
paper's "22.91 (+3.04)" cells).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..archs._common import pad_to_multiple
from ..archs.ptgrm import PTGRM
from ..checkpoints import load_checkpoint, read_checkpoint_file
from ..data.datasets import MemoryPairs, item_generators
from ..data.io import to_tensor
from ..evaluate import evaluate
from ..losses import CharbonnierLoss, L1Loss
from ..metrics import MetricSpec, psnr
from ..models import build_model
from ..train import TrainConfig, Trainer
from ..utils import repo_root, seed_everything

__all__ = ["fuse", "pixel_loss", "build_refiner", "RefinedModel", "RefinementPairs", "RefinementTrainer",
           "initial_outputs", "evaluate_refinement", "final_losses", "restoration_prior_network", "PRIOR_LAYER",
           "train_target", "train_refiner", "with_delta", "prior_signal"]

#: the layer whose output the restoration-model prior pools (last hidden ReLU of BaselineCNN)
PRIOR_LAYER = {"baseline_cnn": "body.9"}


def fuse(initial: torch.Tensor, degraded: torch.Tensor, i_m: torch.Tensor | None, i_r: torch.Tensor,
         mode: str = "paper") -> torch.Tensor:
    """PTG-RM's output formula, given the decoder's maps.

    ``mode="paper"``: Ī_c = I_d + (Î_c − I_d)·I_m + I_r (I_m gates how much of
    F's change to keep, I_r adds a residual). ``mode="code"`` (the reference):
    Ī_c = clamp(Î_c, 0, 1) + I_r, no I_m. This is the formula of
    :meth:`restore_lib.archs.ptgrm.PTGRM.decode`, written out for teaching.
    """
    if mode == "paper":
        if i_m is None:
            raise ValueError("fuse(mode='paper') needs the gate map i_m")
        return degraded + (initial - degraded) * i_m + i_r
    if mode == "code":
        return initial.clamp(0.0, 1.0) + i_r
    raise ValueError(f"fuse: mode must be 'paper' or 'code', got {mode!r}")


def pixel_loss(name: str) -> nn.Module:
    """L_g: ``"charbonnier"`` (eps 1e-3, the reference's pixel term) or ``"l1"``."""
    if name == "charbonnier":
        return CharbonnierLoss(1e-3)
    if name == "l1":
        return L1Loss()
    raise ValueError(f"loss must be 'charbonnier' or 'l1', got {name!r}")


def build_refiner(prior_dim: int, ablation: str | None = None, **overrides) -> nn.Module:
    """A PTG-RM for a prior of width ``prior_dim``; ``ablation`` is a row name of
    ``PTGRM.ABLATIONS`` (its kwargs; the 2-D row keeps its own 1280-d width)."""
    kw = {"prior_dim": prior_dim}
    if ablation is not None:
        if ablation not in PTGRM.ABLATIONS:
            raise ValueError(f"unknown PTG-RM ablation {ablation!r}; rows: {', '.join(PTGRM.ABLATIONS)}")
        kw.update(PTGRM.ABLATIONS[ablation])
    kw.update(overrides)
    return PTGRM(**kw)


class RefinedModel(nn.Module):
    """``x -> R(F(x), x, G(x))``, the network that is trained and evaluated.

    ``target`` (F) and ``refiner`` (R) are submodules; the prior extractor G
    is *not* (it is frozen, may be large and is not part of what is trained,
    so checkpoints hold F and R only). ``prior=None`` is allowed for a refiner
    that never reads g. With ``freeze_target`` F stays in eval mode and gets no
    gradients. ``forward(x, return_initial=True)`` returns (Ī_c, Î_c).
    """

    def __init__(self, target: nn.Module, refiner: nn.Module, prior: nn.Module | None, *,
                 freeze_target: bool = True):
        super().__init__()
        self.target = target
        self.refiner = refiner
        object.__setattr__(self, "prior", prior)  # deliberately not registered
        self.freeze_target = freeze_target
        if freeze_target:
            self.target.requires_grad_(False)
        if getattr(refiner, "uses_prior", True) and prior is None:
            raise ValueError("RefinedModel: this refiner reads a prior g; pass a prior extractor")

    def train(self, mode: bool = True) -> "RefinedModel":
        super().train(mode)
        if self.freeze_target:
            self.target.eval()
        return self

    def _apply(self, fn, recurse=True):
        # .to()/.cuda() also move the (unregistered) prior extractor
        if self.prior is not None:
            self.prior._apply(fn)
        return super()._apply(fn)

    def prior_of(self, degraded: torch.Tensor) -> torch.Tensor | None:
        """g = G(I_d), or None when the refiner does not use it."""
        if self.prior is None or not getattr(self.refiner, "uses_prior", True):
            return None
        with torch.no_grad():
            return self.prior(degraded)

    def refine(self, initial: torch.Tensor, degraded: torch.Tensor) -> torch.Tensor:
        return self.refiner(initial, degraded, self.prior_of(degraded))

    def forward(self, x: torch.Tensor, return_initial: bool = False):
        if self.freeze_target:
            with torch.no_grad():
                initial = self.target(x)
        else:
            initial = self.target(x)
        out = self.refine(initial, x)
        return (out, initial) if return_initial else out


class RefinementPairs(torch.utils.data.Dataset):
    """Aligned random crops of (degraded, clean[, F's output]) for training R.

    ``pairs``: ``[(name, lq, gt), ...]`` (HWC arrays or CHW tensors, same
    size); ``initial``: optional ``{name: F(lq)}`` of the *whole* images
    (:func:`initial_outputs`), cropped at the same place as the pair. Crops
    depend only on (seed, epoch, index), like the library's paired datasets,
    so the :class:`~restore_lib.train.Trainer` resumes exactly.
    """

    def __init__(self, pairs: Sequence[tuple], patch_size: int, *, initial: dict | None = None, seed: int = 0):
        if not pairs:
            raise ValueError("RefinementPairs: no pairs given")
        self.items = []
        for name, lq, gt in pairs:
            lq_t, gt_t = to_tensor(lq), to_tensor(gt)
            if lq_t.shape != gt_t.shape or lq_t.shape[0] != 3:
                raise ValueError(f"RefinementPairs: {name}: degraded {tuple(lq_t.shape)} and clean "
                                 f"{tuple(gt_t.shape)} must both be (3,H,W) of one size")
            if min(lq_t.shape[1:]) < patch_size:
                raise ValueError(f"RefinementPairs: {name}: image {tuple(lq_t.shape[1:])} is smaller than "
                                 f"patch_size={patch_size}")
            init = None
            if initial is not None:
                if name not in initial:
                    raise KeyError(f"RefinementPairs: no cached F output for {name!r}")
                init = to_tensor(initial[name])
                if init.shape != lq_t.shape:
                    raise ValueError(f"RefinementPairs: {name}: F output {tuple(init.shape)} does not match "
                                     f"the image {tuple(lq_t.shape)}")
            self.items.append((name, lq_t, gt_t, init))
        self.patch_size, self.seed, self.epoch = int(patch_size), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        name, lq, gt, init = self.items[index]
        rng, _ = item_generators(self.seed, self.epoch, index)
        p = self.patch_size
        top = int(rng.integers(0, lq.shape[1] - p + 1))
        left = int(rng.integers(0, lq.shape[2] - p + 1))
        crop = (slice(None), slice(top, top + p), slice(left, left + p))
        item = {"lq": lq[crop].contiguous(), "gt": gt[crop].contiguous(), "name": name}
        if init is not None:
            item["init"] = init[crop].contiguous()
        return item


class RefinementTrainer(Trainer):
    """Trains R (and F with ``joint=True``) with L_g(Î_c, I) + λ1·L_g(Ī_c, I).

    Logs ``loss`` (the total), ``loss_F`` = L_g(Î_c, I), ``loss_R`` =
    L_g(Ī_c, I), and the batch PSNRs of both. A batch with an ``"init"``
    tensor (cached F output) skips F's forward pass (frozen F only).
    """

    def __init__(self, model: RefinedModel, train_set, config: TrainConfig, *, loss: str = "charbonnier",
                 lambda1: float = 1.0, joint: bool = False, **kwargs):
        if joint == model.freeze_target:
            raise ValueError(f"RefinementTrainer: joint={joint} needs RefinedModel(freeze_target={not joint})")
        self.joint, self.lambda1 = joint, float(lambda1)
        self.pixel = pixel_loss(loss)
        params = list(model.refiner.parameters()) + (list(model.target.parameters()) if joint else [])
        super().__init__(model, train_set, None, config, params=params, **kwargs)

    def train_step(self, batch: dict) -> dict:
        lq, gt = batch["lq"], batch["gt"]
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            if self.joint:
                initial = self.model.target(lq)
            elif "init" in batch:
                initial = batch["init"]
            else:
                with torch.no_grad():
                    initial = self.model.target(lq)
            refined = self.model.refine(initial, lq)
            loss_f = self.pixel(initial.float(), gt)
            loss_r = self.pixel(refined.float(), gt)
            loss = loss_f + self.lambda1 * loss_r
        self.check_finite(loss)
        self.backward_step(loss)
        return {"loss": float(loss.detach()), "loss_F": float(loss_f.detach()), "loss_R": float(loss_r.detach()),
                "train_psnr_F": psnr(initial.detach().float().clamp(0, 1), gt.float()),
                "train_psnr": psnr(refined.detach().float().clamp(0, 1), gt.float())}


@torch.no_grad()
def initial_outputs(target: nn.Module, pairs: Sequence[tuple], device="cpu") -> dict[str, torch.Tensor]:
    """``{name: F(lq)}`` (3,H,W) on the CPU, for whole images: the cache that
    frozen-F training crops from and evaluation reuses."""
    target.eval()
    out = {}
    for name, lq, _ in pairs:
        out[name] = target(to_tensor(lq)[None].to(device)).float().cpu()[0]
    return out


@torch.no_grad()
def evaluate_refinement(model: RefinedModel, pairs: Sequence[tuple], spec: MetricSpec, *, device="cpu",
                        initial: dict | None = None, baseline=None):
    """Per-image scores of the degraded input, F alone ("Original") and F + R,
    from :func:`restore_lib.evaluate.evaluate`.

    Returns a DataFrame with ``name, psnr_in, ssim_in, psnr_F, ssim_F, psnr,
    ssim``. ``initial`` = cached F outputs (:func:`initial_outputs`); missing
    ones are computed. ``baseline`` = an earlier result of this function for
    the same F and images: its input and F scores are reused instead of
    recomputed. The prior is computed on each whole test image.
    """
    import pandas as pd

    model.eval()
    known = baseline.set_index("name") if baseline is not None else None
    f_out: dict[str, torch.Tensor] = {}

    def refined(lq, name):
        init = initial[name][None].to(device) if initial is not None and name in initial else model.target(lq)
        f_out[name] = init
        return model.refine(init, lq)

    methods = {"F + R": refined}
    if known is None or not all(name in known.index for name, _, _ in pairs):
        methods.update({"input": None, "F": lambda lq, name: f_out[name]})
    df = evaluate(methods, pairs, spec, device=device, args=("lq", "name")).set_index(["image", "method"])
    rows = []
    for name, _, _ in pairs:
        if known is not None and name in known.index:
            ref = known.loc[name]
            b = {"psnr": ref["psnr_in"], "ssim": ref["ssim_in"]}
            f = {"psnr": ref["psnr_F"], "ssim": ref["ssim_F"]}
        else:
            b, f = df.loc[(name, "input")], df.loc[(name, "F")]
        r = df.loc[(name, "F + R")]
        rows.append({"name": name, "psnr_in": b["psnr"], "ssim_in": b["ssim"], "psnr_F": f["psnr"],
                     "ssim_F": f["ssim"], "psnr": r["psnr"], "ssim": r["ssim"]})
    return pd.DataFrame(rows)


def final_losses(history, fraction: float = 0.25) -> dict:
    """Mean ``loss_F`` and ``loss_R`` over the last ``fraction`` of the logged
    training steps (the same crops for both, so the comparison is paired)."""
    import pandas as pd

    df = pd.DataFrame(history)
    if "loss_R" not in df.columns:
        raise ValueError("final_losses: the history has no 'loss_R' (not a RefinementTrainer history)")
    df = df.dropna(subset=["loss_R"])
    tail = df.iloc[-max(1, int(round(len(df) * fraction))):]
    return {"loss_F": float(tail["loss_F"].mean()), "loss_R": float(tail["loss_R"].mean()),
            "steps": int(tail["step"].iloc[-1]), "averaged_over": int(len(tail))}


def restoration_prior_network(checkpoint: str | Path, *, fallback_pairs: Sequence[tuple] | None = None,
                              seed: int = 0, device="cpu", steps: int = 400, batch_size: int = 8,
                              patch_size: int = 64, lr: float = 1e-3) -> tuple[nn.Module, str]:
    """The restoration network whose features are the "-r" prior, and where it came from.

    ``checkpoint`` is a BaselineCNN trained earlier, by default notebook 00's
    ``runs/00_quickstart/noise25/last.pt``. When that file is missing and
    ``fallback_pairs`` are given, the same network is trained here with
    notebook 00's default recipe (L1, AdamW, lr 1e-3 cosine to 1e-6, 400 steps
    of 8 random 64x64 crops, seeded) so the prior is the same either way.
    Returns ``(network in eval mode, a sentence naming the source)``.
    """
    checkpoint = Path(checkpoint)
    shown = _shown_path(checkpoint)
    unfinished = checkpoint.is_file() and not _finished_run(checkpoint)
    if checkpoint.is_file() and not unfinished:
        net = build_model("baseline_cnn")
        load_checkpoint(net, checkpoint)
        return net.eval(), f"BaselineCNN trained on {checkpoint.parent.name} by an earlier run, loaded from {shown}"
    if fallback_pairs is None:
        problem = "is a run that has not finished" if unfinished else "not found"
        raise FileNotFoundError(f"{checkpoint}: restoration-model checkpoint {problem} (run notebook 00 first, "
                                "or pass fallback_pairs to train one here)")
    seed_everything(seed)
    net = build_model("baseline_cnn")
    config = TrainConfig(total_steps=steps, batch_size=batch_size, lr=lr, optimizer="adamw", eta_min=1e-6,
                         log_every=max(1, steps // 20), ckpt_every=steps, seed=seed)
    Trainer(net, MemoryPairs(fallback_pairs, patch_size=patch_size, seed=seed), L1Loss(), config, device=device,
            resume=False, progress=False).fit()
    why = "holds an unfinished run" if unfinished else "was not found"
    return net.eval(), f"BaselineCNN trained here with notebook 00's recipe ({steps} steps) because {shown} {why}"


def _finished_run(checkpoint: Path) -> bool:
    """True unless ``checkpoint`` is a Trainer checkpoint whose run stopped before
    its last step (notebook 00 may still be training it, e.g. when notebooks run
    in parallel). Plain weight files count as finished."""
    state = read_checkpoint_file(checkpoint)
    if not (isinstance(state, dict) and "step" in state and isinstance(state.get("config"), dict)):
        return True
    return int(state["step"]) >= int(state["config"].get("total_steps", 0))


def _shown_path(path: Path) -> str:
    """``path`` relative to the repository (or to $RESTORE_RUNS_DIR's parent) when
    it lies inside, so outputs carry no machine-specific absolute paths."""
    bases = [repo_root()] + ([Path(os.environ["RESTORE_RUNS_DIR"]).parent] if os.environ.get("RESTORE_RUNS_DIR")
                             else [])
    for base in bases:
        try:
            return str(path.resolve().relative_to(Path(base).resolve()))
        except ValueError:
            continue
    return path.name


# ---------------------------------------------------------------------- orchestration for the notebook
def train_target(model_name: str, preset: str, train_pairs: Sequence[tuple], *, steps: int, batch_size: int,
                 patch_size: int, lr: float, seed: int, device="cpu", loss: str = "charbonnier",
                 ckpt_dir: str | Path | None = None, reuse: bool = False, **model_cfg):
    """Train the target network F alone (the "Original" rows) with L_g.

    Seeds everything first, so F's initial weights depend only on ``seed``.
    ``reuse=True`` resumes from ``ckpt_dir/last.pt`` when it exists (a finished
    run is loaded, not retrained). Returns ``(model, history DataFrame)``.
    """
    seed_everything(seed)
    model = build_model(model_name, preset, **model_cfg)
    config = TrainConfig(total_steps=steps, batch_size=batch_size, lr=lr, optimizer="adamw", eta_min=1e-6,
                         log_every=max(1, steps // 50), ckpt_every=steps, seed=seed)
    trainer = Trainer(model, MemoryPairs(train_pairs, patch_size=patch_size, seed=seed), pixel_loss(loss), config,
                      ckpt_dir=ckpt_dir, device=device, resume=reuse, progress=False)
    history = trainer.fit()
    return model.eval(), history


def train_refiner(target: nn.Module, prior: nn.Module | None, train_pairs: Sequence[tuple], *, steps: int,
                  batch_size: int, patch_size: int, lr: float, seed: int, device="cpu",
                  initial: dict | None = None, loss: str = "charbonnier", lambda1: float = 1.0,
                  ablation: str | None = None, joint: bool = False, ckpt_dir: str | Path | None = None,
                  **refiner_cfg):
    """Train a PTG-RM R on top of ``target`` (frozen, or jointly with ``joint``).

    ``prior`` is the extractor G (its ``dim`` sets R's ``prior_dim``; the 2-D
    ablation row needs a spatial extractor); ``initial`` the cached F outputs
    on whole training images (frozen F only). Everything is seeded from
    ``seed`` first, so R's initial weights do not depend on what ran before.
    Returns ``(RefinedModel, history DataFrame)``.
    """
    if joint and initial is not None:
        raise ValueError("train_refiner: cached F outputs cannot be used when F is trained jointly")
    seed_everything(seed)
    prior_dim = getattr(prior, "dim", 512) if prior is not None else 512
    refiner = build_refiner(prior_dim, ablation, **refiner_cfg)
    model = RefinedModel(target, refiner, prior if refiner.uses_prior else None, freeze_target=not joint)
    data = RefinementPairs(train_pairs, patch_size, initial=initial, seed=seed)
    config = TrainConfig(total_steps=steps, batch_size=batch_size, lr=lr, optimizer="adamw", eta_min=1e-6,
                         log_every=1, ckpt_every=steps, seed=seed)
    trainer = RefinementTrainer(model, data, config, loss=loss, lambda1=lambda1, joint=joint, ckpt_dir=ckpt_dir,
                                device=device, resume=False, progress=False)
    history = trainer.fit()
    return model.eval(), history


def with_delta(value: float, reference: float, kind: str = "psnr") -> str:
    """``"22.91 (+3.04)"`` for PSNR; SSIM as the paper prints it, the change
    in hundredths: ``"0.767 (+6.1)"`` for +0.061."""
    if kind == "psnr":
        return f"{value:.2f} ({value - reference:+.2f})"
    if kind == "ssim":
        return f"{value:.3f} ({100 * (value - reference):+.1f})"
    raise ValueError(f"with_delta: kind must be 'psnr' or 'ssim', got {kind!r}")


@torch.no_grad()
def prior_signal(refiner: nn.Module, prior: nn.Module, pairs: Sequence[tuple], device="cpu",
                 initial: dict | None = None, target: nn.Module | None = None) -> dict:
    """How loud the prior is inside R: the RMS of the latent features
    f = R_e(Î_c ⊕ I_d) and of the mapped priors T_m(g) (PTG-SVE) and T_c(g)
    (PTG-CSA), averaged over ``pairs``' degraded images, and the *spread* of
    T_m(g) across the images (RMS deviation from its mean over images): the
    part of the prior that can tell one image from another.

    ``initial`` (cached F outputs) or ``target`` (F) gives Î_c. Needs a
    refiner with the learned SVE mask and CSA (the full setting).
    """
    if not all(hasattr(refiner, n) for n in ("mapp_space1", "mapp_space11")):
        raise ValueError("prior_signal needs a PTG-RM with the learned SVE mask and channel/spatial attention")
    f_rms, tm, tc = [], [], []
    for name, lq_np, _ in pairs:
        lq = to_tensor(lq_np)[None].to(device)
        init = initial[name][None].to(device) if initial is not None else target(lq)
        g = prior(lq).to(device)
        f = refiner.encode(pad_to_multiple(init, 4)[0], pad_to_multiple(lq, 4)[0])
        f_rms.append(float(f.pow(2).mean().sqrt()))
        tm.append(refiner.mapp_space2(F.leaky_relu(refiner.mapp_space1(g), 0.1)))
        tc.append(refiner.mapp_space22(F.leaky_relu(refiner.mapp_space11(g), 0.1)))
    tm, tc = torch.cat(tm), torch.cat(tc)
    return {"f_rms": float(np.mean(f_rms)), "Tm_rms": float(tm.pow(2).mean().sqrt()),
            "Tc_rms": float(tc.pow(2).mean().sqrt()), "Tm_spread": float((tm - tm.mean(0)).pow(2).mean().sqrt())}
