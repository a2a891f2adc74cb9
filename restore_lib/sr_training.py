"""Super-resolution training and evaluation for report 03 (RestoraVision).

What the notebook needs beyond the shared :class:`restore_lib.train.Trainer`:

* **FSRCNN on Y** (:class:`YChannelSR`, :func:`y_channel_loss`,
  :func:`y_model_forward`): FSRCNN maps the luminance of the LR image to the
  luminance of the SR image. The wrapper lets it train on the ordinary RGB
  pairs: it feeds the BT.601 Y of the RGB LR crop to the network and the loss
  compares with the Y of the RGB ground truth. At test time
  :func:`restore_lib.archs.fsrcnn.upscale_rgb` adds bicubic chroma; the SR
  protocol scores Y only, so the chroma choice does not change the metric.
* **SRGAN's two phases** (:class:`SRGANTrainer`): phase 1 is plain MSE
  training of the generator (SRResNet) with the shared ``Trainer``; phase 2
  continues from those weights with a discriminator and the generator loss
  ``content + 1e-3 * adversarial + 2e-8 * TV``
  (:class:`restore_lib.losses.SRGANGeneratorLoss`; content = MSE of frozen
  VGG19 relu5_4 features, or of the offline MobileNetV2 stand-in when no
  VGG19 weights are on disk; ``loss.description`` says which). Each step
  first updates the generator against the current discriminator, then the
  discriminator on the real crop and the detached SR crop (binary
  cross-entropy on logits), as in the tutorial the architecture follows.
  The discriminator, its optimizer and its scheduler are saved in the
  trainer's checkpoint, so an interrupted adversarial phase resumes exactly.
* **Evaluation** (:func:`evaluate_sr_methods`, :func:`comparison_table`,
  :func:`subset_table`, :func:`sr_val_fn`): several restorers scored on
  whole held-out images under one protocol, with LPIPS where a model is
  available and the honest ``"n/a (no trunk weights)"`` otherwise.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .archs.fsrcnn import rgb_to_ycbcr, upscale_rgb
from .experiment import per_image_table  # noqa: F401  (shared; re-exported for the notebooks)
from .metrics import MetricSpec
from .train import TrainConfig, Trainer

__all__ = ["YChannelSR", "y_channel_loss", "y_model_forward", "SRGANTrainer", "discriminator_loss",
           "sr_val_fn", "evaluate_sr_methods", "comparison_table", "subset_table", "per_image_table"]

Restorer = Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- FSRCNN on Y

class YChannelSR(nn.Module):
    """Train a one-channel (Y) SR network such as FSRCNN on RGB pairs.

    ``forward(lr_rgb)`` takes (N, 3, h, w) RGB in [0, 1], converts it to the
    BT.601 (studio-swing) Y of the SR evaluation protocol, Y/255 in [16, 235]/255,
    and returns the network's (N, 1, s*h, s*w) luminance, unclamped. Pair it
    with :func:`y_channel_loss`. ``net`` is the wrapped model; its state_dict
    keys appear under ``net.`` (save ``wrapper.net.state_dict()`` for the
    reference layout).
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        scale = int(getattr(net, "scale", 0) or 0)
        if scale < 1:
            raise ValueError(f"YChannelSR: {type(net).__name__} has no positive integer 'scale' attribute")
        self.net = net
        self.scale = scale

    def forward(self, lr_rgb: torch.Tensor) -> torch.Tensor:
        if lr_rgb.dim() != 4 or lr_rgb.shape[1] != 3:
            raise ValueError(f"YChannelSR: expected an (N, 3, h, w) RGB batch, got shape {tuple(lr_rgb.shape)}")
        return self.net(rgb_to_ycbcr(lr_rgb)[:, :1])


