"""SwinIR (Liang et al., "SwinIR: Image Restoration Using Swin Transformer",
ICCV Workshops 2021). Written from the paper and checked against the reference
implementation (JingyunLiang/SwinIR ``models/network_swinir.py`` @6545850fbf8d,
Apache-2.0) so that parameter and buffer names, shapes and counts match its
released checkpoints (``params`` / ``params_ema``).

Structure::

    x - mean  ->  conv_first (3x3)                          shallow features F0
    tokens -> patch_embed.norm -> K x RSTB -> norm -> map   deep features
    conv_after_body(deep) + F0                               long skip
    reconstruction: 'pixelshuffle' (classical SR), 'pixelshuffledirect'
    (lightweight SR), 'nearest+conv' (real-world SR) or '' (denoising: x + conv)
    ... + mean

An RSTB (residual Swin Transformer block) is ``depth`` Swin layers, a 3x3 conv
('1conv', or the bottleneck '3conv') and a residual connection. A Swin layer is

    x = x + W-MSA(LN(x))      (windows shifted by window/2 in every odd layer)
    x = x + MLP(LN(x))        (Linear -> GELU -> Linear, hidden = mlp_ratio * C)

Window attention. The (H, W) map is cut into non-overlapping M x M windows
(M = window_size) and, per window and head,

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + B + S) V

where B[i, j] = table[relative_position_index[i, j]] is the learned relative
position bias ((2M-1)^2 entries per head) and S is the shift mask: 0 for token
pairs that came from the same region before the cyclic shift, -100 otherwise
(so attention does not mix pixels that wrapped around the border). All windows
of all images are processed in one batched call of
``restore_lib.archs._common.attention`` with B + S as the additive mask, so the
fused SDPA kernel and the explicit reference path can be compared.

Input range and size. Images in [0, 1] (``img_range=1``); the DIV2K mean
(0.4488, 0.4371, 0.4040) is subtracted and re-added inside (a plain attribute,
not in the state_dict). Any size: reflect-padded bottom/right to a multiple of
``window_size`` and cropped back to scale x input.

Checkpoint trap (``img_size``). As in the reference, each shifted layer keeps
its shift mask for an ``img_size`` x ``img_size`` map as a *persistent* buffer
``...blocks.<odd>.attn_mask`` of shape (nW, M*M, M*M): (36, 64, 64) at
img_size 48, (64, 64, 64) at 64. ``img_size`` changes nothing else: the
network runs on any input size (masks for other sizes are computed on the fly
and cached). Consequences:

* a released checkpoint loads strictly (``load_checkpoint``) only into a model
  built with the same ``img_size`` (48 for the DIV2K classical models, 64 for
  DF2K and lightweight ones); otherwise ``load_checkpoint`` raises
  ``CheckpointError`` listing the ``attn_mask`` shape mismatches;
* :func:`restore_lib.checkpoints.load_swinir_checkpoint` loads such a checkpoint anyway: it checks
  every other tensor strictly and replaces the ``attn_mask`` entries by the
  model's own (they are a deterministic function of img_size, window and
  shift, so nothing learned is lost and outputs are identical).

Deviations from the reference: no absolute position embedding (``ape``), no
gradient checkpointing, no ``patch_size`` (always 1 in SwinIR), fixed
LayerNorm, no attention dropout (every released config uses ``ape=False`` and
``attn_drop_rate=0``), and unknown keyword arguments raise instead of being
swallowed by ``**kwargs``. Inputs smaller than the padding fall back to
replicate padding instead of failing. Initialisation: N(0, 0.02) for linear
weights and bias tables, which is what the reference's ``trunc_normal_`` with
bounds +-2 amounts to.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._common import attention, crop_to, pad_to_multiple

__all__ = ["SwinIR", "shift_window_mask", "paper_param_count", "adapt_attn_masks"]

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "")


# --------------------------------------------------------------------------- windows

def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, ws*ws, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b * (h // ws) * (w // ws), ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, ws*ws, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def _compute_shift_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    # After rolling by -shift, the last `ws` rows/columns mix pixels from up to
    # three bands: [0, H-ws), [H-ws, H-shift), [H-shift, H). Label every pixel
    # by (row band, column band) and forbid attention across labels.
    def bands(n: int) -> torch.Tensor:
        idx = torch.arange(n)
        return (idx >= n - ws).long() + (idx >= n - shift).long()

    label = bands(h)[:, None] * 3 + bands(w)[None, :]  # (H, W) region ids
    win = window_partition(label.view(1, h, w, 1), ws).squeeze(-1)  # (nW, ws*ws)
    return torch.where(win[:, None, :] != win[:, :, None], -100.0, 0.0)


@functools.lru_cache(maxsize=32)
def _cached_shift_mask(h: int, w: int, ws: int, shift: int, device: torch.device) -> torch.Tensor:
    return _compute_shift_mask(h, w, ws, shift).to(device)


def shift_window_mask(h: int, w: int, window_size: int, shift_size: int,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """Shift mask (nW, M*M, M*M) for an (h, w) feature map: 0 where two tokens
    of a shifted window come from the same region, -100 elsewhere (the
    reference's value). Cached per (size, window, shift, device); do not
    modify the returned tensor in place."""
    if h % window_size or w % window_size:
        raise ValueError(f"shift_window_mask: size ({h}, {w}) is not a multiple of window_size {window_size}")
    return _cached_shift_mask(h, w, window_size, shift_size, torch.device(device))


def relative_position_index(ws: int) -> torch.Tensor:
    """(ws*ws, ws*ws) index into the (2ws-1)^2 bias table: for tokens i, j at
    (yi, xi), (yj, xj) it is (yi - yj + ws - 1) * (2ws - 1) + (xi - xj + ws - 1)."""
    ys, xs = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + ws - 1
    dx = xs[:, None] - xs[None, :] + ws - 1
    return dy * (2 * ws - 1) + dx


def _init_normal_002(t: torch.Tensor) -> None:
    """The reference's ``trunc_normal_(t, std=.02)`` truncates at +-2 in absolute
    value, i.e. at 100 standard deviations: the same distribution as a plain
    N(0, 0.02^2), which is much cheaper to sample on a CPU."""
    with torch.no_grad():
        t.normal_(0.0, 0.02)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole residual branch per sample with
    probability p, rescaling the kept ones by 1/(1-p)."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


# --------------------------------------------------------------------------- layers

class Mlp(nn.Module):
    """Linear -> GELU -> Dropout -> Linear -> Dropout."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside M x M windows with a learned relative
    position bias (see the module docstring for the formula)."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"WindowAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        _init_normal_002(self.relative_position_bias_table)

    def position_bias(self) -> torch.Tensor:
        """B as a (heads, N, N) tensor, N = M*M."""
        n = self.window_size ** 2
        return self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B*nW, N, C) windows of B images; mask: (nW, N, N) shift mask or None."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = self.position_bias().to(q.dtype)  # (heads, N, N), broadcast over windows
        if mask is not None:
            nw = mask.shape[0]
            bias = bias + mask.to(q.dtype)[:, None]  # (nW, heads, N, N)
            if bw != nw:  # windows are ordered image-major: repeat the masks per image
                bias = bias.repeat(bw // nw, 1, 1, 1)
        out = attention(q, k, v, scale=self.scale, attn_mask=bias)  # (B*nW, heads, N, d)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(bw, n, c)))


class SwinTransformerBlock(nn.Module):
    """One Swin layer: x + W-MSA(LN(x)) then x + MLP(LN(x)), with a cyclic shift
    of ``shift_size`` (0 or M/2) around the attention."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int, window_size: int = 7,
                 shift_size: int = 0, mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.dim, self.input_resolution, self.num_heads = dim, tuple(input_resolution), num_heads
        self.window_size, self.shift_size = window_size, shift_size
        if min(self.input_resolution) <= window_size:
            # as in the reference: a map no larger than one window is not split or shifted
            self.window_size, self.shift_size = min(self.input_resolution), 0
        if not 0 <= self.shift_size < self.window_size:
            raise ValueError(f"SwinTransformerBlock: shift_size {self.shift_size} must be in [0, window_size)")
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, self.window_size, num_heads, qkv_bias, qk_scale, proj_drop=drop)
        self.drop_path_rate = drop_path
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        mask = None
        if self.shift_size > 0:
            h, w = self.input_resolution
            if h % self.window_size or w % self.window_size:
                raise ValueError(f"SwinIR: img_size {self.input_resolution} must be a multiple of "
                                 f"window_size {self.window_size}")
            # a copy of the cached mask: loading a checkpoint writes into the buffer
            mask = shift_window_mask(h, w, self.window_size, self.shift_size).clone()
        self.register_buffer("attn_mask", mask)  # persistent, sized by img_size (see module docstring)

    def shift_mask(self, x_size: tuple[int, int], device: torch.device) -> torch.Tensor | None:
        """The stored buffer at img_size, otherwise the (cached) mask for x_size."""
        if self.shift_size == 0:
            return None
        if tuple(x_size) == self.input_resolution:
            return self.attn_mask
        return shift_window_mask(x_size[0], x_size[1], self.window_size, self.shift_size, device)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        """x: (B, H*W, C) tokens of an (H, W) map, H and W multiples of the window."""
        h, w = x_size
        b, _, c = x.shape
        ws, shift = self.window_size, self.shift_size
        y = self.norm1(x).view(b, h, w, c)
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
        y = self.attn(window_partition(y, ws), self.shift_mask(x_size, x.device))
        y = window_reverse(y, ws, h, w)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        x = x + drop_path(y.reshape(b, h * w, c), self.drop_path_rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path_rate, self.training)


class BasicLayer(nn.Module):
    """``depth`` Swin layers, alternating plain and shifted windows (keys ``blocks.<i>``)."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float, qkv_bias: bool, qk_scale: float | None, drop: float, drop_path: Sequence[float]):
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, input_resolution, num_heads, window_size,
                                 0 if i % 2 == 0 else window_size // 2, mlp_ratio, qkv_bias, qk_scale,
                                 drop, drop_path[i])
            for i in range(depth)])

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, x_size)
        return x


