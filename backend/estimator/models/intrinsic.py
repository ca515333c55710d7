"""The v3 estimator's network: per crop, normals, a delit albedo and the photo's light.

    image (B, 3, S, S) in [0, 1]
      -> trunk at `base_size`: an encoder with self-attention over its bottleneck (the exemplar
         network's design, networks.py) and a decoder to half that side; a head there gives the
         coarse normals and albedo, and the bottleneck pooled gives the light
      -> detail head at the crop's full side S (>= 512 for face crops): image, coarse normals and
         albedo, space-to-depth in cells of `detail_stride` pixels, a small U-Net, back to S:
         a correction to both maps, so detail finer than the trunk's grid can come back
    outputs (dict): "normals" (B, 3, S, S) unit vectors, view space, OpenGL (+x right, +y up,
    +z toward the camera); "albedo" (B, 3, S, S) linear RGB in (0, 1); "light" (B, 9, 3)
    second-order SH coefficients (core/sh.py) in the same frame and the photo's linear units;
    "coarse_normals" (B, 3, S, S), the trunk's alone (the exemplar the unpaired terms guide by).

One architecture; its sizes are `IntrinsicConfig`s (models/__init__.py names them).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..networks import BottleneckAttention, DownStage, UNet, UpStage, conv_bn_act, unit_vectors


@dataclasses.dataclass(frozen=True)
class IntrinsicConfig:
    input_size: int = 512                 # side the pipeline cuts face crops at (the detail head's)
    wide_scale: float = 1.0               # the wider crops' side (head and shoulders, upper body), of
                                          # input_size: fast cuts them at half, a quarter the cost
    base_size: int = 256                  # side the trunk sees
    widths: tuple[int, ...] = (32, 48, 96, 144, 192)    # trunk stages, each halving the side
    attention_blocks: int = 2
    attention_heads: int = 4
    detail_stride: int = 2                # the detail head works on cells of stride^2 pixels
    detail_widths: tuple[int, ...] = (32, 48, 96)
    light_hidden: int = 128

    @property
    def wide_size(self) -> int:
        """The side the pipeline cuts head-and-shoulders and upper-body crops at."""
        return round(self.input_size * self.wide_scale)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> IntrinsicConfig:
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown model settings: {sorted(unknown)}")
        fixed: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**fixed)


class Trunk(nn.Module):
    """Encoder (stem at half the side, then halving stages), attention over the bottleneck,
    decoder back to half the side; returns the decoder's features and the bottleneck's."""

    def __init__(self, config: IntrinsicConfig):
        super().__init__()
        w = config.widths
        self.stem = conv_bn_act(3, w[0], stride=2)
        self.down = nn.ModuleList(DownStage(a, b) for a, b in zip(w[:-1], w[1:]))
        grid = config.base_size // 2 >> (len(w) - 1)
        self.attention = (BottleneckAttention(w[-1], config.attention_blocks, config.attention_heads, grid)
                          if config.attention_blocks else nn.Identity())
        self.up = nn.ModuleList(UpStage(b, a, a) for a, b in zip(reversed(w[:-1]), reversed(w[1:])))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        skips = []
        for stage in self.down:
            skips.append(x)
            x = stage(x)
        bottleneck = self.attention(x)
        x = bottleneck
        for stage, skip in zip(self.up, reversed(skips)):
            x = stage(x, skip)
        return x, bottleneck


class DetailHead(nn.Module):
    """Image at full side (space-to-depth) + the coarse maps at its cell grid -> a correction at
    full side (6 channels: normals, albedo logits).  The coarse maps join at the grid, not at
    full side: the head's cost is its convolutions, not full-side copies."""

    def __init__(self, config: IntrinsicConfig):
        super().__init__()
        self.stride = config.detail_stride
        cells = self.stride ** 2
        self.unet = UNet(3 * cells + 6, config.detail_widths, out_channels=6 * cells)
        nn.init.zeros_(self.unet.head.weight)       # starts as "no correction"
        nn.init.zeros_(self.unet.head.bias)  # type: ignore[arg-type]

    def forward(self, image: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """image (B, 3, S, S); coarse (B, 6, S / stride, S / stride): unit normals, albedo."""
        x = torch.cat([F.pixel_unshuffle(image * 2 - 1, self.stride), coarse * 2 - 1], 1)
        return F.pixel_shuffle(self.unet(x), self.stride)


class IntrinsicNet(nn.Module):
    def __init__(self, config: IntrinsicConfig):
        super().__init__()
        self.config = config
        self.trunk = Trunk(config)
        self.maps = nn.Conv2d(config.widths[0], 6, 3, 1, 1)      # normals 3, albedo logits 3
        self.light = nn.Sequential(nn.Linear(config.widths[-1], config.light_hidden), nn.GELU(),
                                   nn.Linear(config.light_hidden, 27))
        self.detail = DetailHead(config)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        side = image.shape[-2:]
        base = self.config.base_size
        small = image if side == (base, base) else F.interpolate(
            image, size=(base, base), mode="bilinear", align_corners=False, antialias=True)
        features, bottleneck = self.trunk(small * 2 - 1)
        maps = self.maps(features)
        grid = (side[0] // self.config.detail_stride, side[1] // self.config.detail_stride)
        at_grid = F.interpolate(maps, size=grid, mode="bilinear", align_corners=False)
        correction = self.detail(image, torch.cat([unit_vectors(at_grid[:, :3]), torch.sigmoid(at_grid[:, 3:])], 1))
        coarse = F.interpolate(maps, size=side, mode="bilinear", align_corners=False)
        coarse_normals = unit_vectors(coarse[:, :3])
        light = self.light(bottleneck.float().mean((-2, -1)).to(bottleneck.dtype)).view(-1, 9, 3)
        return {"normals": unit_vectors(coarse_normals + correction[:, :3]),
                "albedo": torch.sigmoid(coarse[:, 3:] + correction[:, 3:]),
                "light": light, "coarse_normals": coarse_normals}
