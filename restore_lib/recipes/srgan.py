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
* **Evaluation** is :func:`restore_lib.evaluate.evaluate` (with LPIPS where a
  model is available) and its tables; validation is
  :func:`restore_lib.evaluate.make_val_fn` with ``forward=`` :func:`y_model_forward`
  for FSRCNN.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..archs.fsrcnn import rgb_to_ycbcr, upscale_rgb
from ..checkpoints import CheckpointError
from ..losses import SRGANGeneratorLoss
from ..metrics import psnr
from ..train import TrainConfig, Trainer, build_optimizer, build_scheduler
from ..utils import pick_device

__all__ = ["YChannelSR", "y_channel_loss", "y_model_forward", "SRGANTrainer", "discriminator_loss"]


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
        if gen_loss is None:
            gen_loss = SRGANGeneratorLoss()
        dev = pick_device(device)
        self.discriminator = discriminator.to(dev)
        gen_loss = gen_loss.to(dev)
        self.d_optimizer = build_optimizer(self.discriminator.parameters(), config, lr=d_lr)
        self.d_scheduler = build_scheduler(self.d_optimizer, config)
        super().__init__(generator, train_set, gen_loss, config, device=dev, **kwargs)
        if self.world_size > 1:
            raise NotImplementedError("SRGANTrainer runs in a single process only")

    def train_step(self, batch: dict) -> dict:
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
        missing = [k for k in ("discriminator", "d_optimizer", "d_scheduler") if k not in state]
        if missing:
            raise CheckpointError(f"SRGAN checkpoint lacks {missing} (not written by SRGANTrainer?)")
        self.discriminator.load_state_dict(state["discriminator"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.d_scheduler.load_state_dict(state["d_scheduler"])
