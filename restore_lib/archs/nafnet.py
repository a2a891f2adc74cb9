"""NAFNet and its Baseline (Chen, Chu, Zhang and Sun, "Simple Baselines for
Image Restoration", ECCV 2022).

Written from the paper and checked against the reference implementation
(megvii-research/NAFNet, ``basicsr/models/archs/NAFNet_arch.py``,
``Baseline_arch.py`` and ``local_arch.py``) so that parameter names, counts
and outputs match the released checkpoints (``{'params': state_dict}``).
Upstream licence: MIT; see LICENSES/.

Architecture
------------
A single-stage U-Net: a 3x3 ``intro`` conv to ``width`` channels, one
``nn.Sequential`` of blocks per encoder level followed by a stride-2 2x2 conv
(``downs``) that doubles the channels, ``middle_blks`` at the bottom, and per
decoder level a 1x1 conv + PixelShuffle(2) (``ups``) whose output is *added*
to the encoder skip before that level's blocks. A 3x3 ``ending`` conv maps
back to RGB and the input is added (global residual).

Every block has two residual branches with learnable per-channel scales
``beta`` and ``gamma`` (initialised to 0, so each block starts as the
identity)::

    y   = x + beta  * conv3(att(gate(dwconv3x3(conv1(LN(x))))))
    out = y + gamma * conv5(gate(conv4(LN(y))))

The two block families differ only in ``gate`` and ``att``:

* NAFNet ("nonlinear activation free"): ``gate`` = SimpleGate, which splits
  the channels in two halves and returns their product ``a * b``;
  ``att`` = Simplified Channel Attention, ``x * W pool(x)`` (a global
  average pool followed by one 1x1 conv, no ReLU/Sigmoid).
* Baseline: ``gate`` = GELU; ``att`` = squeeze-and-excitation channel
  attention ``x * sigmoid(W2 relu(W1 pool(x)))`` with a 2x channel
  reduction.

Both are switches of one block (``gate='simple'|'gelu'``,
``attention='sca'|'ca'``), so every arm of the paper's ablation can be built
(the report quotes +0.41 dB on GoPro for SimpleGate and +0.09 dB for SCA):

=======================  ===============================================================
arm                      build
=======================  ===============================================================
Baseline: GELU + CA      ``build_model("nafnet_baseline")``
SimpleGate + CA          ``build_model("nafnet_baseline", gate="simple", dw_expand=2)``
GELU + SCA               ``build_model("nafnet", gate="gelu", dw_expand=1)``
NAFNet: SimpleGate + SCA ``build_model("nafnet")``
=======================  ===============================================================

``dw_expand`` is the channel expansion of the first 1x1 conv. SimpleGate
halves the channels, so NAFNet uses 2 (the gate brings 2c back to c) and
the GoPro-width32 Baseline uses 1 (the Baseline-width64 configs use 2).
The registry names are the reference classes: ``nafnet`` = ``NAFNet``
(SimpleGate + SCA), ``nafnet_baseline`` = ``Baseline`` (GELU + CA).

State-dict keys are the reference's: ``intro.weight``,
``encoders.0.0.norm1.weight``, ``encoders.0.0.sca.1.weight`` (NAFNet) or
``encoders.0.0.se.1.weight`` / ``se.3.weight`` (Baseline), ``downs.3.bias``,
``ups.0.0.weight``, ``ending.bias``. The activation modules (``sg``/``gelu``)
hold no parameters, so switching ``gate`` never changes the key set.

Input size
----------
Any (N, C, H, W): the input is zero-padded at the bottom/right to a
multiple of ``2 ** len(enc_blk_nums)`` (16 for the reference configs), as the
reference ``check_image_size`` does, and the output is cropped back.

Test-time local statistics (TLSC)
---------------------------------
The pooling in the channel attention is *global* during training on crops.
At test time on full-size images the reference GoPro configs use
``NAFNetLocal``, which replaces each global average pool with a local
average over a window as large, relative to the feature map, as 1.5x the
training crop (Chu et al., "Revisiting Global Statistics Aggregation for
Improving Image Restoration"). The paper's GoPro numbers need it. Here it is
the constructor switch ``tlsc=True`` (or :meth:`NAFNet.set_tlsc` on a trained
model); keys and weights are unchanged. Only the reference's exact path
(``fast_imp=False``) is implemented.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._common import crop_to, pad_to_multiple

__all__ = ["LayerNorm2d", "SimpleGate", "LocalAvgPool2d", "NAFBlock", "NAFNet", "NAFNetBaseline",
           "tlsc_kernel_size"]

GATES = ("simple", "gelu")
ATTENTIONS = ("sca", "ca")


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channel axis of an (N, C, H, W) map.

    For every pixel: ``(x - mean_c) / sqrt(var_c + eps) * weight + bias``,
    with the biased variance and ``eps = 1e-6`` as in the reference. The
    reference wraps this in a hand-written ``autograd.Function``; here the
    fused ``F.layer_norm`` runs on a channels-last view (same maths, values
    equal to ~1e-6, about 2x faster on CPU than separate tensor operations)
    and autograd gives the gradient.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class SimpleGate(nn.Module):
    """Split the channels into two halves ``a, b`` and return ``a * b``.

    A gated linear unit with both branches the identity and no sigmoid: the
    product alone supplies the nonlinearity.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


