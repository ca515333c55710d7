"""The two networks of "Face Normal Estimation from Rags to Riches", sized for a CPU.

CoarseNet  - encoder-decoder on a low-resolution face crop with self-attention over the bottleneck
             tokens: long-range context removes the local artefacts a purely convolutional net leaves.
             Its output (unit normals) is the *exemplar*.
RefineNet  - a U-Net on the full-resolution crop with the exemplar as extra input channels; it predicts
             a correction to the exemplar.  Input channels (not a global modulation code as in the
             authors' release) because the exemplar is pixel-aligned with the image: the refiner sees
             *where* the coarse shape is and only has to add detail, which a pooled code cannot carry.
FaceNormalNet - both, chained.  All outputs are unit normals in the crop's view space (the camera
             turned to look at the face; see training/synthetic.py), OpenGL convention
             (+x right, +y up, +z toward the camera), shape (B, 3, H, W).

Hyper-parameters live in `ModelConfig`; `build_model(config)` is the one factory.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    input_size: int = 256                   # side of the square face crop the model sees
    coarse_size: int = 128                  # the coarse network works at this side
    coarse_widths: tuple[int, ...] = (16, 32, 64, 128, 192, 256)  # per encoder stage (each halves
                                            # the side); the 6th costs ~no time at 4x4: it led 13.6 vs
                                            # 15.1 deg in 2,500-step trials, tied after 14,000 steps
    attention_blocks: int = 2               # transformer blocks over the bottleneck; 0 = the ablation
    attention_heads: int = 4
    refine_widths: tuple[int, ...] = (24, 32, 64, 96)
    refine_stride: int = 2                  # the refiner works at 1/stride of the crop's side, on
                                            # stride^2 pixels per cell (space-to-depth): 15 ms a
                                            # crop where the 7th model's full-side refiner
                                            # ((16, 24, 48, 96, 160), stride 1) took 43

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model settings: {sorted(unknown)}")
        fixed: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        fixed.setdefault("refine_stride", 1)   # files from before the field: full-side refiners
        return cls(**fixed)


def unit_vectors(x: torch.Tensor) -> torch.Tensor:
    """Normalise over the channel axis.  Written out because F.normalize's strided norm over dim 1
    of an NCHW map takes ~9 ms at 256^2 on CPU, more than a whole network stage."""
    return x * torch.rsqrt((x * x).sum(dim=1, keepdim=True).clamp_min(1e-12))


def conv_bn_act(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class DownStage(nn.Sequential):
    """Halve the resolution, then one more 3x3 convolution."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(conv_bn_act(c_in, c_out, stride=2), conv_bn_act(c_out, c_out))


class UpStage(nn.Module):
    """Double the resolution, merge the encoder's skip, two 3x3 convolutions."""

    def __init__(self, c_in: int, c_skip: int, c_out: int):
        super().__init__()
        self.fuse = nn.Sequential(conv_bn_act(c_in + c_skip, c_out), conv_bn_act(c_out, c_out))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, skip], dim=1))


class TransformerBlock(nn.Module):
    """Pre-norm self-attention + MLP over a (B, N, C) token sequence."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.norm1(tokens)
        tokens = tokens + self.attn(h, h, h, need_weights=False)[0]
        return tokens + self.mlp(self.norm2(tokens))


class BottleneckAttention(nn.Module):
    """Self-attention over every position of the bottleneck feature map (a learned position code
    per cell, resized when the grid differs from the one it was trained at)."""

    def __init__(self, dim: int, depth: int, heads: int, grid: int):
        super().__init__()
        self.position = nn.Parameter(torch.zeros(1, dim, grid, grid))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        position: torch.Tensor = self.position
        if position.shape[-2:] != (h, w):
            position = F.interpolate(position, size=(h, w), mode="bilinear", align_corners=False)
        tokens = (x + position).flatten(2).transpose(1, 2)
        for block in self.blocks:
            tokens = block(tokens)
        return tokens.transpose(1, 2).reshape(b, c, h, w)


class UNet(nn.Module):
    """Encoder-decoder with skips; an optional module runs on the bottleneck."""

    def __init__(self, c_in: int, widths: tuple[int, ...], bottleneck: nn.Module | None = None,
                 out_channels: int = 3):
        super().__init__()
        self.stem = conv_bn_act(c_in, widths[0])
        self.down = nn.ModuleList(DownStage(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.bottleneck = bottleneck or nn.Identity()
        self.up = nn.ModuleList(
            UpStage(b, a, a) for a, b in zip(reversed(widths[:-1]), reversed(widths[1:]))
        )
        self.head = nn.Conv2d(widths[0], out_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for stage in self.down:
            skips.append(x)
            x = stage(x)
        x = self.bottleneck(x)
        for stage, skip in zip(self.up, reversed(skips)):
            x = stage(x, skip)
        return self.head(x)


class CoarseNet(nn.Module):
    """Image (B, 3, S, S) in [0, 1] -> exemplar normals (B, 3, S, S), computed at `coarse_size`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.size = config.coarse_size
        dim = config.coarse_widths[-1]
        grid = config.coarse_size >> (len(config.coarse_widths) - 1)
        attention = None
        if config.attention_blocks:
            attention = BottleneckAttention(dim, config.attention_blocks, config.attention_heads, grid)
        self.unet = UNet(3, config.coarse_widths, attention)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(image, size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=True)
        normals = unit_vectors(self.unet(small * 2 - 1))
        if normals.shape[-2:] != image.shape[-2:]:
            normals = F.interpolate(normals, size=image.shape[-2:], mode="bilinear", align_corners=False)
            normals = unit_vectors(normals)
        return normals


