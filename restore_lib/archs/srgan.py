"""SRResNet and the SRGAN discriminator (Ledig et al., "Photo-Realistic Single
Image Super-Resolution Using a Generative Adversarial Network", CVPR 2017),
paper-faithful, with the parameter names of sgrvinod's
a-PyTorch-Tutorial-to-Super-Resolution (``models.py``, MIT licence,
@c30556bc79a9). SRGAN has no official PyTorch code; the tutorial reproduces
the paper's tables within about 0.1-0.3 dB.

Generator (SRResNet; the SRGAN generator is the same network)::

    9x9 conv -> PReLU                                      conv_block1
    16 x [3x3 conv -> BN -> PReLU -> 3x3 conv -> BN, + x]  residual_blocks
    3x3 conv -> BN, + output of conv_block1                conv_block2
    log2(scale) x [3x3 conv to 4C -> PixelShuffle(2) -> PReLU]
    9x9 conv -> tanh                                       conv_block3

Discriminator: 8 blocks of 3x3 conv -> BN -> LeakyReLU(0.2) (no BN in the
first), widths 64, 64, 128, 128, 256, 256, 512, 512, stride 2 in every second
block; adaptive average pooling to 6x6; Linear(512*36, 1024) -> LeakyReLU(0.2)
-> Linear(1024, 1), a logit for ``BCEWithLogitsLoss``.

Ranges (our convention vs the tutorial's). Both classes here take [0, 1]
images. The tutorial feeds the generator ImageNet-normalised LR images and
reads its tanh output in [-1, 1]; it feeds the discriminator ImageNet-normalised
HR/SR images. We do these conversions inside: ``SRResNet.forward`` normalises
its input with the ImageNet mean/std and returns (tanh + 1) / 2 in [0, 1];
``Discriminator.forward`` normalises its [0, 1] input. The weights are
therefore the tutorial's, unchanged.

Checkpoints. The tutorial pickles whole modules (``torch.save({'model':
srresnet})``, ``{'generator': ..., 'discriminator': ...}``), which
``restore_lib.checkpoints.load_checkpoint`` refuses by design (it reads with
``weights_only=True``). Re-save them as state_dicts once, in the tutorial's own
environment, e.g. ``torch.save(torch.load(path, weights_only=False)['model']
.state_dict(), 'srresnet.pth')``. The SRGAN ``Generator`` wraps SRResNet as
``net``; its ``net.`` prefix is stripped by the loader.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["SRResNet", "Discriminator", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB -> (x - mean) / std with the ImageNet statistics."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class ConvolutionalBlock(nn.Module):
    """conv (padding k//2) -> optional BatchNorm -> optional activation, stored as
    ``conv_block.<i>`` ('prelu': one shared slope, 'leakyrelu': slope 0.2, 'tanh')."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 batch_norm: bool = False, activation: str | None = None):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                                             padding=kernel_size // 2)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        if activation == "prelu":
            layers.append(nn.PReLU())
        elif activation == "leakyrelu":
            layers.append(nn.LeakyReLU(0.2))
        elif activation == "tanh":
            layers.append(nn.Tanh())
        elif activation is not None:
            raise ValueError(f"ConvolutionalBlock: unknown activation {activation!r}")
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x)