def _box_mean(x: torch.Tensor, k1: int, k2: int) -> torch.Tensor:
    """Mean over every k1 x k2 window (stride 1, no padding), computed from an
    integral image: ``S[i+k1, j+k2] - S[i, j+k2] - S[i+k1, j] + S[i, j]``.
    Cost is linear in the image size whatever the window. Half-precision
    inputs are summed in float32: the running sums overflow float16 (max
    65504) on full-size images."""
    acc = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    s = F.pad(acc.cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    total = s[..., k1:, k2:] + s[..., :-k1, :-k2] - s[..., :-k1, k2:] - s[..., k1:, :-k2]
    return (total / (k1 * k2)).to(x.dtype)


class LocalAvgPool2d(nn.Module):
    """Test-time local replacement of ``AdaptiveAvgPool2d(1)`` (TLSC).

    If the window ``kernel_size = (kh, kw)`` covers the whole map, this is the
    global average (shape (N, C, 1, 1)), exactly as during training. Otherwise
    every pixel gets the mean of a ``min(kh, H) x min(kw, W)`` window: the
    valid box means are computed and replicate-padded back to (H, W), centred
    (the extra row/column, if odd, goes to the bottom/right), as the
    reference does.
    """

    def __init__(self, kernel_size: tuple[int, int]):
        super().__init__()
        self.kernel_size = (int(kernel_size[0]), int(kernel_size[1]))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        kh, kw = self.kernel_size
        if kh >= h and kw >= w:
            return F.adaptive_avg_pool2d(x, 1)
        k1, k2 = min(h, kh), min(w, kw)
        out = _box_mean(x, k1, k2)
        dh, dw = h - out.shape[-2], w - out.shape[-1]
        return F.pad(out, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="replicate")


def tlsc_kernel_size(level: int, train_size: tuple[int, int], size_multiple: int) -> tuple[int, int]:
    """The local pooling window of a block at U-Net ``level`` (0 = full size).

    The reference feeds one training-size image through the network and, at
    each pool, sets ``kernel = feature_size * int(1.5 * train) // train``,
    i.e. 1.5x the feature map seen in training (the training image padded to
    ``size_multiple`` first, then halved ``level`` times).
    """
    kernel = []
    for t in train_size:
        padded = -(-t // size_multiple) * size_multiple
        feat = padded >> level
        kernel.append(feat * int(t * 1.5) // t)
    return kernel[0], kernel[1]


class NAFBlock(nn.Module):
    """One NAFNet block, or one Baseline block (see the module docstring).

    ``c``: channels; ``dw_expand``: expansion of the first branch
    (conv1/depthwise conv); ``ffn_expand``: expansion of the feed-forward
    branch; ``gate``: ``'simple'`` (SimpleGate, halves the channels) or
    ``'gelu'``; ``attention``: ``'sca'`` (key ``sca``) or ``'ca'`` (key ``se``).
    """

    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2, drop_out_rate: float = 0.0,
                 gate: str = "simple", attention: str = "sca"):
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"NAFBlock: gate must be one of {GATES}, got {gate!r}")
        if attention not in ATTENTIONS:
            raise ValueError(f"NAFBlock: attention must be one of {ATTENTIONS}, got {attention!r}")
        dw, ffn = c * dw_expand, c * ffn_expand
        if gate == "simple" and (dw % 2 or ffn % 2):
            raise ValueError(f"NAFBlock: SimpleGate needs an even channel count, got c*dw_expand={dw}, "
                             f"c*ffn_expand={ffn}")
        shrink = 2 if gate == "simple" else 1
        att_c = dw // shrink  # channels after the gate, where attention acts

        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(att_c, c, 1)
        if attention == "sca":
            self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(att_c, att_c, 1))
        else:
            self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(att_c, att_c // 2, 1), nn.ReLU(inplace=True),
                                    nn.Conv2d(att_c // 2, att_c, 1), nn.Sigmoid())
        if gate == "simple":
            self.sg = SimpleGate()
        else:
            self.gelu = nn.GELU()
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // shrink, c, 1)

        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.dropout1 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.dropout2 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gate_kind, self.attention_kind = gate, attention

    @property
    def _gate(self) -> nn.Module:
        return self.sg if self.gate_kind == "simple" else self.gelu

    @property
    def _attention(self) -> nn.Sequential:
        return self.sca if self.attention_kind == "sca" else self.se

    def set_pool(self, pool: nn.Module) -> None:
        """Replace the attention's pooling layer (index 0, no parameters)."""
        self._attention[0] = pool

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self._gate(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self._attention(x))
        y = inp + self.dropout1(x) * self.beta
        x = self.conv5(self._gate(self.conv4(self.norm2(y))))
        return y + self.dropout2(x) * self.gamma


def _stage(n: int, chan: int, **block_cfg) -> nn.Sequential:
    return nn.Sequential(*[NAFBlock(chan, **block_cfg) for _ in range(n)])


def _presets(**width64) -> dict[str, dict]:
    """The named configurations shared by NAFNet and the Baseline; ``width64``
    holds what the width-64 configs add (the Baseline's ``dw_expand=2``)."""
    return {
        "default": {},
        "width64": {"width": 64, **width64},
        "sidd_width32": {"enc_blk_nums": (2, 2, 4, 8), "middle_blk_num": 12, "dec_blk_nums": (2, 2, 2, 2)},
        "sidd_width64": {"width": 64, **width64, "enc_blk_nums": (2, 2, 4, 8), "middle_blk_num": 12,
                         "dec_blk_nums": (2, 2, 2, 2)},
        # CPU profile: 4 levels, one block each
        "small": {"width": 16, "enc_blk_nums": (1, 1, 1, 1), "middle_blk_num": 1, "dec_blk_nums": (1, 1, 1, 1)},
    }


class NAFNet(nn.Module):
    """NAFNet U-Net (reference ``NAFNet``; ``tlsc=True`` gives ``NAFNetLocal``).

    Defaults are the GoPro width-32 config (17,111,907 parameters, 664 keys).
    ``train_size`` is (H, W) of the training crops, or the reference's
    ``(N, C, H, W)``; it only matters with ``tlsc=True``.
    """

    scale = 1
    size_multiple = 16
    PRESETS = _presets()

    def __init__(self, img_channel: int = 3, width: int = 32, middle_blk_num: int = 1,
                 enc_blk_nums: Sequence[int] = (1, 1, 1, 28), dec_blk_nums: Sequence[int] = (1, 1, 1, 1),
                 dw_expand: int = 2, ffn_expand: int = 2, gate: str = "simple", attention: str = "sca",
                 drop_out_rate: float = 0.0, tlsc: bool = False,
                 train_size: Sequence[int] = (256, 256)):
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError(f"NAFNet: enc_blk_nums {list(enc_blk_nums)} and dec_blk_nums {list(dec_blk_nums)} "
                             "must have the same length (one decoder level per encoder level)")
        cfg = dict(dw_expand=dw_expand, ffn_expand=ffn_expand, drop_out_rate=drop_out_rate, gate=gate,
                   attention=attention)
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        # registration order = the reference's, so state_dict keys come in the same order
        self.encoders, self.decoders = nn.ModuleList(), nn.ModuleList()
        self.middle_blks = nn.Sequential()
        self.ups, self.downs = nn.ModuleList(), nn.ModuleList()

        chan = width
        for n in enc_blk_nums:
            self.encoders.append(_stage(n, chan, **cfg))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            chan *= 2
        self.middle_blks = _stage(middle_blk_num, chan, **cfg)
        for n in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, 2 * chan, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(_stage(n, chan, **cfg))

        self.size_multiple = 2 ** len(enc_blk_nums)
        self.tlsc = False
        self.train_size: tuple[int, int] | None = None
        if tlsc:
            self.set_tlsc(True, train_size)

    def _blocks_by_level(self):
        """(level, block) for every block; level 0 = full resolution."""
        n = len(self.encoders)
        for level, stage in enumerate(self.encoders):
            for block in stage:
                yield level, block
        for block in self.middle_blks:
            yield n, block
        for i, stage in enumerate(self.decoders):
            for block in stage:
                yield n - 1 - i, block

    def set_tlsc(self, enabled: bool, train_size: Sequence[int] = (256, 256)) -> None:
        """Switch every attention pool between global average pooling
        (``enabled=False``, training) and TLSC local pooling derived from
        ``train_size`` (``enabled=True``). Weights are untouched."""
        if enabled:
            size = tuple(int(s) for s in train_size)
            if len(size) == 4:
                size = size[2:]
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"NAFNet.set_tlsc: train_size must be (H, W) or (N, C, H, W), got {train_size!r}")
            self.train_size = size
        else:
            self.train_size = None
        self.tlsc = bool(enabled)
        for level, block in self._blocks_by_level():
            if enabled:
                block.set_pool(LocalAvgPool2d(tlsc_kernel_size(level, self.train_size, self.size_multiple)))
            else:
                block.set_pool(nn.AdaptiveAvgPool2d(1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x0, size = pad_to_multiple(inp, self.size_multiple, mode="constant")
        x = self.intro(x0)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        return crop_to(self.ending(x) + x0, size)


class NAFNetBaseline(NAFNet):
    """The paper's Baseline (reference ``Baseline``; ``tlsc=True`` gives
    ``BaselineLocal``): GELU + squeeze-and-excitation channel attention.

    Defaults are the GoPro width-32 config (``dw_expand=1``): 17,023,875
    parameters, 736 keys. The width-64 configs use ``dw_expand=2``.
    """

    PRESETS = _presets(dw_expand=2)

    def __init__(self, *, dw_expand: int = 1, gate: str = "gelu", attention: str = "ca", **config):
        """Only the Baseline's own defaults differ; every other keyword is :class:`NAFNet`'s."""
        super().__init__(dw_expand=dw_expand, gate=gate, attention=attention, **config)
