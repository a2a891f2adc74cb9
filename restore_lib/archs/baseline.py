"""A small residual CNN used by the quickstart: a few 3x3 conv + ReLU layers
predicting a correction that is added to the input (DnCNN-style, without BN).
Our own design, for teaching; not from a paper."""
from __future__ import annotations

import torch
import torch.nn as nn


class BaselineCNN(nn.Module):
    """``depth`` conv layers of ``width`` channels; output = input + residual."""

    scale = 1
    size_multiple = 1
    PRESETS = {"default": {}, "tiny": {"width": 16, "depth": 4}}

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 32, depth: int = 6):
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, out_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.residual = in_channels == out_channels
        # start close to the identity so the first steps never make things worse
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out