def _resi_conv(dim: int, resi_connection: str) -> nn.Module:
    """The conv closing an RSTB and the body: 3x3, or the '3conv' bottleneck
    3x3 (C/4) -> LReLU -> 1x1 -> LReLU -> 3x3 (C)."""
    if resi_connection == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if resi_connection == "3conv":
        return nn.Sequential(nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                             nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(0.2, inplace=True),
                             nn.Conv2d(dim // 4, dim, 3, 1, 1))
    raise ValueError(f"SwinIR: resi_connection must be '1conv' or '3conv', got {resi_connection!r}")


def tokens_to_map(x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], x_size[0], x_size[1])


class RSTB(nn.Module):
    """Residual Swin Transformer block: x + conv(map(Swin layers(x)))."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float, qkv_bias: bool, qk_scale: float | None, drop: float,
                 drop_path: Sequence[float], resi_connection: str):
        super().__init__()
        self.residual_group = BasicLayer(dim, input_resolution, depth, num_heads, window_size, mlp_ratio,
                                         qkv_bias, qk_scale, drop, drop_path)
        self.conv = _resi_conv(dim, resi_connection)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        y = self.conv(tokens_to_map(self.residual_group(x, x_size), x_size))
        return y.flatten(2).transpose(1, 2) + x


class PatchEmbed(nn.Module):
    """(B, C, H, W) map -> (B, H*W, C) tokens, then LayerNorm (``patch_norm``).
    Patches are single pixels in SwinIR."""

    def __init__(self, embed_dim: int, patch_norm: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


class Upsample(nn.Sequential):
    """conv to 4C + PixelShuffle(2), repeated log2(scale) times; or one conv to
    9C + PixelShuffle(3) for x3."""

    def __init__(self, scale: int, num_feat: int):
        layers: list[nn.Module] = []
        if scale >= 1 and scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"SwinIR: upscale {scale} is not supported by 'pixelshuffle' (use 2^n or 3)")
        super().__init__(*layers)


class UpsampleOneStep(nn.Sequential):
    """Lightweight reconstruction: one conv straight to out_ch * scale^2, then PixelShuffle(scale)."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int):
        super().__init__(nn.Conv2d(num_feat, scale ** 2 * num_out_ch, 3, 1, 1), nn.PixelShuffle(scale))


# --------------------------------------------------------------------------- model

class SwinIR(nn.Module):
    """SwinIR. Defaults = classical SR x4 (``001_classicalSR_DIV2K_s48w8_SwinIR-M_x4``):
    11,900,199 parameters, 550 state_dict keys. Input (N, in_chans, h, w) in
    [0, 1] of any size; output (N, in_chans, upscale*h, upscale*w).

    ``img_size`` only sizes the persistent shift-mask buffers (see the module
    docstring: checkpoints load strictly only with the ``img_size`` they were
    trained with; :func:`load_swinir_checkpoint` handles the others).
    ``drop_path_rate`` (stochastic depth, linearly increasing over the layers)
    acts in training mode only.
    """

    scale = 4
    size_multiple = 8
    CHECKPOINT_HINT = ("; for SwinIR, attn_mask buffers depend on img_size: load checkpoints trained with another "
                       "img_size via restore_lib.checkpoints.load_swinir_checkpoint")
    PRESETS = {
        "default": {},
        "classical_x2": {"upscale": 2},  # 001_classicalSR_DIV2K_s48w8_SwinIR-M_x2
        # 002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{4,2}
        "lightweight_x4": {"img_size": 64, "depths": [6, 6, 6, 6], "embed_dim": 60, "num_heads": [6, 6, 6, 6],
                           "upsampler": "pixelshuffledirect"},
        "lightweight_x2": {"upscale": 2, "img_size": 64, "depths": [6, 6, 6, 6], "embed_dim": 60,
                           "num_heads": [6, 6, 6, 6], "upsampler": "pixelshuffledirect"},
        "small": {"img_size": 32, "depths": [2, 2], "embed_dim": 32, "num_heads": [2, 2],
                  "upsampler": "pixelshuffledirect"},
    }

    def __init__(self, img_size: int | tuple[int, int] = 48, in_chans: int = 3, embed_dim: int = 180,
                 depths: Sequence[int] = (6, 6, 6, 6, 6, 6), num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
                 window_size: int = 8, mlp_ratio: float = 2.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.1, patch_norm: bool = True, upscale: int = 4,
                 img_range: float = 1.0, upsampler: str = "pixelshuffle", resi_connection: str = "1conv"):
        super().__init__()
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"SwinIR: upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
        if len(depths) != len(num_heads):
            raise ValueError(f"SwinIR: depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        if upsampler == "nearest+conv" and upscale not in (2, 4):
            raise ValueError(f"SwinIR: 'nearest+conv' supports upscale 2 or 4, got {upscale}")
        resolution = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        num_feat = 64
        self.img_range = img_range
        self.mean = torch.tensor(DIV2K_RGB_MEAN if in_chans == 3 else (0.0,) * in_chans).view(1, in_chans, 1, 1)
        self.upsampler = upsampler
        self.window_size = self.size_multiple = window_size
        self.scale = self.upscale = upscale if upsampler else 1

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(len(depths) + 1)]
        self.layers = nn.ModuleList([
            RSTB(embed_dim, resolution, depths[i], num_heads[i], window_size, mlp_ratio, qkv_bias, qk_scale,
                 drop_rate, dpr[starts[i]:starts[i + 1]], resi_connection)
            for i in range(len(depths))])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _resi_conv(embed_dim, resi_connection)

        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            self.upsample = Upsample(upscale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = UpsampleOneStep(upscale, embed_dim, in_chans)
        elif upsampler == "nearest+conv":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            if upscale == 4:
                self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        else:
            self.conv_last = nn.Conv2d(embed_dim, in_chans, 3, 1, 1)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            _init_normal_002(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Deep features of an (N, C, H, W) map, H and W multiples of the window."""
        x_size = (x.shape[2], x.shape[3])
        tokens = self.pos_drop(self.patch_embed(x))
        for layer in self.layers:
            tokens = layer(tokens, x_size)
        return tokens_to_map(self.norm(tokens), x_size)

    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = self.conv_after_body(self.forward_features(feat)) + feat
        if self.upsampler == "pixelshuffle":
            return self.conv_last(self.upsample(self.conv_before_upsample(feat)))
        if self.upsampler == "pixelshuffledirect":
            return self.upsample(feat)
        if self.upsampler == "nearest+conv":
            feat = self.conv_before_upsample(feat)
            feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
            if self.upscale == 4:
                feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
            return self.conv_last(self.lrelu(self.conv_hr(feat)))
        return x + self.conv_last(feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp, size = pad_to_multiple(x, self.window_size)
        mean = self.mean.to(xp)
        out = self._reconstruct((xp - mean) * self.img_range) / self.img_range + mean
        return crop_to(out, size, self.scale)


# --------------------------------------------------------------------------- counting and loading

def paper_param_count(model: SwinIR) -> int:
    """Parameters without the relative-position-bias tables, the convention of
    the paper's lightweight table (897,228 for ``lightweight_x4``, "897K")."""
    return sum(p.numel() for name, p in model.named_parameters()
               if not name.endswith("relative_position_bias_table"))


def adapt_attn_masks(state_dict: dict[str, torch.Tensor], model: SwinIR) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Replace the ``attn_mask`` entries of ``state_dict`` by ``model``'s own
    buffers (dropping masks the model does not have, adding the ones it has).

    Shift masks hold no learned values: they follow from img_size, window and
    shift, so this is exact. Returns the new dict and the replaced key names.
    """
    own = {k: v for k, v in model.state_dict().items() if k.endswith(".attn_mask")}
    out = {k: v for k, v in state_dict.items() if not k.endswith(".attn_mask")}
    replaced = sorted(k for k in set(own) | {k for k in state_dict if k.endswith(".attn_mask")}
                      if k not in own or k not in state_dict or state_dict[k].shape != own[k].shape)
    out.update(own)
    return out, replaced
