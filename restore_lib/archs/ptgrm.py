"""PTG-RM (Xu, Kong, Hu, Liu, Bao, "Boosting Image Restoration via Priors from
Pre-trained Models", CVPR 2024): a small refinement module R that improves the
output of any restoration network F with the features g = G(I_d) of a frozen
pre-trained model G (CLIP in the paper's "-c" rows).

Written from the paper and checked against the reference implementation
(xiaogang00/pretrain_model_boost_restoration, class ``refinement2`` in
``models/archs/low_light_transformer648_final.py``): the default configuration
has the same 77 state_dict keys and 671,735 parameters, and gives the same
outputs as the reference on the same weights. The reference repository ships
no licence; this is an independent re-implementation (see LICENSES/).

Notation (paper -> our attributes, which keep the reference's key names)::

    f      = R_e(Î_c ⊕ I_d)                         r1, r1norm, r2, r2norm, r22
             (conv3x3 -> IN -> LReLU -> conv s2 -> IN -> conv s2: H/4, nf=16)

  PTG-SVE, spatially varying enhancement A(f, g):
    T_m(g) = W2 LReLU(W1 g)        (512 -> 256 -> 4nf)  mapp_space1, mapp_space2
    S_m    = conv1x1 LReLU conv3x3 of a [-1,1]² grid     mapp_position1, mapp_position2
    M      = sigmoid(R_m(f ⊕ T_m(g) ⊕ S_m))              r1_mask, r2_mask
    f_s    = R_s(f)  (a residual CNN block)              resnet
    f_l    = R_l(f)  (num_blocks Restormer blocks)       transformer
    f̂      = M·f_l + (1 − M)·f_s                         (see note 1)

  PTG-CSA, channel-spatial attention C(f̂, g):
    T_c(g), S_c as above                                 mapp_space11/22, mapp_position11/22
    M_c    = sigmoid(R_c(O(f̂) ⊕ T_c(g))), O = avg pool   mapping11, mapping12
    f̂_c    = f̂ · M_c
    C_p    = R_p(f̂ ⊕ T_c(g) ⊕ S_c)  (k·k·nf per pixel)  mapp11, mapp12
    M̂_s    = f̂ * C_p  (per-pixel depthwise k×k conv)      :func:`per_pixel_conv`
    M_s    = sigmoid(R_o(LReLU(M̂_s)))  (nf -> 1)         mapp1
    f̂_s    = f̂ · M_s
    f̄      = R_f(f̂_c ⊕ f̂_s) + f̂                          refine11

  decoder R_d: 2 × (conv -> PixelShuffle(2) -> LReLU), conv, LReLU, conv
                                                         r1_decoder, r2_decoder, conv_last2, conv_last3

Notes on code vs paper (what we implement):

1. The paper writes f̂ = M·f_s + (1−M)·f_l (M weights the CNN branch); the
   reference computes ``transformer(f)·M + resnet(f)·(1−M)``. Since M is a
   free sigmoid output the two are the same family of functions (M_code =
   1 − M_paper); we follow the code so its checkpoints load. For the SNR
   ablation the mask is an SNR map and, as in SNR-aware low-light enhancement,
   high SNR selects the short-range CNN: f̂ = SNR·f_s + (1−SNR)·f_l.
2. Output. The paper: [I_m, I_r] = R_d(f̄) and Ī_c = I_d + (Î_c − I_d)·I_m + I_r.
   The reference: R_d has 3 output channels and returns
   Ī_c = clamp(Î_c, 0, 1) + I_r (no I_m). ``output_mode="code"`` (default)
   is the reference; ``output_mode="paper"`` gives R_d 6 output channels,
   splits them into I_m (channels 0-2, used as is, no activation) and I_r
   (3-5), and returns the paper's formula without clamping (+435 parameters).
3. The reference computes M_s from LReLU(M̂_s) and adds f̂ back after R_f
   (a residual the paper leaves out); we do the same.
4. The reference feeds the prior as given (CLIP's L2-normalised 512-d image
   embedding of the clamped degraded image); the prior width is our
   ``prior_dim`` (e.g. 1280 for MobileNetV2 features, see ``restore_lib.priors``).
5. The reference needs sizes divisible by 4; we reflect-pad Î_c and I_d to a
   multiple of 4 and crop the output back.

Ablation switches (the rows of the paper's ablation table, see
:attr:`PTGRM.ABLATIONS`). The paper does not spell out how each row was built;
our reading, stated so that results can be judged:

* ``sve=False`` (w/o SP): A is removed, f̂ = f (no R_m, R_s, R_l, T_m, S_m).
* ``channel_attention=False`` (w/o CA): M_c ≡ 1, so f̂_c = f̂ (no R_c).
* ``spatial_attention=False`` (w/o SA): M_s ≡ 1, so f̂_s = f̂ (no R_p, R_o, S_c).
  With both off, C is removed: f̄ = f̂.
* ``position_embedding=False`` (w/o S): S_m and S_c are dropped from the inputs.
* ``sve_mask="snr"``: M is the SNR map of I_d (:func:`snr_map`, the SNR-aware
  low-light recipe), resized to the latent (nearest); no R_m, T_m, S_m.
* ``plain_blocks=n``: n pairs (residual CNN block, Restormer block) applied to
  f before A and C. With sve/CA/SA off and ``nf=32`` this is the "large R"
  of comparable size, which never looks at the prior.
* ``prior_concat="1d"``: f ← f + conv3x3(f ⊕ broadcast(T(g))) with
  T = Linear(prior_dim->256) LReLU Linear(256->4nf); ``"2d"``: the prior is a
  (N, prior_dim, h, w) feature map, bilinearly resized to the latent and
  projected by a 1x1 conv to 4nf channels. Used with the plain body.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._common import crop_to, pad_to_multiple
from .restormer import TransformerBlock

__all__ = ["PTGRM", "ResidualBlock_noBN", "per_pixel_conv", "snr_map", "coordinate_grid"]

_SLOPE = 0.1  # LeakyReLU slope used throughout the reference


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, _SLOPE)


class ResidualBlock_noBN(nn.Module):
    """x + conv(ReLU(conv(x))), 3x3 convs with bias, no normalisation."""

    def __init__(self, nf: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def per_pixel_conv(feat: torch.Tensor, kernels: torch.Tensor, ksize: int) -> torch.Tensor:
    """Depthwise convolution with a different k×k kernel at every pixel.

    ``feat`` (N,C,H,W); ``kernels`` (N, C·k·k, H, W), channel-major: entry
    ``c·k·k + i·k + j`` weights ``feat[c]`` at offset (i − k//2, j − k//2).
    Borders are replicate-padded. out[n,c,y,x] = Σ_ij K[n,c,i,j,y,x]·feat[n,c,y+i−p,x+j−p].
    """
    n, c, h, w = feat.shape
    if kernels.shape != (n, c * ksize * ksize, h, w):
        raise ValueError(f"per_pixel_conv: kernels of shape {tuple(kernels.shape)} do not fit features "
                         f"{tuple(feat.shape)} with ksize={ksize}")
    pad = ksize // 2
    patches = F.unfold(F.pad(feat, (pad, pad, pad, pad), mode="replicate"), ksize)  # (N, C·k·k, H·W)
    return (patches.view(n, c, ksize * ksize, h, w) * kernels.view(n, c, ksize * ksize, h, w)).sum(2)


def snr_map(img: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Signal-to-noise map of SNR-aware low-light enhancement (Xu et al., CVPR'22).

    With Y the luma (0.299 R + 0.587 G + 0.114 B) of an [0,1] image and Ȳ its
    5x5 box blur (reflect-101 borders, as ``cv2.blur``): SNR = Ȳ / (|Y − Ȳ| + eps),
    divided by its per-image maximum (+eps) and clamped to [0, 1]. (N,1,H,W).
    """
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"snr_map expects (N,3,H,W) images, got {tuple(img.shape)}")
    luma = (img[:, 0:1] * 0.299 + img[:, 1:2] * 0.587 + img[:, 2:3] * 0.114)
    h, w = luma.shape[-2:]
    mode = "reflect" if min(h, w) > 2 else "replicate"
    blurred = F.avg_pool2d(F.pad(luma, (2, 2, 2, 2), mode=mode), 5, stride=1)
    snr = blurred / ((luma - blurred).abs() + eps)
    peak = snr.flatten(1).amax(1).view(-1, 1, 1, 1)
    return (snr / (peak + eps)).clamp(0.0, 1.0)