def y_channel_loss(kind: str = "mse") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(pred_y, gt_rgb)``: MSE (FSRCNN's loss) or L1 between the
    predicted luminance and the BT.601 Y of the RGB ground truth."""
    if kind not in ("mse", "l1"):
        raise ValueError(f"y_channel_loss: kind must be 'mse' or 'l1', got {kind!r}")
    crit = F.mse_loss if kind == "mse" else F.l1_loss

    def loss(pred_y: torch.Tensor, gt_rgb: torch.Tensor) -> torch.Tensor:
        target = rgb_to_ycbcr(gt_rgb)[:, :1]
        if pred_y.shape != target.shape:
            raise ValueError(f"y_channel_loss: prediction {tuple(pred_y.shape)} vs target Y {tuple(target.shape)}")
        return crit(pred_y, target)

    loss.__name__ = f"y_{kind}"
    return loss


def y_model_forward(model: nn.Module, lr_rgb: torch.Tensor) -> torch.Tensor:
    """RGB SR output of a Y model (or of a :class:`YChannelSR`): network on Y,
    chroma from bicubic (:func:`restore_lib.archs.fsrcnn.upscale_rgb`)."""
    net = model.net if isinstance(model, YChannelSR) else model
    return upscale_rgb(net, lr_rgb)


# --------------------------------------------------------------------------- SRGAN, adversarial phase

def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the discriminator: real crops -> 1, SR crops -> 0."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


class SRGANTrainer(Trainer):
    """SRGAN's adversarial phase on the shared :class:`Trainer`.

    ``generator``: the SRResNet to fine-tune (normally the MSE-pretrained
    one). ``discriminator``: the SRGAN discriminator (logits).
    ``gen_loss``: the generator objective; ``None`` builds
    :class:`restore_lib.losses.SRGANGeneratorLoss` (content + 1e-3 adv +
    2e-8 TV). It receives the discriminator's logits on the SR batch as
    ``batch["d_fake_logits"]``. ``config`` drives both networks (steps,
    batch, schedule); ``d_lr`` sets the discriminator's learning rate
    (default ``config.lr``), with the same optimizer type, betas and cosine
    schedule.

    One step: (1) generator update on ``gen_loss`` with D's logits on the
    (non-detached) SR crops; (2) discriminator update on
    ``BCE(D(HR), 1) + BCE(D(SR.detach()), 0)``. Logged: ``loss`` (generator
    total), its parts, ``d_loss``, ``d_real`` / ``d_fake`` (mean sigmoid
    outputs) and ``train_psnr``.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, train_set, config: TrainConfig, *,
                 gen_loss: nn.Module | None = None, d_lr: float | None = None, device="auto", **kwargs):
        from .utils import pick_device

        if gen_loss is None:
            from .losses import SRGANGeneratorLoss

            gen_loss = SRGANGeneratorLoss()
        dev = pick_device(device)
        self.discriminator = discriminator.to(dev)
        gen_loss = gen_loss.to(dev)
        opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        self.d_optimizer = opt_cls(self.discriminator.parameters(), lr=config.lr if d_lr is None else d_lr,
                                   betas=tuple(config.betas), weight_decay=config.weight_decay)
        if config.scheduler == "cosine":
            self.d_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.d_optimizer, T_max=config.total_steps, eta_min=config.eta_min)
        else:
            self.d_scheduler = torch.optim.lr_scheduler.LambdaLR(self.d_optimizer, lambda _: 1.0)
        super().__init__(generator, train_set, gen_loss, config, device=dev, **kwargs)
        if self.world_size > 1:
            raise NotImplementedError("SRGANTrainer runs in a single process only")

    def train_step(self, batch: dict) -> dict:
        from .metrics import psnr

        lq, gt = batch["lq"], batch["gt"]
        d = self.discriminator
        d.train()
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            sr = self.net(lq)
            fake_logits = d(sr)
            out = self.loss_fn(sr, gt, {**batch, "d_fake_logits": fake_logits})
        loss, logs = out if isinstance(out, tuple) else (out, {})
        logs = dict(logs)
        self.check_finite(loss, "generator loss")
        self.backward_step(loss)  # zero_grad first, so D's gradients from this pass are discarded below

        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            real_logits = d(gt)
            fake_logits = d(sr.detach())
            d_loss = discriminator_loss(real_logits.float(), fake_logits.float())
        self.check_finite(d_loss, "discriminator loss")
        self.backward_step(d_loss, optimizer=self.d_optimizer)
        self.d_scheduler.step()

        logs.update(loss=float(loss.detach()), d_loss=float(d_loss.detach()),
                    d_real=float(torch.sigmoid(real_logits.detach().float()).mean()),
                    d_fake=float(torch.sigmoid(fake_logits.detach().float()).mean()),
                    train_psnr=psnr(sr.detach().float().clamp(0, 1), gt.float()))
        return logs

    def extra_state(self) -> dict:
        return {"discriminator": self.discriminator.state_dict(), "d_optimizer": self.d_optimizer.state_dict(),
                "d_scheduler": self.d_scheduler.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        from .models import CheckpointError

        missing = [k for k in ("discriminator", "d_optimizer", "d_scheduler") if k not in state]
        if missing:
            raise CheckpointError(f"SRGAN checkpoint lacks {missing} (not written by SRGANTrainer?)")
        self.discriminator.load_state_dict(state["discriminator"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.d_scheduler.load_state_dict(state["d_scheduler"])


# --------------------------------------------------------------------------- evaluation

def sr_val_fn(pairs: Sequence, spec: MetricSpec, *, scale: int = 1,
              forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None) -> Callable[[nn.Module], dict]:
    """``val_fn(model) -> {"val_psnr", "val_ssim"}`` on whole images ``pairs``
    (``(name, lq, gt)`` arrays) under ``spec`` (e.g. ``SR_Y(4)``);
    ``forward(model, lq)`` customises the call (FSRCNN: :func:`y_model_forward`)."""
    from .experiment import evaluate

    def val_fn(model: nn.Module) -> dict:
        p = next(model.parameters(), None)
        dev = p.device if p is not None else torch.device("cpu")
        df = evaluate(model, pairs, spec, device=dev, scale=scale, forward=forward)
        return {"val_psnr": float(df["psnr"].mean()), "val_ssim": float(df["ssim"].mean())}

    return val_fn


@torch.no_grad()
def evaluate_sr_methods(methods: Mapping[str, Restorer | None], pairs: Sequence, spec: MetricSpec, *,
                        scale: int = 1, device="cpu", lpips_model=None, keep_outputs: bool = False):
    """Score restorers ``f(lq) -> restored`` on whole ``pairs`` under ``spec``.

    ``None`` is the identity baseline (the degraded input, MATLAB-bicubic
    upsampled when ``scale > 1``). Outputs are clamped to [0, 1]. With
    ``lpips_model`` (a :class:`restore_lib.lpips.LPIPS`) an ``lpips`` column
    is added (RGB, whole image); without one the column is NaN. Returns a long
    DataFrame ``(image, method, psnr, ssim, lpips)`` and, with
    ``keep_outputs``, ``{(image, method): (3, H, W) tensor}``.
    """
    import pandas as pd

    from .experiment import identity_baseline, to_tensor

    dev = torch.device(device) if not isinstance(device, torch.device) else device
    if lpips_model is not None:
        from .lpips import lpips_score
    rows, outputs = [], {}
    for name, lq_np, gt_np in pairs:
        lq, gt = to_tensor(lq_np)[None], to_tensor(gt_np)[None]
        for label, fn in methods.items():
            pred = identity_baseline(lq, scale) if fn is None else fn(lq.to(dev)).float().cpu()
            pred = pred.clamp(0, 1)
            if pred.shape != gt.shape:
                raise ValueError(f"{label} on {name}: output {tuple(pred.shape)} != ground truth {tuple(gt.shape)}")
            m = spec.evaluate(pred, gt)
            lp = lpips_score(pred, gt, lpips_model) if lpips_model is not None else math.nan
            rows.append({"image": name, "method": label, "psnr": m["psnr"], "ssim": m["ssim"], "lpips": lp})
            if keep_outputs:
                outputs[(name, label)] = pred[0]
    df = pd.DataFrame(rows)
    return (df, outputs) if keep_outputs else df


def comparison_table(df, reference: str | None = None, *, lpips_note: str | None = None,
                     columns: Sequence[str] = ("PSNR", "SSIM", "LPIPS")):
    """Mean per method (order of first appearance) from :func:`evaluate_sr_methods`:
    ``PSNR``, ``SSIM``, ``LPIPS`` (the mean, or ``lpips_note`` such as
    ``"n/a (no trunk weights)"`` when the column is all NaN), ``ΔPSNR`` against
    ``reference`` (default: the first method) and ``images better`` (how many
    images have a higher PSNR than the reference's). ``columns`` picks and
    orders the metric columns."""
    import pandas as pd

    order = list(dict.fromkeys(df["method"]))
    reference = reference or order[0]
    if reference not in order:
        raise KeyError(f"comparison_table: unknown reference method {reference!r}; methods: {order}")
    ref = df[df["method"] == reference].set_index("image")["psnr"]
    have_lpips = "lpips" in df and df["lpips"].notna().any()
    rows = []
    for m in order:
        d = df[df["method"] == m]
        per = d.set_index("image")["psnr"]
        values = {"PSNR": float(d["psnr"].mean()), "SSIM": float(d["ssim"].mean()),
                  "LPIPS": float(d["lpips"].mean()) if have_lpips else (lpips_note or "n/a")}
        row = {"method": m, **{c: values[c] for c in columns}}
        row["ΔPSNR"] = float(d["psnr"].mean() - ref.mean())
        row["images better"] = int((per > ref.reindex(per.index)).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def subset_table(df, subsets: Mapping[str, Sequence[str]], methods: Sequence[str] | None = None):
    """Mean PSNR and SSIM per (subset of images, method): one row per subset,
    columns ``"<method> PSNR"``, ``"<method> SSIM"`` and ``images``."""
    import pandas as pd

    methods = list(methods) if methods is not None else list(dict.fromkeys(df["method"]))
    rows = []
    for label, names in subsets.items():
        names = list(names)
        d = df[df["image"].isin(names)]
        if d.empty:
            raise KeyError(f"subset_table: no results for subset {label!r} ({names})")
        row = {"test set": label, "images": len(set(d["image"]))}
        for m in methods:
            dm = d[d["method"] == m]
            row[f"{m} PSNR"] = float(dm["psnr"].mean())
            row[f"{m} SSIM"] = float(dm["ssim"].mean())
        rows.append(row)
    return pd.DataFrame(rows)
