"""DiffIR (Xia et al., ICCV 2023): an efficient diffusion model for image
restoration that diffuses a compact prior vector instead of an image.

Written from the paper and checked against the reference implementation
(Zj-BinXia/DiffIR @293f86cd, sub-projects ``DiffIR-demotionblur`` and
``DiffIR-SRGAN``: ``DiffIR/archs/S1_arch.py``, ``S2_arch.py``, ``common.py``
and ``ldm/ddpm.py``) so that parameter names, parameter counts and state_dict
keys match its released ``params_ema`` checkpoints, which load strictly.
Upstream licence: Apache-2.0 (added to the repository in August 2024).

Components
----------
* **CPEN** (compact IR prior extraction network). Stage 1 (``E``) sees the
  ground truth: ``z = MLP(GAP(convs(ResBlocks(conv([u(LQ), PixelUnshuffle4(GT)])))))``
  where ``u`` brings the LQ image to GT/4 resolution: PixelUnshuffle(4) for
  deblurring, PixelUnshuffle(2) for x2 SR, nothing for x4 SR (the LR image
  already has GT/4 size). Stage 2 (``condition``) is the same network on
  ``u(LQ)`` only. There are no strided convolutions: the channel widths go
  64 -> 128 -> 128 -> 256 at one resolution, then global average pooling and a
  2-layer MLP (LeakyReLU 0.1) give the IR prior representation (IPR)
  ``z`` in R^(4 n_feats) = R^256.
* **DIRformer** (``G``): the Restormer U-Net whose blocks are modulated by the
  IPR. In every dynamic block, before the attention and before the feed-forward
  network, the layer-normalised feature is modulated per channel,
  ``F' = (W1 z) * Norm(F) + W2 z`` (one bias-free ``Linear(256, 2C)``, the
  ``kernel`` of each branch). DMTA is Restormer's transposed attention (a
  C x C map per head from L2-normalised, depthwise+pointwise-projected queries
  and keys, with a learnable temperature); DGFN is the gated depthwise-conv
  feed-forward network ``GELU(W1 F') * W2 F'``. Deblurring ends with a 3x3 conv
  plus the input; SR ends with ``Upsampler(x4)`` + conv plus the nearest-
  upsampled input.
* **Denoiser** (``denoise``): ``[c, t / (10 T), z_t]`` (condition vector, scaled
  timestep, noisy IPR; 2*256+1 inputs) -> ``Linear`` + LeakyReLU, then
  ``n_denoise_res`` blocks of ``Linear`` + LeakyReLU. The reference calls these
  blocks "ResMLP" but they have no skip connection; neither does this code.
* **Diffusion** (``diffusion``): DDPM with T = 4 steps and betas linear in
  sqrt(beta) from 0.1 to 0.99: betas [0.100, 0.294, 0.591, 0.990], cumulative
  alphas [0.9, 0.635, 0.260, 0.0026]. The denoiser predicts z_0 directly
  ("x0" parameterisation) and each reverse step returns the *mean* of the
  posterior q(z_{t-1} | z_t, z_0), with no noise added:
  ``z_{t-1} = c1_t * z0_hat + c2_t * z_t``,
  ``c1_t = beta_t sqrt(abar_{t-1}) / (1 - abar_t)``,
  ``c2_t = (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t)``.
  At t = 0 (c1 = 1, c2 = 0) the result is the last z0 prediction.

Training (both stages are in the reference's ``DiffIR_S*_model.py``):

* Stage 1 trains ``G`` and ``E`` with an L1 loss on the restored image.
* Stage 2 starts ``G`` from stage 1 (:func:`restore_lib.recipes.diffir.init_s2_from_s1`), keeps the
  stage-1 CPEN frozen as a teacher that gives the target IPR ``z``, noises it
  to step T (``z_T = sqrt(abar_T) z + sqrt(1 - abar_T) eps``), runs *all* T
  reverse steps inside the training step and feeds the result to ``G``. The
  loss is ``L1(z_hat, z) + L1(restored, gt)`` (the reference also logs a KL
  divergence between the two IPRs but does not add it to the loss). At
  inference the reverse process starts from ``randn(B, 256)``.

The state_dict of stage 2 lists two shared modules twice, as the reference
does: ``condition.*`` is the same module as ``diffusion.condition.*`` and
``denoise.*`` is ``diffusion.model.*``. ``parameters()`` yields each tensor
once, so the parameter counts below count them once. The 12 schedule buffers
(``diffusion.betas``, ``diffusion.alphas_cumprod``, ...) are persistent.

============================  ==========  =====  =======================
config (``task=``)            params      keys   reference yml
============================  ==========  =====  =======================
DiffIRS1 ``"deblur"``         26,742,206  536    train_DiffIRS1.yml
DiffIRS2 ``"deblur"``         26,911,934  588    train_DiffIRS2.yml
DiffIRS1 ``"sr"`` (x4)        24,801,478  547    train_DiffIRS1_x4.yml
DiffIRS2 ``"sr"`` (x4)        24,971,206  615    train_DiffIRS2_x4.yml
============================  ==========  =====  =======================

API
---
Images are (N, C, H, W) tensors in [0, 1] of any size. Deblurring pads to a
multiple of 8 and x4 SR pads the LR image to a multiple of 8 (16 for x2),
both with reflect padding at the bottom/right like the reference's
``pad_test``, and crop the result back. ``DiffIRS1``/``DiffIRS2`` take
``task="deblur"`` (default) or ``task="sr"``; every other argument defaults to
that task's reference config and can be overridden. Presets: ``"default"``,
``"sr"``, ``"small"`` and ``"sr_small"`` (CPU training); ``build_model(name,
"small", task="sr")`` is the same as ``"sr_small"``.

* ``DiffIRS1.forward(lq, gt) -> (restored, ipr)``: stage 1 (both modes).
* ``DiffIRS1.encode(lq, gt) -> ipr``: the stage-1 CPEN only (the stage-2
  teacher; call it under ``torch.no_grad()`` with the model in eval mode).
* ``restore(lq, ipr=None) -> restored`` (both classes): run the DIRformer with a
  given IPR. ``ipr=None`` runs it *without a prior*: every modulation is
  skipped (``F' = Norm(F)``), which turns it into a plain Restormer-style
  U-Net. Pass ``torch.zeros(n, model.ipr_dim)`` for a literal zero prior, but
  note that a zero IPR zeroes the input of every attention and feed-forward
  branch, so with ``bias=False`` every transformer block becomes the identity.
* ``DiffIRS2.forward(lq, ipr_target=None, generator=None)``:

  - with ``ipr_target`` (the frozen stage-1 CPEN output, shape (N, 256)): the
    training-time diffusion (noise ``ipr_target`` to step T, run all T reverse
    steps) and ``(restored, ipr_pred)``, so that
    ``L1(ipr_pred, ipr_target) + L1(restored, gt)`` can be formed. The
    reference takes this path in training mode; here the argument decides.
  - without it: sampling from ``randn(N, 256)`` and ``restored`` only.

  ``generator`` is a ``torch.Generator`` or an int seed for the Gaussian
  noise; the same seed gives bit-identical outputs. ``None`` uses the global
  RNG, as the reference does (its outputs then vary by ~1e-4 between runs);
  after the same ``torch.manual_seed`` both give the same result, but the
  reference also draws (and ignores) one noise tensor per reverse step, so
  the global RNG state afterwards differs.
* ``DiffIRS2.sample_ipr(lq, generator=None)`` and
  ``DiffIRS2.diffuse_ipr(lq, ipr_target, generator=None) -> (ipr, steps)``:
  the diffusion alone (``steps`` = the T intermediate IPRs; the reference's
  first 100k deblurring iterations train only this part).

Stage-2 initialisation from a stage-1 checkpoint and both training stages are
in :mod:`restore_lib.recipes.diffir`.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._common import crop_to, pad_to_multiple
from .restormer import Attention, Downsample, FeedForward, LayerNorm, OverlapPatchEmbed, Upsample

__all__ = [
    "TASK_CONFIGS", "DMTA", "DGFN", "DynamicTransformerBlock", "DIRformer", "CPEN", "DenoiseMLP",
    "IPRDiffusion", "DiffIRS1", "DiffIRS2", "diffusion_schedule",
]

#: The reference training configs (``network_g`` of the yml files).
TASK_CONFIGS: dict[str, dict[str, Any]] = {
    "deblur": dict(scale=1, n_encoder_res=5, dim=48, num_blocks=(3, 5, 6, 6), num_refinement_blocks=4,
                   heads=(1, 2, 4, 8), ffn_expansion_factor=2.0, bias=False, LayerNorm_type="WithBias"),
    "sr": dict(scale=4, n_encoder_res=9, dim=64, num_blocks=(13, 1, 1, 1), num_refinement_blocks=13,
               heads=(1, 2, 4, 8), ffn_expansion_factor=2.2, bias=False, LayerNorm_type="BiasFree"),
}

#: CPU profile; combined with ``task="sr"`` it keeps the SR-specific choices (LN type, FFN factor, scale).
_SMALL = {"dim": 16, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1, "heads": [1, 1, 2, 2],
          "n_encoder_res": 1, "n_feats": 16}


# --------------------------------------------------------------------------- DIRformer

def modulate(x: torch.Tensor, kernel: nn.Module, ipr: torch.Tensor | None) -> torch.Tensor:
    """``x * (W1 z) + W2 z`` per channel, with ``[W1; W2] = kernel``; identity when ``ipr`` is None."""
    if ipr is None:
        return x
    scale, shift = kernel(ipr).view(-1, 2 * x.shape[1], 1, 1).chunk(2, dim=1)
    return x * scale + shift


class DMTA(Attention):
    """Dynamic multi-head transposed attention: Restormer's MDTA on the
    IPR-modulated input (``kernel.0`` = Linear(ipr_dim, 2C), no bias)."""

    def __init__(self, dim: int, num_heads: int, bias: bool, ipr_dim: int = 256):
        # Not ``Attention.__init__``: the reference creates the modulation
        # ``kernel`` between the temperature and the convolutions, and both the
        # order of ``parameters()`` (optimizer states) and what a seed draws
        # for each tensor follow the creation order. Names and shapes are
        # Attention's, so its ``forward`` is reused unchanged.
        nn.Module.__init__(self)
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.kernel = nn.Sequential(nn.Linear(ipr_dim, dim * 2, bias=False))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor, ipr: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(modulate(x, self.kernel, ipr))


class DGFN(FeedForward):
    """Dynamic gated feed-forward network: Restormer's GDFN on the
    IPR-modulated input."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool, ipr_dim: int = 256):
        super().__init__(dim, ffn_expansion_factor, bias)
        self.kernel = nn.Sequential(nn.Linear(ipr_dim, dim * 2, bias=False))

    def forward(self, x: torch.Tensor, ipr: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(modulate(x, self.kernel, ipr))


class DynamicTransformerBlock(nn.Module):
    """``x + DMTA(LN(x), z)``, then ``x + DGFN(LN(x), z)``."""

    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool, LayerNorm_type: str,
                 ipr_dim: int = 256):
        super().__init__()
        self.norm1 = LayerNorm(dim, LayerNorm_type)
        self.attn = DMTA(dim, num_heads, bias, ipr_dim)
        self.norm2 = LayerNorm(dim, LayerNorm_type)
        self.ffn = DGFN(dim, ffn_expansion_factor, bias, ipr_dim)

    def forward(self, x: torch.Tensor, ipr: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), ipr)
        return x + self.ffn(self.norm2(x), ipr)


