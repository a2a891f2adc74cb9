"""Stripformer (Tsai et al., "Stripformer: Strip Transformer for Fast Image
Deblurring", ECCV 2022).

Written from the paper and checked against the reference implementation
(pp00704831/Stripformer-ECCV-2022-, ``models/Stripformer.py``) so that the
default configuration has the same parameter count (19,708,611), the same 370
state_dict keys and the same key names: the released checkpoints (raw
state_dicts, possibly with the ``module.`` prefix of ``nn.DataParallel``) load
strictly through :func:`restore_lib.checkpoints.load_checkpoint`.

Upstream licence: MIT-style text restricted to non-commercial use (plus the
DeblurGANv2 BSD licence); see LICENSES/.

Architecture (B = batch, C = channels, H x W = spatial size)
------------------------------------------------------------
* **Feature embedding blocks** (``encoder``): a 3x3 conv to ``c1`` channels,
  ``res_blocks`` residual blocks ``act(x + conv(act(conv(x))))``, a stride-2
  conv to ``c2``, ``res_blocks`` more residual blocks, and a stride-2 conv to
  ``c3``: the transformer works on 1/4 of the input resolution. All
  activations are LeakyReLU(0.2).
* **Strip transformer blocks** (``Trans_block_1`` ... at 1/4 scale,
  ``decoder.de_block_1`` ... at 1/2 scale), alternating intra- and
  inter-strip blocks. Each block computes

      Y = Conv1x1(LN(X));  (Y_h, Y_v) = channel halves of Y
      X = X + Conv1x1([A_h(Y_h), A_v(Y_v)])          (attention, fused)
      X = X + MLP(LN(X))                             (per pixel, GELU, ratio 4)
      X = X + DWConv3x3(X)                           (conditional position enc.)

  where LN normalises each pixel's channel vector. The two strip attentions
  differ only in what a token is:

  - **Intra-SA** (inside a strip): the horizontal branch treats every row as
    a sequence of W pixel tokens of C/2 channels (the vertical branch: every
    column as H tokens). A linear layer maps a token to q, k, v; with M heads
    each head sees d = C/(2M) channels, and the attention
    ``softmax(q k^T / sqrt(d)) v`` runs over the W (or H) tokens of one strip.
    All B*H strips and M heads are one batched call.
  - **Inter-SA** (between strips): a 1x1 conv gives q, k, v; a whole row is
    one token (features = its d channels x W pixels of one head), so the
    attention ``softmax(q k^T / sqrt(d W)) v`` is H x H (columns: W x W,
    scale ``1/sqrt(d H)``). Heads are contiguous channel groups, as in the
    reference, which flattens each strip channel-major.

  Every attention call goes through :func:`restore_lib.archs._common.attention`
  (the fused SDPA kernel or, under ``sdpa_enabled(False)``, the explicit
  softmax(QK^T)V), with the reference's scale passed explicitly.
* **Decoder**: a 4x4 stride-2 transposed conv to ``decoder_dim``, concatenated
  with the encoder's 1/2-scale features and fused by a 1x1 conv, the decoder
  strip blocks, a transposed conv to ``c1``, concatenated with the full-scale
  encoder features, two residual blocks, a 3x3 conv (followed by LeakyReLU,
  as in the reference), and a residual connection to the blurred input.

Input range
-----------
The reference network works on images in [-0.5, 0.5] (its predict scripts feed
``img/255 - 0.5`` and add 0.5 back). :meth:`Stripformer.forward` takes [0, 1]
images of any size, reflect-pads them to a multiple of 4, subtracts 0.5, runs
the network, adds 0.5 and crops back; the output is not clamped.
:meth:`Stripformer.forward_raw` is the bare reference computation.

Presets
-------
``default`` is the reference. ``small`` (285,219 parameters: widths
16/32/64, 4 + 2 strip blocks of 2 heads, MLP ratio 2, one residual block per
embedding level) is the CPU profile. On 64x64 crops of synthetic
Gaussian-blurred (sigma 1.5) images, batch 8, Adam 1e-3, one CPU thread, it
ran about 870 steps in 4 minutes and raised validation PSNR from 24.63 dB
(the blurred input) to 25.81 dB; the first ~500 steps stay close to the
identity, because the strip blocks start with much larger activations than
the skip features (as in the reference).

Initialisation switch
---------------------
``block_init="reference"`` (the default) keeps the reference initialisation.
``block_init="identity"`` is an optional training aid that is *not* in the
reference: it zero-initialises the last projection of every branch of every
strip block (``fuse_out`` after the attention, ``ffn.fc2`` of the MLP and the
depth-wise ``PEG`` conv), so each block starts as the identity map and the
network starts as the plain conv encoder-decoder (a ReZero / zero-init
residual trick). Parameter count and state_dict keys are unchanged; only the
starting values differ, and every one of those tensors still receives
gradients from the first step on. Measured on the ``small`` preset, it
removes the slow start described above (see notebooks/02_stripformer_deblur).

Strip layouts
-------------
:func:`to_horizontal_strips` / :func:`from_horizontal_strips` (and the
vertical pair) spell out the token layout of the intra-strip attention as
pure functions: a (B, C, H, W) map becomes B*H horizontal strips, each a
sequence of W tokens, split into M heads of C/M channels, i.e. a
(B*H, M, W, C/M) tensor; columns give (B*W, M, H, C/M). The blocks use a
copy-free equivalent of the same layout (tested).

There is no ``report_14_96m`` preset: the course report's 14.96 M-parameter
"modified version" is not described well enough to pin one configuration down
(:data:`restore_lib.recipes.stripformer.PARAMETER_COUNT_NOTE` has the counts).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._common import attention, crop_to, pad_to_multiple

__all__ = ["Stripformer", "IntraStripBlock", "InterStripBlock", "BLOCK_INITS", "to_horizontal_strips",
           "from_horizontal_strips", "to_vertical_strips", "from_vertical_strips"]

_LEAK = 0.2

#: accepted values of ``Stripformer(block_init=...)``
BLOCK_INITS = ("reference", "identity")


def to_horizontal_strips(x: torch.Tensor, num_heads: int = 1) -> torch.Tensor:
    """(B, C, H, W) -> (B*H, M, W, C/M): every row of every image is a strip
    of W pixel tokens; head j holds channels j*C/M .. (j+1)*C/M - 1."""
    b, c, h, w = x.shape
    if num_heads < 1 or c % num_heads:
        raise ValueError(f"to_horizontal_strips: {c} channels cannot be split into num_heads={num_heads} heads")
    d = c // num_heads
    return x.reshape(b, num_heads, d, h, w).permute(0, 3, 1, 4, 2).reshape(b * h, num_heads, w, d)


def from_horizontal_strips(t: torch.Tensor, batch: int) -> torch.Tensor:
    """Inverse of :func:`to_horizontal_strips`: (B*H, M, W, d) -> (B, M*d, H, W)."""
    bh, m, w, d = t.shape
    if bh % batch:
        raise ValueError(f"from_horizontal_strips: {bh} strips are not a multiple of batch={batch}")
    h = bh // batch
    return t.reshape(batch, h, m, w, d).permute(0, 2, 4, 1, 3).reshape(batch, m * d, h, w)


def to_vertical_strips(x: torch.Tensor, num_heads: int = 1) -> torch.Tensor:
    """(B, C, H, W) -> (B*W, M, H, C/M): columns are the strips (the
    horizontal layout of the transposed map)."""
    return to_horizontal_strips(x.transpose(-2, -1), num_heads)


def from_vertical_strips(t: torch.Tensor, batch: int) -> torch.Tensor:
    """Inverse of :func:`to_vertical_strips`: (B*W, M, H, d) -> (B, M*d, H, W)."""
    return from_horizontal_strips(t, batch).transpose(-2, -1)


def _act() -> nn.LeakyReLU:
    return nn.LeakyReLU(_LEAK, inplace=True)


def _res_block(ch: int) -> nn.Sequential:
    """conv3x3 - LeakyReLU - conv3x3 (keys ``.0`` and ``.2``); the caller adds
    the skip and the outer activation."""
    return nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), _act(), nn.Conv2d(ch, ch, 3, padding=1))


def _residual(body: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(body(x) + x, _LEAK)


class FeatureEmbedding(nn.Module):
    """The two feature embedding blocks (reference ``Embeddings``).

    Returns the 1/4-scale embedding and the full- and 1/2-scale features that
    the decoder concatenates back in.
    """

    def __init__(self, in_channels: int, dims: tuple[int, int, int], res_blocks: int):
        super().__init__()
        c1, c2, c3 = dims
        self.res_blocks = res_blocks
        self.en_layer1_1 = nn.Sequential(nn.Conv2d(in_channels, c1, 3, padding=1), _act())
        for i in range(res_blocks):
            self.add_module(f"en_layer1_{i + 2}", _res_block(c1))
        self.en_layer2_1 = nn.Sequential(nn.Conv2d(c1, c2, 3, stride=2, padding=1), _act())
        for i in range(res_blocks):
            self.add_module(f"en_layer2_{i + 2}", _res_block(c2))
        self.en_layer3_1 = nn.Sequential(nn.Conv2d(c2, c3, 3, stride=2, padding=1), _act())

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        x = getattr(self, f"en_layer{level}_1")(x)
        for i in range(self.res_blocks):
            x = _residual(getattr(self, f"en_layer{level}_{i + 2}"), x)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        full = self._level(1, x)
        half = self._level(2, full)
        return self.en_layer3_1(half), full, half


class Mlp(nn.Module):
    """Per-token feed-forward ``fc2(GELU(fc1(x)))`` on channel-last tensors."""

    def __init__(self, dim: int, ratio: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(dim, ratio * dim)
        self.fc2 = nn.Linear(ratio * dim, dim)
        for fc in (self.fc1, self.fc2):  # the reference's initialisation
            nn.init.xavier_uniform_(fc.weight)
            nn.init.normal_(fc.bias, std=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class PEG(nn.Module):
    """Conditional position encoding: ``x + DWConv3x3(x)``."""

    def __init__(self, dim: int):
        super().__init__()
        self.PEG = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.PEG(x) + x


def _channel_last(fn, x: torch.Tensor) -> torch.Tensor:
    """Apply a per-pixel module (LayerNorm, Linear) to the channels of an
    (N,C,H,W) map; permuted views, no copies."""
    return fn(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _StripBlock(nn.Module):
    """Shared skeleton of the intra- and inter-strip blocks (see the module
    docstring); subclasses define the two attention branches."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int):
        super().__init__()
        if num_heads < 1 or dim % 2 or (dim // 2) % num_heads:
            raise ValueError(f"{type(self).__name__}: dim={dim} must be even and dim/2 divisible by "
                             f"num_heads={num_heads}")
        self.dim, self.num_heads, self.mlp_ratio = dim, num_heads, mlp_ratio

    def _build_common(self, fuse_first: bool) -> None:
        # registration order = the reference's state_dict order
        if fuse_first:
            self.fuse_out = nn.Conv2d(self.dim, self.dim, 1)
        self.ffn_norm = nn.LayerNorm(self.dim)
        self.ffn = Mlp(self.dim, self.mlp_ratio)
        if not fuse_first:
            self.fuse_out = nn.Conv2d(self.dim, self.dim, 1)
        self.PEG = PEG(self.dim)

    def horizontal(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def vertical(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y_h, y_v = self.conv_input(_channel_last(self.attention_norm, x)).chunk(2, dim=1)
        x = x + self.fuse_out(torch.cat((self.horizontal(y_h), self.vertical(y_v)), dim=1))
        t = x.permute(0, 2, 3, 1)
        t = t + self.ffn(self.ffn_norm(t))
        return self.PEG(t.permute(0, 3, 1, 2))


class IntraStripBlock(_StripBlock):
    """Intra-SA block (reference ``Intra_SA``): attention among the pixels of
    each row (horizontal half of the channels) and of each column (vertical
    half), per head over d = dim/(2*heads) channels."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = 4):
        super().__init__(dim, num_heads, mlp_ratio)
        half = dim // 2
        self.attention_norm = nn.LayerNorm(dim)
        self.conv_input = nn.Conv2d(dim, dim, 1)
        self.qkv_local_h = nn.Linear(half, 3 * half)
        self.qkv_local_v = nn.Linear(half, 3 * half)
        self._build_common(fuse_first=True)

    def _strips(self, proj: nn.Linear, strips: torch.Tensor) -> torch.Tensor:
        """strips (N, S, L, c): N images, S strips of L pixel tokens each.
        Returns the attended tokens in the same layout."""
        n, s, length, c = strips.shape
        m = self.num_heads
        d = c // m
        q, k, v = proj(strips).reshape(n * s, length, 3, m, d).permute(2, 0, 3, 1, 4).unbind(0)
        out = attention(q, k, v, scale=d ** -0.5)            # (N*S, M, L, d)
        return out.transpose(1, 2).reshape(n, s, length, c)

    def horizontal(self, x: torch.Tensor) -> torch.Tensor:   # rows: (B, H, W, c)
        return self._strips(self.qkv_local_h, x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def vertical(self, x: torch.Tensor) -> torch.Tensor:     # columns: (B, W, H, c)
        return self._strips(self.qkv_local_v, x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)


class InterStripBlock(_StripBlock):
    """Inter-SA block (reference ``Inter_SA``): attention between whole strips.
    A row token of head j is its channels j*d..(j+1)*d - 1 at all W pixels,
    flattened channel-major (d*W features); columns likewise with d*H."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = 4):
        super().__init__(dim, num_heads, mlp_ratio)
        half = dim // 2
        self.attention_norm = nn.LayerNorm(dim)
        self.conv_input = nn.Conv2d(dim, dim, 1)
        self.conv_h = nn.Conv2d(half, 3 * half, 1)
        self.conv_v = nn.Conv2d(half, 3 * half, 1)
        self._build_common(fuse_first=False)

    def _qkv(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        m = self.num_heads
        return conv(x).reshape(b, 3, m, c // m, h, w)        # (B, qkv, M, d, H, W)

    def _rows(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        """Attention between the H rows of ``x``, one token of d*W features per
        row and head."""
        b, c, h, w = x.shape
        m, d = self.num_heads, c // self.num_heads
        q, k, v = self._qkv(conv, x).permute(1, 0, 2, 4, 3, 5).reshape(3, b, m, h, d * w).unbind(0)
        out = attention(q, k, v, scale=(d * w) ** -0.5)      # (B, M, H, d*W)
        return out.reshape(b, m, h, d, w).permute(0, 1, 3, 2, 4).reshape(b, c, h, w)

    def horizontal(self, x: torch.Tensor) -> torch.Tensor:
        return self._rows(self.conv_h, x)

    def vertical(self, x: torch.Tensor) -> torch.Tensor:   # columns = the rows of the transposed map
        return self._rows(self.conv_v, x.transpose(-2, -1)).transpose(-2, -1)


def _add_strip_blocks(owner: nn.Module, prefix: str, n: int, dim: int, heads: int, mlp_ratio: int) -> list[str]:
    """Register ``prefix1 .. prefixn`` on ``owner``: odd = intra, even = inter."""
    names = []
    for i in range(1, n + 1):
        cls = IntraStripBlock if i % 2 else InterStripBlock
        owner.add_module(f"{prefix}{i}", cls(dim, heads, mlp_ratio))
        names.append(f"{prefix}{i}")
    return names


class Decoder(nn.Module):
    """Reference ``Embeddings_output``: upsample, fuse skips, strip blocks at
    1/2 scale, upsample, two residual blocks, output conv."""

    def __init__(self, out_channels: int, dims: tuple[int, int, int], decoder_dim: int, num_heads: int,
                 num_blocks: int, mlp_ratio: int):
        super().__init__()
        c1, c2, c3 = dims
        self.de_layer3_1 = nn.Sequential(nn.ConvTranspose2d(c3, decoder_dim, 4, stride=2, padding=1), _act())
        self.de_layer2_2 = nn.Sequential(nn.Conv2d(decoder_dim + c2, decoder_dim, 1), _act())
        self.block_names = _add_strip_blocks(self, "de_block_", num_blocks, decoder_dim, num_heads, mlp_ratio)
        self.de_layer2_1 = nn.Sequential(nn.ConvTranspose2d(decoder_dim, c1, 4, stride=2, padding=1), _act())
        self.de_layer1_3 = nn.Sequential(nn.Conv2d(2 * c1, c1, 1), _act(), nn.Conv2d(c1, c1, 3, padding=1))
        self.de_layer1_2 = _res_block(c1)
        self.de_layer1_1 = nn.Sequential(nn.Conv2d(c1, out_channels, 3, padding=1), _act())

    def forward(self, x: torch.Tensor, full: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
        x = self.de_layer2_2(torch.cat((self.de_layer3_1(x), half), dim=1))
        for name in self.block_names:
            x = getattr(self, name)(x)
        x = self.de_layer2_1(x)
        x = F.leaky_relu(self.de_layer1_3(torch.cat((x, full), dim=1)) + x, _LEAK)
        x = _residual(self.de_layer1_2, x)
        return self.de_layer1_1(x)


class Stripformer(nn.Module):
    """Stripformer. Defaults reproduce the reference ``Stripformer()``
    (19,708,611 parameters, 370 keys).

    Args:
        in_channels: image channels (input = output, residual to the input).
        embed_dims: widths (c1, c2, c3) at full, 1/2 and 1/4 resolution.
        num_heads: heads of the 1/4-scale strip blocks.
        num_blocks: number of 1/4-scale strip blocks (intra, inter, intra, ...).
        decoder_dim: width of the 1/2-scale decoder strip blocks.
        decoder_heads: heads of the decoder strip blocks.
        decoder_blocks: number of decoder strip blocks.
        res_blocks: residual blocks per feature-embedding level.
        mlp_ratio: hidden width of the per-pixel MLP, times the block width.
        block_init: ``"reference"`` (default) or ``"identity"``: zero the last
            projection of each strip-block branch so every block starts as the
            identity (an optional training aid, not in the reference; same
            parameters and keys).
    """

    scale = 1
    size_multiple = 4
    PRESETS = {
        "default": {},
        "small": {"embed_dims": (16, 32, 64), "num_heads": 2, "num_blocks": 4, "decoder_dim": 48,
                  "decoder_heads": 2, "decoder_blocks": 2, "res_blocks": 1, "mlp_ratio": 2},
    }

    def __init__(self, in_channels: int = 3, embed_dims=(64, 128, 320), num_heads: int = 5, num_blocks: int = 12,
                 decoder_dim: int = 192, decoder_heads: int = 3, decoder_blocks: int = 6, res_blocks: int = 3,
                 mlp_ratio: int = 4, block_init: str = "reference"):
        super().__init__()
        if block_init not in BLOCK_INITS:
            raise ValueError(f"Stripformer: block_init must be one of {', '.join(BLOCK_INITS)}, got {block_init!r}")
        dims = tuple(int(c) for c in embed_dims)
        if len(dims) != 3:
            raise ValueError(f"Stripformer: embed_dims needs 3 widths (full, 1/2, 1/4 scale), got {embed_dims!r}")
        self.encoder = FeatureEmbedding(in_channels, dims, res_blocks)
        self.block_names = _add_strip_blocks(self, "Trans_block_", num_blocks, dims[2], num_heads, mlp_ratio)
        self.decoder = Decoder(in_channels, dims, decoder_dim, decoder_heads, decoder_blocks, mlp_ratio)
        self.block_init = block_init
        if block_init == "identity":
            for blk in self.modules():
                if isinstance(blk, _StripBlock):
                    for last in (blk.fuse_out, blk.ffn.fc2, blk.PEG.PEG):
                        nn.init.zeros_(last.weight)
                        nn.init.zeros_(last.bias)

    def forward_raw(self, x: torch.Tensor) -> torch.Tensor:
        """The reference network: input in [-0.5, 0.5] with H, W multiples of
        4; returns the deblurred image in the same range."""
        if x.shape[-2] % self.size_multiple or x.shape[-1] % self.size_multiple:
            raise ValueError(f"Stripformer.forward_raw: height and width must be multiples of "
                             f"{self.size_multiple}, got {tuple(x.shape)}; use forward() to pad")
        hx, full, half = self.encoder(x)
        for name in self.block_names:
            hx = getattr(self, name)(hx)
        return self.decoder(hx, full, half) + x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] image of any size -> deblurred [0, 1]-range image (unclamped)."""
        xp, size = pad_to_multiple(x, self.size_multiple, mode="reflect")
        return crop_to(self.forward_raw(xp - 0.5) + 0.5, size)
