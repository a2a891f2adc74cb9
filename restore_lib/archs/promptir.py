"""PromptIR (Potlapalli et al., NeurIPS 2023): all-in-one blind restoration by
prompting a Restormer U-Net. Written from the paper and checked against the
reference implementation (va1shn9v/PromptIR @106159ab8091, ``net/model.py``)
so that parameter names, shapes and counts match its released Lightning
checkpoints.

Upstream licence: "Academic Public License" (non-commercial); see LICENSES/.

The backbone is Restormer's (blocks imported from :mod:`.restormer`). PromptIR
adds, at the three decoder levels, a *prompt generation block* and a *prompt
interaction block*:

* **Prompt generation** (:class:`PromptGenBlock`). A learnable bank of
  ``L = prompt_len`` prompt maps ``P_l`` (each ``C_p x S x S``) is mixed with
  weights predicted from the features ``F``::

      w = softmax(W · GAP(F) + b)             (one weight per prompt, per image)
      P = conv3x3( resize_bilinear( sum_l w_l P_l , size(F) ) )

  The bank is stored at a fixed size ``S`` and bilinearly resized to the
  feature map, so any input size works.
* **Prompt interaction**: concatenate ``[F, P]``, run one transformer block on
  the ``C + C_p`` channels (``noise_level*``), then a 1x1 conv back down
  (``reduce_noise_level*``).

These are applied to the latent (level 4, ``prompt3``), to the output of
decoder level 3 (``prompt2``) and of decoder level 2 (``prompt1``). The
reference sizes them 320/128/64 channels at 16/32/64 pixels, matched to 128x128
training crops (features at 1/8, 1/4, 1/2 resolution).

Reference quirks we keep or document
------------------------------------
* **The defaults here are the reference's ``decoder=True``**, the configuration
  its ``train.py``/``test.py``/``demo.py`` instantiate. The reference class
  defaults to ``decoder=False``, which cannot run (``up4_3`` expects ``4*dim``
  channels and receives ``8*dim``). Our ``decoder=False`` is instead a
  prompt-free ablation: the prompt and interaction blocks are not built and
  level 3 is entered as in Restormer (``Upsample(8*dim)``, 1x1 conv
  ``8*dim -> 4*dim``), so it equals Restormer plus the unused tensors below.
* **Six unused tensors.** The reference builds ``chnl_reduce1/2/3`` and
  ``reduce_noise_channel_1/2/3`` but never calls them. They are kept (sizes
  from ``legacy_dims``) so that reference checkpoints load strictly; they get
  no gradient. Default config: 35,592,263 parameters, of which 215,296 are in
  these dead tensors, so **35,376,967 are effective**; 548 state_dict keys.
  ``legacy_dims=None`` drops them.
* The interaction blocks use ``heads[2]`` at all three levels, as in the
  reference.
* The reference needs H, W multiples of 8 and does not pad; ``forward`` here
  reflect-pads to a multiple of 8 (as the reference ``demo.py`` tiler does)
  and crops back.

Checkpoints: the reference saves Lightning ``.ckpt`` files whose
``state_dict`` keys carry a ``net.`` prefix; ``restore_lib.models.
load_checkpoint`` unwraps and strips it.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._common import crop_to, pad_to_multiple
from .restormer import Downsample, OverlapPatchEmbed, TransformerBlock, Upsample, make_level

__all__ = ["PromptGenBlock", "PromptIR"]


class PromptGenBlock(nn.Module):
    """Prompt generation: an input-conditioned convex mix of ``prompt_len``
    learnable prompt maps, resized to the features and passed through a 3x3
    conv.

    Args:
        prompt_dim: channels ``C_p`` of each prompt map.
        prompt_len: number ``L`` of prompt maps in the bank.
        prompt_size: stored spatial size ``S`` of the maps (resized bilinearly
            to the feature size at run time).
        lin_dim: channels of the features that choose the mixing weights.
    """

    def __init__(self, prompt_dim: int = 128, prompt_len: int = 5, prompt_size: int = 96, lin_dim: int = 192):
        super().__init__()
        # The reference initialises the bank uniformly in [0, 1) (torch.rand).
        self.prompt_param = nn.Parameter(torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.linear_layer = nn.Linear(lin_dim, prompt_len)
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        weights = F.softmax(self.linear_layer(x.mean(dim=(-2, -1))), dim=1)  # (B, L)
        bank = self.prompt_param[0]  # (L, C_p, S, S)
        prompt = (weights @ bank.flatten(1)).view(b, *bank.shape[1:])  # sum_l w_l P_l
        prompt = F.interpolate(prompt, size=(h, w), mode="bilinear", align_corners=False)
        return self.conv3x3(prompt)


class PromptIR(nn.Module):
    """PromptIR. Defaults = the reference ``PromptIR(decoder=True)``
    (35,592,263 parameters, 215,296 of them dead; see the module docstring).

    Inputs in [0, 1], any size: reflect-padded to a multiple of 8, cropped
    back. Output = input + predicted residual (not clamped).

    Presets: ``default`` (reference), ``small`` (CPU profile), ``no_prompt``
    (``decoder=False``: 26,341,940 parameters = Restormer's 26,126,644 + the
    215,296 dead ones).

    Args (beyond Restormer's ``inp_channels``, ``out_channels``, ``dim``,
    ``num_blocks``, ``num_refinement_blocks``, ``heads``,
    ``ffn_expansion_factor``, ``bias``, ``LayerNorm_type``):
        decoder: build and use the prompt blocks (reference ``decoder=True``).
            ``False`` gives the prompt-free ablation described above.
        prompt_dims: channels of ``prompt1/2/3`` (decoder levels 2/3/4).
        prompt_len: prompts per bank.
        prompt_sizes: stored spatial sizes of ``prompt1/2/3``; any size works
            at run time, the reference chose 1/2, 1/4, 1/8 of 128.
        legacy_dims: output widths of the unused ``chnl_reduce1/2/3`` (whose
            inputs are ``prompt_dims``) and extra input widths of
            ``reduce_noise_channel_1/2/3``; ``None`` omits the six tensors.
    """

    scale = 1
    size_multiple = 8
    PRESETS = {
        "default": {},
        # CPU profile (1.72 M params, about 1 CPU-second per batch of 8 64x64
        # crops on one core): prompt widths a quarter of the reference's,
        # prompt sizes matched to 64x64 crops as the reference's to 128x128.
        "small": {"dim": 16, "num_blocks": [1, 1, 1, 2], "num_refinement_blocks": 1, "heads": [1, 1, 2, 2],
                  "prompt_dims": [16, 32, 80], "prompt_sizes": [32, 16, 8], "legacy_dims": [16, 32, 64]},
        "no_prompt": {"decoder": False},
    }

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66, bias: bool = False,
                 LayerNorm_type: str = "WithBias", decoder: bool = True,
                 prompt_dims: Sequence[int] = (64, 128, 320), prompt_len: int = 5,
                 prompt_sizes: Sequence[int] = (64, 32, 16),
                 legacy_dims: Sequence[int] | None = (64, 128, 256)):
        super().__init__()
        _check_lengths(num_blocks=(num_blocks, 4), heads=(heads, 4), prompt_dims=(prompt_dims, 3),
                       prompt_sizes=(prompt_sizes, 3), legacy_dims=(legacy_dims, 3))
        ffn, ln = ffn_expansion_factor, LayerNorm_type
        d1, d2, d3, d4 = dim, dim * 2, dim * 4, dim * 8
        p1, p2, p3 = prompt_dims
        self.decoder = decoder

        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        if decoder:
            self.prompt1 = PromptGenBlock(p1, prompt_len, prompt_sizes[0], lin_dim=d2)
            self.prompt2 = PromptGenBlock(p2, prompt_len, prompt_sizes[1], lin_dim=d3)
            self.prompt3 = PromptGenBlock(p3, prompt_len, prompt_sizes[2], lin_dim=d4)
        if legacy_dims is not None:  # built but never called by the reference
            e1, e2, e3 = legacy_dims
            self.chnl_reduce1 = nn.Conv2d(p1, e1, kernel_size=1, bias=bias)
            self.chnl_reduce2 = nn.Conv2d(p2, e2, kernel_size=1, bias=bias)
            self.chnl_reduce3 = nn.Conv2d(p3, e3, kernel_size=1, bias=bias)
            self.reduce_noise_channel_1 = nn.Conv2d(d1 + e1, d1, kernel_size=1, bias=bias)
        self.encoder_level1 = make_level(num_blocks[0], d1, heads[0], ffn, bias, ln)
        self.down1_2 = Downsample(d1)
        if legacy_dims is not None:
            self.reduce_noise_channel_2 = nn.Conv2d(d2 + e2, d2, kernel_size=1, bias=bias)
        self.encoder_level2 = make_level(num_blocks[1], d2, heads[1], ffn, bias, ln)
        self.down2_3 = Downsample(d2)
        if legacy_dims is not None:
            self.reduce_noise_channel_3 = nn.Conv2d(d3 + e3, d3, kernel_size=1, bias=bias)
        self.encoder_level3 = make_level(num_blocks[2], d3, heads[2], ffn, bias, ln)
        self.down3_4 = Downsample(d3)
        self.latent = make_level(num_blocks[3], d4, heads[3], ffn, bias, ln)

        # Level 3. With prompts the latent is reduced to d3 before upsampling.
        self.up4_3 = Upsample(d3 if decoder else d4)
        self.reduce_chan_level3 = nn.Conv2d(d2 + d3 if decoder else d4, d3, kernel_size=1, bias=bias)
        if decoder:
            self.noise_level3 = TransformerBlock(d4 + p3, heads[2], ffn, bias, ln)
            self.reduce_noise_level3 = nn.Conv2d(d4 + p3, d3, kernel_size=1, bias=bias)
        self.decoder_level3 = make_level(num_blocks[2], d3, heads[2], ffn, bias, ln)

        # Level 2.
        self.up3_2 = Upsample(d3)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, kernel_size=1, bias=bias)
        if decoder:
            self.noise_level2 = TransformerBlock(d3 + p2, heads[2], ffn, bias, ln)
            self.reduce_noise_level2 = nn.Conv2d(d3 + p2, d3, kernel_size=1, bias=bias)
        self.decoder_level2 = make_level(num_blocks[1], d2, heads[1], ffn, bias, ln)

        # Level 1 keeps 2*dim channels after the concat (no 1x1 reduction).
        self.up2_1 = Upsample(d2)
        if decoder:
            self.noise_level1 = TransformerBlock(d2 + p1, heads[2], ffn, bias, ln)
            self.reduce_noise_level1 = nn.Conv2d(d2 + p1, d2, kernel_size=1, bias=bias)
        self.decoder_level1 = make_level(num_blocks[0], d2, heads[0], ffn, bias, ln)
        self.refinement = make_level(num_refinement_blocks, d2, heads[0], ffn, bias, ln)
        self.output = nn.Conv2d(d2, out_channels, kernel_size=3, padding=1, bias=bias)

    @staticmethod
    def _prompted(feat: torch.Tensor, gen: PromptGenBlock, block: nn.Module, reduce: nn.Conv2d) -> torch.Tensor:
        """Prompt interaction: 1x1 conv of a transformer block on [F, prompt(F)]."""
        return reduce(block(torch.cat([feat, gen(feat)], 1)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The network on a tensor whose size is already a multiple of 8."""
        enc1 = self.encoder_level1(self.patch_embed(x))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        lat = self.latent(self.down3_4(enc3))
        if self.decoder:
            lat = self._prompted(lat, self.prompt3, self.noise_level3, self.reduce_noise_level3)

        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), enc3], 1)))
        if self.decoder:
            dec3 = self._prompted(dec3, self.prompt2, self.noise_level2, self.reduce_noise_level2)

        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)))
        if self.decoder:
            dec2 = self._prompted(dec2, self.prompt1, self.noise_level1, self.reduce_noise_level1)

        dec1 = self.refinement(self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1)))
        return self.output(dec1) + x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp, size = pad_to_multiple(x, self.size_multiple)
        return crop_to(self.forward_features(xp), size)


def _check_lengths(**items) -> None:
    """Raise a ValueError naming any config list of the wrong length."""
    for name, (value, n) in items.items():
        if value is not None and len(value) != n:
            raise ValueError(f"PromptIR: {name} must have {n} entries, got {list(value)!r}")