class SubPixelConvolutionalBlock(nn.Module):
    """x2 upsampling: conv to 4C channels -> PixelShuffle(2) -> PReLU."""

    def __init__(self, kernel_size: int = 3, n_channels: int = 64, scaling_factor: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(n_channels, n_channels * scaling_factor ** 2, kernel_size, padding=kernel_size // 2)
        self.pixel_shuffle = nn.PixelShuffle(scaling_factor)
        self.prelu = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.pixel_shuffle(self.conv(x)))


class ResidualBlock(nn.Module):
    """x + BN(conv(PReLU(BN(conv(x)))))."""

    def __init__(self, kernel_size: int = 3, n_channels: int = 64):
        super().__init__()
        self.conv_block1 = ConvolutionalBlock(n_channels, n_channels, kernel_size, batch_norm=True, activation="prelu")
        self.conv_block2 = ConvolutionalBlock(n_channels, n_channels, kernel_size, batch_norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block2(self.conv_block1(x))


class SRResNet(nn.Module):
    """SRResNet / SRGAN generator (defaults: the paper, 1,549,462 parameters).

    Input (N, 3, h, w) in [0, 1]; output (N, 3, s*h, s*w) in [0, 1]. Inside,
    the input is ImageNet-normalised and the tanh output mapped from [-1, 1]
    to [0, 1], so the tutorial's weights are used unchanged (see the module
    docstring, also for re-saving its pickled checkpoints).
    """

    scale = 4
    size_multiple = 1
    PRESETS = {
        "default": {},
        "small": {"n_channels": 32, "n_blocks": 4},
    }

    def __init__(self, large_kernel_size: int = 9, small_kernel_size: int = 3, n_channels: int = 64,
                 n_blocks: int = 16, scaling_factor: int = 4):
        super().__init__()
        if scaling_factor not in (2, 4, 8):
            raise ValueError(f"SRResNet: scaling_factor must be 2, 4 or 8 (x2 pixel-shuffle steps), "
                             f"got {scaling_factor!r}")
        self.scale = scaling_factor
        self.conv_block1 = ConvolutionalBlock(3, n_channels, large_kernel_size, activation="prelu")
        self.residual_blocks = nn.Sequential(*[ResidualBlock(small_kernel_size, n_channels) for _ in range(n_blocks)])
        self.conv_block2 = ConvolutionalBlock(n_channels, n_channels, small_kernel_size, batch_norm=True)
        n_up = int(math.log2(scaling_factor))
        self.subpixel_convolutional_blocks = nn.Sequential(
            *[SubPixelConvolutionalBlock(small_kernel_size, n_channels, 2) for _ in range(n_up)])
        self.conv_block3 = ConvolutionalBlock(n_channels, 3, large_kernel_size, activation="tanh")

    def forward_tutorial(self, x: torch.Tensor) -> torch.Tensor:
        """The bare network, as in the tutorial: ImageNet-normalised input,
        output in [-1, 1]."""
        head = self.conv_block1(x)
        body = self.conv_block2(self.residual_blocks(head)) + head
        return self.conv_block3(self.subpixel_convolutional_blocks(body))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.forward_tutorial(imagenet_normalize(x)) + 1.0) / 2.0


class Discriminator(nn.Module):
    """SRGAN discriminator (defaults: the paper, 23,565,505 parameters).

    Input (N, 3, H, W) in [0, 1] (ImageNet-normalised inside, as the tutorial
    feeds it); output (N, 1) logits. Any H, W >= 2**(n_blocks//2) works thanks
    to the 6x6 adaptive average pooling (for the standard 96x96 crops with
    8 blocks it is an identity).
    """

    scale = 1
    size_multiple = 1
    PRESETS = {
        "default": {},
        "small": {"n_channels": 16, "n_blocks": 6, "fc_size": 128},
    }

    def __init__(self, kernel_size: int = 3, n_channels: int = 64, n_blocks: int = 8, fc_size: int = 1024):
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"Discriminator: n_blocks must be >= 1, got {n_blocks}")
        blocks, in_ch = [], 3
        for i in range(n_blocks):
            # even blocks change the width (64 first, then doubling), odd blocks halve the size
            out_ch = (n_channels if i == 0 else in_ch * 2) if i % 2 == 0 else in_ch
            blocks.append(ConvolutionalBlock(in_ch, out_ch, kernel_size, stride=1 + i % 2,
                                             batch_norm=i != 0, activation="leakyrelu"))
            in_ch = out_ch
        self.conv_blocks = nn.Sequential(*blocks)
        self.adaptive_pool = nn.AdaptiveAvgPool2d((6, 6))
        self.fc1 = nn.Linear(in_ch * 6 * 6, fc_size)
        self.leaky_relu = nn.LeakyReLU(0.2)
        # the tutorial hard-codes Linear(1024, 1); identical for fc_size=1024
        self.fc2 = nn.Linear(fc_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.adaptive_pool(self.conv_blocks(imagenet_normalize(x)))
        return self.fc2(self.leaky_relu(self.fc1(feats.flatten(1))))