class DynamicLevel(nn.ModuleList):
    """A stack of dynamic blocks that all see the same IPR (keys ``<level>.<i>.*``)."""

    def __init__(self, n: int, dim: int, heads: int, ffn: float, bias: bool, ln: str, ipr_dim: int):
        super().__init__([DynamicTransformerBlock(dim, heads, ffn, bias, ln, ipr_dim) for _ in range(n)])

    def forward(self, x: torch.Tensor, ipr: torch.Tensor | None) -> torch.Tensor:
        for block in self:
            x = block(x, ipr)
        return x


def default_conv(cin: int, cout: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    """'Same'-padded convolution (EDSR's ``default_conv``)."""
    return nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=bias)


class Upsampler(nn.Sequential):
    """log2(scale) x (3x3 conv to 4C, PixelShuffle(2)); keys ``0``, ``2``, ..."""

    def __init__(self, scale: int, n_feat: int):
        if scale < 2 or scale & (scale - 1):
            raise ValueError(f"Upsampler: scale must be a power of two >= 2, got {scale}")
        layers: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            layers += [default_conv(n_feat, 4 * n_feat, 3), nn.PixelShuffle(2)]
        super().__init__(*layers)


class DIRformer(nn.Module):
    """The dynamic IR transformer: a 4-level U-Net of dynamic blocks.

    ``scale=1`` is the deblurring network (``output`` conv + input residual).
    ``scale=4`` (x4 SR) runs on the LR image and ends with ``tail`` =
    Upsampler(x4) + conv plus the nearest-upsampled LR image; ``scale=2``
    first pixel-unshuffles the LR image by 2 and uses the same x4 tail.
    """

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, scale: int = 1, dim: int = 48,
                 num_blocks: Sequence[int] = (3, 5, 6, 6), num_refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.0, bias: bool = False,
                 LayerNorm_type: str = "WithBias", ipr_dim: int = 256):
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"DIRformer: scale must be 1 (deblurring), 2 or 4 (SR), got {scale}")
        self.scale = scale
        self.unshuffle = 2 if scale == 2 else 1
        ffn, ln = ffn_expansion_factor, LayerNorm_type

        def level(i: int, n: int, width: int) -> DynamicLevel:
            return DynamicLevel(n, width, heads[i], ffn, bias, ln, ipr_dim)

        self.patch_embed = OverlapPatchEmbed(inp_channels * self.unshuffle ** 2, dim)
        self.encoder_level1 = level(0, num_blocks[0], dim)
        self.down1_2 = Downsample(dim)
        self.encoder_level2 = level(1, num_blocks[1], dim * 2)
        self.down2_3 = Downsample(dim * 2)
        self.encoder_level3 = level(2, num_blocks[2], dim * 4)
        self.down3_4 = Downsample(dim * 4)
        self.latent = level(3, num_blocks[3], dim * 8)

        self.up4_3 = Upsample(dim * 8)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, kernel_size=1, bias=bias)
        self.decoder_level3 = level(2, num_blocks[2], dim * 4)
        self.up3_2 = Upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, kernel_size=1, bias=bias)
        self.decoder_level2 = level(1, num_blocks[1], dim * 2)
        self.up2_1 = Upsample(dim * 2)  # level 1 keeps 2*dim channels after the concat
        self.decoder_level1 = level(0, num_blocks[0], dim * 2)
        self.refinement = level(0, num_refinement_blocks, dim * 2)

        if scale == 1:
            self.output = nn.Conv2d(dim * 2, out_channels, kernel_size=3, padding=1, bias=bias)
        else:
            self.tail = nn.Sequential(Upsampler(4, dim * 2), default_conv(dim * 2, out_channels, 3))

    def forward(self, x: torch.Tensor, ipr: torch.Tensor | None) -> torch.Tensor:
        """``x``: LQ image whose size fits the U-Net; ``ipr``: (N, ipr_dim) or None (no modulation)."""
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        enc1 = self.encoder_level1(self.patch_embed(feat), ipr)
        enc2 = self.encoder_level2(self.down1_2(enc1), ipr)
        enc3 = self.encoder_level3(self.down2_3(enc2), ipr)
        lat = self.latent(self.down3_4(enc3), ipr)

        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), enc3], 1)), ipr)
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)), ipr)
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1), ipr)
        dec1 = self.refinement(dec1, ipr)
        if self.scale == 1:
            return self.output(dec1) + x
        return self.tail(dec1) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