class RefineNet(nn.Module):
    """Image + exemplar -> fine normals, as the exemplar plus a learned correction."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.stride = config.refine_stride
        cells = self.stride ** 2
        self.unet = UNet(6 * cells, config.refine_widths, out_channels=3 * cells)

    def forward(self, image: torch.Tensor, exemplar: torch.Tensor) -> torch.Tensor:
        inputs = torch.cat([image * 2 - 1, exemplar], dim=1)
        if self.stride > 1:
            inputs = F.pixel_unshuffle(inputs, self.stride)
        correction = self.unet(inputs)
        if self.stride > 1:
            correction = F.pixel_shuffle(correction, self.stride)
        return unit_vectors(exemplar + correction)


class FaceNormalNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.coarse = CoarseNet(config)
        self.refine = RefineNet(config)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.refine(image, self.coarse(image))


def mirrored_normals(normals: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) normals as a mirror shows them: flipped left-right, x negated."""
    x_negated = torch.tensor([-1.0, 1.0, 1.0], dtype=normals.dtype, device=normals.device)
    return normals.flip(-1) * x_negated.view(3, 1, 1)


def mirror_averaged(net: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """The mean of a network's normals for the image and for its mirror image (flipped back, x
    negated).  A face and its mirror image are equally plausible faces, so the two estimates err
    apart and their mean errs less (0.25 degrees mean on the 200 test people), at twice the compute.
    Both run as one batch."""
    both = net(torch.cat([image, image.flip(-1)]))
    direct, of_mirror = both.chunk(2)
    return unit_vectors(direct + mirrored_normals(of_mirror))


def build_model(config: ModelConfig | None = None) -> FaceNormalNet:
    return FaceNormalNet(config or ModelConfig())


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass: (transposed) convolutions, linear layers, attention
    (the layers that carry the cost; norms and activations are left out, as the field does)."""
    total = 0

    def conv_hook(layer, _inputs, output):
        nonlocal total
        per_output = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
        total += output.numel() * per_output

    def transposed_conv_hook(layer, inputs, _output):
        nonlocal total
        per_input = layer.out_channels // layer.groups * math.prod(layer.kernel_size)
        total += inputs[0].numel() * per_input

    def linear_hook(layer, _inputs, output):
        nonlocal total
        total += output.numel() * layer.in_features

    def attention_hook(_layer, inputs, _output):
        nonlocal total
        batch, tokens, dim = inputs[0].shape
        total += 4 * batch * tokens * dim * dim      # q, k, v and output projections
        total += 2 * batch * tokens * tokens * dim   # scores and weighted sum

    handles = []
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            handles.append(layer.register_forward_hook(conv_hook))
        elif isinstance(layer, nn.ConvTranspose2d):
            handles.append(layer.register_forward_hook(transposed_conv_hook))
        elif isinstance(layer, nn.Linear) and not isinstance(layer, nn.modules.linear.NonDynamicallyQuantizableLinear):
            handles.append(layer.register_forward_hook(linear_hook))
        elif isinstance(layer, nn.MultiheadAttention):
            handles.append(layer.register_forward_hook(attention_hook))
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total