def coordinate_grid(n: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) grid on [-1, 1]²: channel 0 the row coordinate, channel 1 the column."""
    rows = torch.linspace(-1, 1, h, device=like.device, dtype=like.dtype)
    cols = torch.linspace(-1, 1, w, device=like.device, dtype=like.dtype)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"))
    return grid.unsqueeze(0).expand(n, 2, h, w)


def _prior_mlp(prior_dim: int, out_dim: int) -> tuple[nn.Linear, nn.Linear]:
    """T(g): Linear(prior_dim -> 256) -> LReLU -> Linear(256 -> out_dim), no biases."""
    return nn.Linear(prior_dim, 256, bias=False), nn.Linear(256, out_dim, bias=False)


def _position_convs(nf: int) -> tuple[nn.Conv2d, nn.Conv2d]:
    """S: conv3x3(2 -> nf) -> LReLU -> conv1x1(nf -> nf), no biases."""
    return nn.Conv2d(2, nf, 3, 1, 1, bias=False), nn.Conv2d(nf, nf, 1, 1, 0, bias=False)


class PTGRM(nn.Module):
    """PTG-RM refinement module: ``forward(initial, degraded, prior) -> refined``.

    ``initial`` = Î_c = F(I_d) and ``degraded`` = I_d are (N,3,H,W) in [0,1]
    (any H, W); ``prior`` = g is (N, prior_dim), or (N, prior_dim, h, w) when
    ``prior_concat="2d"``; it may be None only for configurations that never
    read it (the plain "large R"). Defaults are the reference (671,735
    parameters with a 512-d prior, 77 keys). See the module docstring for the
    maths and the ablation switches.

    ``num_blocks`` and ``heads`` are integers: the reference's constructor takes
    Restormer-style lists (``[4,6,6,8]``, ``[1,2,4,8]``) but uses only their
    first entries, which are our defaults; ``num_refinement_blocks`` is unused
    there and not accepted here.
    """

    scale = 1
    size_multiple = 4
    #: the default is already a CPU-sized module (< 1 M parameters)
    PRESETS = {
        "default": {},
        "small": {},
        "mobilenet_prior": {"prior_dim": 1280},
        "paper_output": {"output_mode": "paper"},
    }
    #: rows of the paper's ablation table -> constructor kwargs (our reading, see module docstring)
    ABLATIONS: dict[str, dict] = {
        "w/o SP, with CA and SA": {"sve": False},
        "with SP, w/o CA, with SA": {"channel_attention": False},
        "with SP and CA, w/o SA": {"spatial_attention": False},
        "Large R w/o SP/CA/SA": {"sve": False, "channel_attention": False, "spatial_attention": False,
                                 "nf": 32, "plain_blocks": 17},
        "w/o Position Embedding S": {"position_embedding": False},
        "SNR Value as Mask": {"sve_mask": "snr"},
        "Use 1D Priors via Con.": {"sve": False, "channel_attention": False, "spatial_attention": False,
                                   "nf": 32, "plain_blocks": 11, "prior_concat": "1d"},
        "Use 2D Priors via Con.": {"sve": False, "channel_attention": False, "spatial_attention": False,
                                   "nf": 32, "plain_blocks": 11, "prior_concat": "2d", "prior_dim": 1280},
        "Full Setting": {},
    }

    def __init__(self, prior_dim: int = 512, nf: int = 16, num_blocks: int = 4, heads: int = 1,
                 ffn_expansion_factor: float = 2.66, bias: bool = False, LayerNorm_type: str = "WithBias",
                 kernel_size: int = 3, sve: bool = True, sve_mask: str = "learned",
                 channel_attention: bool = True, spatial_attention: bool = True,
                 position_embedding: bool = True, plain_blocks: int = 0, prior_concat: str | None = None,
                 output_mode: str = "code"):
        super().__init__()
        self._check_config(prior_dim, nf, kernel_size, sve, sve_mask, channel_attention, spatial_attention,
                           plain_blocks, prior_concat, output_mode)
        self.nf, self.prior_dim, self.kh = nf, prior_dim, kernel_size
        self.sve, self.sve_mask = sve, sve_mask
        self.channel_attention, self.spatial_attention = channel_attention, spatial_attention
        self.position_embedding, self.prior_concat, self.output_mode = position_embedding, prior_concat, output_mode
        emb = 4 * nf  # width of the mapped prior T(g)
        pos = nf if position_embedding else 0

        # Creation order = the reference ``refinement2.__init__``: it fixes the
        # order of ``parameters()`` (optimizer states) and what a seed draws for
        # each tensor. Parts an ablation switches off are skipped in place; the
        # ablation-only parts (prior by concatenation, plain blocks) come last.
        learned_mask = sve and sve_mask == "learned"
        csa = channel_attention or spatial_attention
        kk = nf * kernel_size * kernel_size

        # R_d's last convs
        self.conv_last2 = nn.Conv2d(nf, nf, 3, 1, 1, bias=True)
        self.conv_last3 = nn.Conv2d(nf, 3 if output_mode == "code" else 6, 3, 1, 1, bias=True)
        # T_m(g) (PTG-SVE) and T_c(g) (PTG-CSA)
        if learned_mask:
            self.mapp_space1, self.mapp_space2 = _prior_mlp(prior_dim, emb)
        if csa:
            self.mapp_space11, self.mapp_space22 = _prior_mlp(prior_dim, emb)
        # S_m (PTG-SVE) and S_c (PTG-CSA, spatial branch)
        if learned_mask and position_embedding:
            self.mapp_position1, self.mapp_position2 = _position_convs(nf)
        if spatial_attention and position_embedding:
            self.mapp_position11, self.mapp_position22 = _position_convs(nf)
        # PTG-CSA: R_c, then R_p and R_o, then R_f
        if channel_attention:
            self.mapping11 = nn.Linear(nf + emb, nf, bias=False)
            self.mapping12 = nn.Linear(nf, nf, bias=False)
        if spatial_attention:
            self.mapp11 = nn.Conv2d(nf + emb + pos, kk, 3, 1, 1, bias=False)
            self.mapp12 = nn.Conv2d(kk, kk, 3, 1, 1, bias=False)
            self.mapp1 = nn.Conv2d(nf, 1, 3, 1, 1, bias=False)
        if csa:
            self.refine11 = nn.Conv2d(2 * nf, nf, 1, 1, 0, bias=False)
        # R_e's convs (encoder to H/4), R_d's upsampling convs, R_e's norms
        self.r1 = nn.Conv2d(6, nf, 3, 1, 1, bias=False)
        self.r2 = nn.Conv2d(nf, nf, 3, 2, 1, bias=False)
        self.r22 = nn.Conv2d(nf, nf, 3, 2, 1, bias=False)
        self.r1_decoder = nn.Conv2d(nf, nf * 4, 3, 1, 1, bias=False)
        self.r2_decoder = nn.Conv2d(nf, nf * 4, 3, 1, 1, bias=False)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.r1norm = nn.InstanceNorm2d(nf, affine=True)
        self.r2norm = nn.InstanceNorm2d(nf, affine=True)
        # PTG-SVE: R_m, R_l, R_s
        if learned_mask:
            self.r1_mask = nn.Conv2d(nf + emb + pos, nf, 3, 1, 1, bias=False)
            self.r2_mask = nn.Conv2d(nf, 1, 3, 1, 1, bias=False)
        if sve:
            self.transformer = nn.Sequential(*[TransformerBlock(nf, heads, ffn_expansion_factor, bias, LayerNorm_type)
                                               for _ in range(num_blocks)])
            self.resnet = ResidualBlock_noBN(nf)

        # ablation-only parts (not in the reference)
        if prior_concat == "1d":
            self.cat_mapp1, self.cat_mapp2 = _prior_mlp(prior_dim, emb)
        elif prior_concat == "2d":
            self.cat_proj = nn.Conv2d(prior_dim, emb, 1, 1, 0, bias=False)
        if prior_concat is not None:
            self.cat_fuse = nn.Conv2d(nf + emb, nf, 3, 1, 1, bias=False)
        if plain_blocks:
            blocks = []
            for _ in range(plain_blocks):
                blocks += [ResidualBlock_noBN(nf),
                           TransformerBlock(nf, heads, ffn_expansion_factor, bias, LayerNorm_type)]
            self.plain = nn.Sequential(*blocks)

    @staticmethod
    def _check_config(prior_dim, nf, kernel_size, sve, sve_mask, channel_attention, spatial_attention,
                      plain_blocks, prior_concat, output_mode) -> None:
        if output_mode not in ("code", "paper"):
            raise ValueError(f"PTGRM: output_mode must be 'code' or 'paper', got {output_mode!r}")
        if sve_mask not in ("learned", "snr"):
            raise ValueError(f"PTGRM: sve_mask must be 'learned' or 'snr', got {sve_mask!r}")
        if sve_mask == "snr" and not sve:
            raise ValueError("PTGRM: sve_mask='snr' needs sve=True (the mask selects between R_s and R_l)")
        if prior_concat not in (None, "1d", "2d"):
            raise ValueError(f"PTGRM: prior_concat must be None, '1d' or '2d', got {prior_concat!r}")
        if prior_concat == "2d" and ((sve and sve_mask == "learned") or channel_attention or spatial_attention):
            raise ValueError("PTGRM: prior_concat='2d' takes a feature-map prior, which the prior-guided parts "
                             "(learned SVE mask, channel and spatial attention) cannot read; switch them off "
                             "(sve=False or sve_mask='snr', channel_attention=False, spatial_attention=False)")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"PTGRM: kernel_size must be odd and positive, got {kernel_size}")
        if nf < 1 or prior_dim < 1 or plain_blocks < 0:
            raise ValueError(f"PTGRM: nf, prior_dim must be >= 1 and plain_blocks >= 0 "
                             f"(got nf={nf}, prior_dim={prior_dim}, plain_blocks={plain_blocks})")

    # ------------------------------------------------------------------ properties
    @property
    def uses_prior(self) -> bool:
        """Whether any part of this configuration reads g."""
        return ((self.sve and self.sve_mask == "learned") or self.channel_attention
                or self.spatial_attention or self.prior_concat is not None)

    # ------------------------------------------------------------------ pieces
    def encode(self, initial: torch.Tensor, degraded: torch.Tensor) -> torch.Tensor:
        """f = R_e(Î_c ⊕ I_d) at H/4."""
        x = _lrelu(self.r1norm(self.r1(torch.cat([initial, degraded], 1))))
        return self.r22(self.r2norm(self.r2(x)))

    def _position(self, first: str, second: str, grid: torch.Tensor) -> list[torch.Tensor]:
        """[S(grid)] from the convs named ``first``/``second``, or [] without position embedding."""
        if not self.position_embedding:
            return []
        return [getattr(self, second)(_lrelu(getattr(self, first)(grid)))]

    @staticmethod
    def _broadcast(vec: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return vec[:, :, None, None].expand(-1, -1, like.shape[2], like.shape[3])

    def concat_prior(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Prior by concatenation (ablation rows): f + conv(f ⊕ T(g))."""
        if self.prior_concat == "1d":
            t = self._broadcast(self.cat_mapp2(_lrelu(self.cat_mapp1(g))), f)
        else:
            t = self.cat_proj(F.interpolate(g, size=f.shape[-2:], mode="bilinear", align_corners=False))
        return f + self.cat_fuse(torch.cat([f, t], 1))

    def spatially_varying(self, f: torch.Tensor, g: torch.Tensor | None, grid: torch.Tensor,
                          degraded: torch.Tensor) -> torch.Tensor:
        """PTG-SVE: blend of the long-range (transformer) and short-range (CNN) branches."""
        f_long, f_short = self.transformer(f), self.resnet(f)
        if self.sve_mask == "snr":
            snr = F.interpolate(snr_map(degraded), size=f.shape[-2:], mode="nearest")
            return snr * f_short + (1 - snr) * f_long
        t = self._broadcast(self.mapp_space2(_lrelu(self.mapp_space1(g))), f)
        pos = self._position("mapp_position1", "mapp_position2", grid)
        mask = torch.sigmoid(self.r2_mask(_lrelu(self.r1_mask(torch.cat([f, t, *pos], 1)))))
        return f_long * mask + f_short * (1 - mask)

    def channel_spatial_attention(self, f: torch.Tensor, g: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """PTG-CSA: f̄ = R_f(f̂·M_c ⊕ f̂·M_s) + f̂."""
        t = self.mapp_space22(_lrelu(self.mapp_space11(g)))
        f_c = f_s = f
        if self.channel_attention:
            m_c = self.mapping12(_lrelu(self.mapping11(torch.cat([f.mean((2, 3)), t], 1))))
            f_c = f * torch.sigmoid(m_c)[:, :, None, None]
        if self.spatial_attention:
            pos = self._position("mapp_position11", "mapp_position22", grid)
            kernels = self.mapp12(_lrelu(self.mapp11(torch.cat([f, self._broadcast(t, f), *pos], 1))))
            m_s = torch.sigmoid(self.mapp1(_lrelu(per_pixel_conv(f, kernels, self.kh))))
            f_s = f * m_s
        return self.refine11(torch.cat([f_c, f_s], 1)) + f

    def decode(self, f: torch.Tensor, initial: torch.Tensor, degraded: torch.Tensor) -> torch.Tensor:
        """R_d and the output formula (``output_mode``)."""
        x = _lrelu(self.pixel_shuffle(self.r1_decoder(f)))
        x = _lrelu(self.pixel_shuffle(self.r2_decoder(x)))
        out = self.conv_last3(_lrelu(self.conv_last2(x)))
        if self.output_mode == "code":
            return initial.clamp(0.0, 1.0) + out
        i_m, i_r = out.chunk(2, dim=1)
        return degraded + (initial - degraded) * i_m + i_r

    # ------------------------------------------------------------------ forward
    def _check_inputs(self, initial, degraded, prior) -> None:
        if initial.ndim != 4 or initial.shape[1] != 3 or initial.shape != degraded.shape:
            raise ValueError(f"PTGRM: initial and degraded must be (N,3,H,W) of one shape, got "
                             f"{tuple(initial.shape)} and {tuple(degraded.shape)}")
        if not self.uses_prior:
            return
        want = 4 if self.prior_concat == "2d" else 2
        if prior is None or prior.ndim != want or prior.shape[0] != initial.shape[0] or prior.shape[1] != self.prior_dim:
            shape = "(N, prior_dim, h, w)" if want == 4 else "(N, prior_dim)"
            got = None if prior is None else tuple(prior.shape)
            raise ValueError(f"PTGRM: prior must be {shape} with N={initial.shape[0]}, "
                             f"prior_dim={self.prior_dim}; got {got}")

    def forward_features(self, initial: torch.Tensor, degraded: torch.Tensor,
                         prior: torch.Tensor | None) -> torch.Tensor:
        """The module on inputs whose size is already a multiple of 4."""
        f = self.encode(initial, degraded)
        g = prior.to(f.dtype) if prior is not None else None
        if self.prior_concat is not None:
            f = self.concat_prior(f, g)
        if hasattr(self, "plain"):
            f = self.plain(f)
        grid = coordinate_grid(f.shape[0], f.shape[2], f.shape[3], f)
        if self.sve:
            f = self.spatially_varying(f, g, grid, degraded)
        if self.channel_attention or self.spatial_attention:
            f = self.channel_spatial_attention(f, g, grid)
        return self.decode(f, initial, degraded)

    def forward(self, initial: torch.Tensor, degraded: torch.Tensor,
                prior: torch.Tensor | None = None) -> torch.Tensor:
        self._check_inputs(initial, degraded, prior)
        ip, size = pad_to_multiple(initial, self.size_multiple)
        dp, _ = pad_to_multiple(degraded, self.size_multiple)
        return crop_to(self.forward_features(ip, dp, prior), size)