# --------------------------------------------------------------------------- CPEN

class ResBlock(nn.Module):
    """``x + conv(LeakyReLU(conv(x)))`` (3x3, with bias, no scaling)."""

    def __init__(self, n_feats: int):
        super().__init__()
        self.body = nn.Sequential(default_conv(n_feats, n_feats, 3), nn.LeakyReLU(0.1),
                                  default_conv(n_feats, n_feats, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CPEN(nn.Module):
    """Compact IR prior extraction network -> IPR of size ``4 * n_feats``.

    ``stage=1`` sees ``[u(LQ), PixelUnshuffle4(GT)]``, ``stage=2`` sees
    ``u(LQ)`` only, where ``u`` brings LQ to GT/4 resolution (unshuffle by 4,
    2, 1 for scale 1, 2, 4). Keys: ``E.*`` (conv stack), ``mlp.*``.
    """

    def __init__(self, stage: int, n_feats: int = 64, n_encoder_res: int = 5, scale: int = 1,
                 in_channels: int = 3, gt_channels: int = 3):
        super().__init__()
        if stage not in (1, 2):
            raise ValueError(f"CPEN: stage must be 1 or 2, got {stage}")
        if scale not in (1, 2, 4):
            raise ValueError(f"CPEN: scale must be 1, 2 or 4, got {scale}")
        self.stage = stage
        self.lq_unshuffle = 4 // scale
        cin = in_channels * self.lq_unshuffle ** 2 + (gt_channels * 16 if stage == 1 else 0)
        act = functools.partial(nn.LeakyReLU, 0.1)
        self.E = nn.Sequential(
            nn.Conv2d(cin, n_feats, 3, padding=1), act(),
            *[ResBlock(n_feats) for _ in range(n_encoder_res)],
            nn.Conv2d(n_feats, n_feats * 2, 3, padding=1), act(),
            nn.Conv2d(n_feats * 2, n_feats * 2, 3, padding=1), act(),
            nn.Conv2d(n_feats * 2, n_feats * 4, 3, padding=1), act(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.mlp = nn.Sequential(nn.Linear(n_feats * 4, n_feats * 4), act(),
                                 nn.Linear(n_feats * 4, n_feats * 4), act())

    def forward(self, lq: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        feat = F.pixel_unshuffle(lq, self.lq_unshuffle) if self.lq_unshuffle > 1 else lq
        if self.stage == 1:
            if gt is None:
                raise ValueError("CPEN stage 1 needs the ground truth image")
            feat = torch.cat([feat, F.pixel_unshuffle(gt, 4)], dim=1)
        return self.mlp(self.E(feat).flatten(1))


# --------------------------------------------------------------------------- diffusion

class MLPBlock(nn.Module):
    """``LeakyReLU(Linear(x))``; the reference's "ResMLP" (no skip connection)."""

    def __init__(self, n: int):
        super().__init__()
        self.resmlp = nn.Sequential(nn.Linear(n, n), nn.LeakyReLU(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resmlp(x)


class DenoiseMLP(nn.Module):
    """z0 predictor: ``MLP([c, t / (10 T), z_t])`` (keys ``resmlp.0``, ``resmlp.2.resmlp.0``, ...)."""

    def __init__(self, n_feats: int = 64, n_denoise_res: int = 1, timesteps: int = 4):
        super().__init__()
        self.max_period = timesteps * 10
        width = 4 * n_feats
        self.resmlp = nn.Sequential(nn.Linear(2 * width + 1, width), nn.LeakyReLU(0.1),
                                    *[MLPBlock(width) for _ in range(n_denoise_res)])

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        t = (t.to(c.dtype) / self.max_period).view(-1, 1)
        return self.resmlp(torch.cat([c, t, z_t], dim=1))


def diffusion_schedule(timesteps: int = 4, linear_start: float = 0.1, linear_end: float = 0.99
                       ) -> dict[str, torch.Tensor]:
    """The DDPM buffers of the reference (float64; stored as float32).

    betas are linear in sqrt(beta); the posterior q(z_{t-1} | z_t, z_0) has
    mean ``coef1 * z_0 + coef2 * z_t`` and variance ``beta_t (1 - abar_{t-1}) / (1 - abar_t)``.
    """
    betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, timesteps, dtype=torch.float64) ** 2
    alphas = 1.0 - betas
    abar = torch.cumprod(alphas, dim=0)
    abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
    post_var = betas * (1.0 - abar_prev) / (1.0 - abar)
    return {
        "betas": betas,
        "alphas_cumprod": abar,
        "alphas_cumprod_prev": abar_prev,
        "sqrt_alphas_cumprod": abar.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1.0 - abar).sqrt(),
        "log_one_minus_alphas_cumprod": (1.0 - abar).log(),
        "sqrt_recip_alphas_cumprod": (1.0 / abar).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / abar - 1.0).sqrt(),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": post_var.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * abar_prev.sqrt() / (1.0 - abar),
        "posterior_mean_coef2": (1.0 - abar_prev) * alphas.sqrt() / (1.0 - abar),
    }


def _generator(generator: torch.Generator | int | None, device: torch.device) -> torch.Generator | None:
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator(device=device).manual_seed(generator)
    raise TypeError(f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}")


class IPRDiffusion(nn.Module):
    """DDPM on the IPR vector, conditioned on CPEN_S2(LQ).

    Holds the shared ``model`` (denoiser) and ``condition`` (CPEN_S2) modules
    and the 12 schedule buffers under the reference's names.
    """

    def __init__(self, denoise: nn.Module, condition: nn.Module, ipr_dim: int = 256, timesteps: int = 4,
                 linear_start: float = 0.1, linear_end: float = 0.99):
        super().__init__()
        self.model = denoise
        self.condition = condition
        self.ipr_dim = ipr_dim
        self.num_timesteps = timesteps
        for name, value in diffusion_schedule(timesteps, linear_start, linear_end).items():
            self.register_buffer(name, value.to(torch.float32))

    def q_sample(self, z0: torch.Tensor, t: int, noise: torch.Tensor) -> torch.Tensor:
        """Forward process: ``sqrt(abar_t) z0 + sqrt(1 - abar_t) noise``."""
        return self.sqrt_alphas_cumprod[t] * z0 + self.sqrt_one_minus_alphas_cumprod[t] * noise

    def reverse(self, z: torch.Tensor, c: torch.Tensor) -> list[torch.Tensor]:
        """All T reverse steps from ``z = z_T``; returns [z_{T-1}, ..., z_0]."""
        steps = []
        for i in reversed(range(self.num_timesteps)):
            t = torch.full((z.shape[0],), i, device=z.device, dtype=torch.long)
            z0_hat = self.model(z, t, c)
            z = self.posterior_mean_coef1[i] * z0_hat + self.posterior_mean_coef2[i] * z
            steps.append(z)
        return steps

    def _noise(self, like: torch.Tensor, generator) -> torch.Tensor:
        gen = _generator(generator, like.device)
        return torch.randn(like.shape[0], self.ipr_dim, generator=gen, device=like.device, dtype=like.dtype)

    def forward(self, img: torch.Tensor, ipr_target: torch.Tensor | None = None,
                generator: torch.Generator | int | None = None):
        """Without a target: sample from noise and return z_0. With one: noise
        it to step T, run all reverse steps and return (z_0, steps)."""
        c = self.condition(img)
        if ipr_target is None:
            return self.reverse(self._noise(c, generator), c)[-1]
        if ipr_target.shape != c.shape:
            raise ValueError(f"ipr_target must have shape {tuple(c.shape)} (batch, ipr_dim), "
                             f"got {tuple(ipr_target.shape)}")
        z_T = self.q_sample(ipr_target, self.num_timesteps - 1, self._noise(c, generator))
        steps = self.reverse(z_T, c)
        return steps[-1], steps


# --------------------------------------------------------------------------- models

def _task_config(task: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    if task not in TASK_CONFIGS:
        raise ValueError(f"DiffIR: task must be one of {sorted(TASK_CONFIGS)}, got {task!r}")
    cfg = dict(TASK_CONFIGS[task])
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    if task == "deblur" and cfg["scale"] != 1:
        raise ValueError(f"DiffIR: task 'deblur' has scale 1, got scale={cfg['scale']}")
    if task == "sr" and cfg["scale"] not in (2, 4):
        raise ValueError(f"DiffIR: task 'sr' supports scale 2 or 4, got scale={cfg['scale']}")
    return cfg


def _pad_bottom_right(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """Reflect pad (replicate when the pad reaches the image size), as :func:`pad_to_multiple`."""
    if ph == 0 and pw == 0:
        return x
    mode = "replicate" if ph >= x.shape[-2] or pw >= x.shape[-1] else "reflect"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class _DiffIRBase(nn.Module):
    """Shared config handling, padding and the prior-guided DIRformer call."""

    scale = 1
    size_multiple = 8
    PRESETS = {"default": {}, "sr": {"task": "sr"}, "small": dict(_SMALL), "sr_small": {"task": "sr", **_SMALL}}

    def _build_generator(self, task: str, inp_channels: int, out_channels: int, n_feats: int,
                         overrides: Mapping[str, Any]) -> dict[str, Any]:
        cfg = _task_config(task, overrides)
        self.task = task
        self.scale = cfg["scale"]
        # the U-Net downsamples 3 times (x8); x2 SR first unshuffles the LR image by 2
        self.size_multiple = 16 if self.scale == 2 else 8
        self.ipr_dim = 4 * n_feats
        self.G = DIRformer(inp_channels, out_channels, cfg["scale"], cfg["dim"], cfg["num_blocks"],
                           cfg["num_refinement_blocks"], cfg["heads"], cfg["ffn_expansion_factor"], cfg["bias"],
                           cfg["LayerNorm_type"], self.ipr_dim)
        return cfg

    def _pad_lq(self, lq: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        if lq.dim() != 4:
            raise ValueError(f"{type(self).__name__}: expected an (N, C, H, W) image, got shape {tuple(lq.shape)}")
        return pad_to_multiple(lq, self.size_multiple, mode="reflect")

    def _check_ipr(self, ipr: torch.Tensor, batch: int, name: str) -> None:
        if ipr.shape != (batch, self.ipr_dim):
            raise ValueError(f"{type(self).__name__}: {name} must have shape ({batch}, {self.ipr_dim}), "
                             f"got {tuple(ipr.shape)}")

    def restore(self, lq: torch.Tensor, ipr: torch.Tensor | None = None) -> torch.Tensor:
        """The DIRformer guided by ``ipr`` (N, ipr_dim); ``None`` = no modulation."""
        lq_p, size = self._pad_lq(lq)
        if ipr is not None:
            self._check_ipr(ipr, lq.shape[0], "ipr")
        return crop_to(self.G(lq_p, ipr), size, self.scale)


class DiffIRS1(_DiffIRBase):
    """Stage 1: CPEN_S1 (``E``, sees LQ and GT) + DIRformer (``G``).

    ``forward(lq, gt) -> (restored, ipr)`` in both modes (the reference
    returns only the image in eval mode). ``gt`` must be ``scale`` times the
    LQ size.
    """

    def __init__(self, task: str = "deblur", *, scale: int | None = None, n_encoder_res: int | None = None,
                 inp_channels: int = 3, out_channels: int = 3, dim: int | None = None,
                 num_blocks: Sequence[int] | None = None, num_refinement_blocks: int | None = None,
                 heads: Sequence[int] | None = None, ffn_expansion_factor: float | None = None,
                 bias: bool | None = None, LayerNorm_type: str | None = None, n_feats: int = 64):
        super().__init__()
        cfg = self._build_generator(task, inp_channels, out_channels, n_feats, dict(
            scale=scale, n_encoder_res=n_encoder_res, dim=dim, num_blocks=num_blocks,
            num_refinement_blocks=num_refinement_blocks, heads=heads, ffn_expansion_factor=ffn_expansion_factor,
            bias=bias, LayerNorm_type=LayerNorm_type))
        self.E = CPEN(1, n_feats, cfg["n_encoder_res"], cfg["scale"], inp_channels, out_channels)

    def _pad_pair(self, lq: torch.Tensor, gt: torch.Tensor):
        lq_p, size = self._pad_lq(lq)
        s = self.scale
        if gt.dim() != 4 or gt.shape[0] != lq.shape[0] or gt.shape[-2:] != (lq.shape[-2] * s, lq.shape[-1] * s):
            raise ValueError(f"DiffIRS1: gt must be (N, C, {s}H, {s}W) for lq {tuple(lq.shape)}, "
                             f"got {tuple(gt.shape)}")
        ph, pw = lq_p.shape[-2] - size[0], lq_p.shape[-1] - size[1]
        return lq_p, _pad_bottom_right(gt, ph * s, pw * s), size

    def encode(self, lq: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """The stage-1 IPR (N, ipr_dim) of a padded (LQ, GT) pair, as used by ``forward``."""
        lq_p, gt_p, _ = self._pad_pair(lq, gt)
        return self.E(lq_p, gt_p)

    def forward(self, lq: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lq_p, gt_p, size = self._pad_pair(lq, gt)
        ipr = self.E(lq_p, gt_p)
        return crop_to(self.G(lq_p, ipr), size, self.scale), ipr


class DiffIRS2(_DiffIRBase):
    """Stage 2: CPEN_S2 (``condition``, LQ only) + denoiser (``denoise``) +
    DDPM on the IPR (``diffusion``, sharing both) + DIRformer (``G``).

    ``forward(lq, ipr_target=None, generator=None)``: see the module docstring.
    """

    def __init__(self, task: str = "deblur", *, scale: int | None = None, n_encoder_res: int | None = None,
                 inp_channels: int = 3, out_channels: int = 3, dim: int | None = None,
                 num_blocks: Sequence[int] | None = None, num_refinement_blocks: int | None = None,
                 heads: Sequence[int] | None = None, ffn_expansion_factor: float | None = None,
                 bias: bool | None = None, LayerNorm_type: str | None = None, n_feats: int = 64,
                 n_denoise_res: int = 1, linear_start: float = 0.1, linear_end: float = 0.99, timesteps: int = 4):
        super().__init__()
        cfg = self._build_generator(task, inp_channels, out_channels, n_feats, dict(
            scale=scale, n_encoder_res=n_encoder_res, dim=dim, num_blocks=num_blocks,
            num_refinement_blocks=num_refinement_blocks, heads=heads, ffn_expansion_factor=ffn_expansion_factor,
            bias=bias, LayerNorm_type=LayerNorm_type))
        self.condition = CPEN(2, n_feats, cfg["n_encoder_res"], cfg["scale"], inp_channels)
        self.denoise = DenoiseMLP(n_feats, n_denoise_res, timesteps)
        self.diffusion = IPRDiffusion(self.denoise, self.condition, self.ipr_dim, timesteps, linear_start,
                                      linear_end)

    def sample_ipr(self, lq: torch.Tensor, generator: torch.Generator | int | None = None) -> torch.Tensor:
        """Inference-time IPR: the reverse process from Gaussian noise."""
        return self.diffusion(self._pad_lq(lq)[0], generator=generator)

    def diffuse_ipr(self, lq: torch.Tensor, ipr_target: torch.Tensor,
                    generator: torch.Generator | int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Training-time IPR: noise ``ipr_target`` to step T, run all T steps;
        returns (final IPR, the T intermediate IPRs)."""
        self._check_ipr(ipr_target, lq.shape[0], "ipr_target")
        return self.diffusion(self._pad_lq(lq)[0], ipr_target, generator)

    def forward(self, lq: torch.Tensor, ipr_target: torch.Tensor | None = None,
                generator: torch.Generator | int | None = None):
        lq_p, size = self._pad_lq(lq)
        if ipr_target is None:
            ipr = self.diffusion(lq_p, generator=generator)
            return crop_to(self.G(lq_p, ipr), size, self.scale)
        self._check_ipr(ipr_target, lq.shape[0], "ipr_target")
        ipr, _ = self.diffusion(lq_p, ipr_target, generator)
        return crop_to(self.G(lq_p, ipr), size, self.scale), ipr
