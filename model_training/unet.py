# SPDX-License-Identifier: GPL-2.0-or-later
"""A U-Net whose output has the input's size.

The 2018 network scored only the centre 128 x 128 of each 256 x 256 input and threw
away 75 % of its compute; this one pads every convolution ("same") so every pixel of a
tile is scored, and the plugin's tiler blends overlapping tiles instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 convolution + batch norm + ReLU layers (bias is redundant before BN)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net for (N, in_channels, H, W) standardised imagery -> (N, num_classes, H, W)
    class scores (logits).

    Args:
        in_channels: input bands (4: R, G, B, NIR).
        num_classes: output channels.
        base_width: channels at full resolution; level ``i`` has
            ``min(base_width * 2**i, max_width)``.
        depth: number of 2x poolings (the receptive field grows with it).
        max_width: cap on channels, which keeps the deep levels (and the file) small.

    Inputs whose sides are not multiples of ``2**depth`` are reflect-padded inside the
    network and the output cropped back, so any size works.
    """

    def __init__(
        self,
        in_channels: int = 4,
        num_classes: int = 4,
        base_width: int = 16,
        depth: int = 4,
        max_width: int = 128,
    ) -> None:
        super().__init__()
        self.depth = depth
        widths = [min(base_width * 2**level, max_width) for level in range(depth + 1)]
        self.encoders = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.encoders.append(conv_block(previous, width))
            previous = width
        self.upsamples = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(depth)):
            self.upsamples.append(nn.ConvTranspose2d(previous, widths[level], 2, stride=2))
            self.decoders.append(conv_block(2 * widths[level], widths[level]))
            previous = widths[level]
        self.head = nn.Conv2d(previous, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        multiple = 2**self.depth
        pad_rows = (multiple - height % multiple) % multiple
        pad_cols = (multiple - width % multiple) % multiple
        if pad_rows or pad_cols:
            x = F.pad(x, (0, pad_cols, 0, pad_rows), mode="reflect")
        skips = []
        for level, encoder in enumerate(self.encoders):
            if level:
                x = F.max_pool2d(x, 2)
            x = encoder(x)
            skips.append(x)
        skips.pop()  # the bottleneck is not a skip connection
        for upsample, decoder in zip(self.upsamples, self.decoders, strict=True):
            x = decoder(torch.cat([upsample(x), skips.pop()], dim=1))
        x = self.head(x)
        if pad_rows or pad_cols:
            x = x[..., :height, :width]
        return x


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
