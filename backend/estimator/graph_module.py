"""A converted TFLite graph run in PyTorch: MediaPipe's face and person segmentation models
(backend/tools/convert_mediapipe.py).

The file holds the graph's constant tensors and, in its metadata, the ops in TFLite's order with
their options.  Each op is computed here as TFLite defines it (NHWC semantics, "same" padding
placed like TFLite's, half-pixel bilinear resize), on NCHW tensors, so outputs match TFLite's
to float rounding and the models run on any device PyTorch does.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

CONVERT_COMMAND = "python -m backend.tools.convert_mediapipe MEDIAPIPE_0.10.21_WHEEL (see its docstring)"


class ModelFileError(FileNotFoundError):
    """A converted model file is missing or unreadable."""


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TFLite's SAME padding for one axis: (before, after), the odd pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int], stride: list[int], value: float = 0.0):
    top, bottom = _same_padding(x.shape[2], kernel[0], stride[0])
    left, right = _same_padding(x.shape[3], kernel[1], stride[1])
    return F.pad(x, (left, right, top, bottom), value=value) if top or bottom or left or right else x


def _activate(x: torch.Tensor, activation: str | None) -> torch.Tensor:
    if activation == "relu":
        return F.relu(x)
    if activation == "relu6":
        return F.relu6(x)
    return x


def _to_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1) if x.dim() == 4 else x


class GraphModule(nn.Module):
    """Runs the recorded ops on a batch; input (N, 3, H, W), outputs in TFLite's shapes (NHWC
    for 4-D ones) with the batch size in front.  A graph without resizes also runs on larger
    inputs than it was made for (its detections' count grows with the input)."""

    def __init__(self, graph: dict, constants: dict[str, torch.Tensor]):
        super().__init__()
        self.inputs, self.outputs, self.ops = graph["inputs"], graph["outputs"], graph["ops"]
        for op in self.ops:  # kernels into PyTorch's layouts once
            if op["op"] == "CONV_2D":
                key = str(op["inputs"][1])
                constants[key] = constants[key].permute(0, 3, 1, 2)        # OHWI -> OIHW
            elif op["op"] == "DEPTHWISE_CONV_2D":
                key = str(op["inputs"][1])
                constants[key] = constants[key].permute(3, 0, 1, 2)        # 1HWC -> C1HW
            elif op["op"] == "TRANSPOSE_CONV_BIAS":
                key = str(op["inputs"][1])
                constants[key] = constants[key].permute(3, 0, 1, 2)        # OHWI -> IOHW
            elif op["op"] == "PRELU":
                key = str(op["inputs"][1])
                constants[key] = constants[key].reshape(1, -1, 1, 1)
        self.integer = {k: v.tolist() for k, v in constants.items() if not v.is_floating_point()}
        for key, value in constants.items():
            if value.is_floating_point():
                self.register_buffer(f"t{key}", value.float().contiguous())

    @classmethod
    def load(cls, path: str | Path) -> GraphModule:
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"MediaPipe model {path} is missing; make it with: {CONVERT_COMMAND}")
        try:
            with safe_open(str(path), framework="pt") as handle:
                graph = json.loads(handle.metadata()["graph"])
                constants = {key: handle.get_tensor(key) for key in handle.keys()}
        except Exception as error:  # safetensors raises its own types for a damaged file
            raise ModelFileError(f"MediaPipe model {path} is unreadable ({error}); remake it with: "
                                 f"{CONVERT_COMMAND}") from error
        return cls(graph, constants).eval()

    def _constant(self, index: int):
        return self.integer[str(index)] if str(index) in self.integer else getattr(self, f"t{index}")

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        # channels-last: PyTorch's CPU depthwise convolutions are several times faster in it
        values: dict[int, torch.Tensor] = {self.inputs[0]: image.contiguous(memory_format=torch.channels_last)}
        for op in self.ops:
            args = [values[i] if i in values else self._constant(i) for i in op["inputs"]]
            values[op["outputs"][0]] = getattr(self, "_" + op["op"].lower())(op, *args)
        return [_to_nhwc(values[i]) for i in self.outputs]

    # One method per op kind; tensors are NCHW, options as TFLite gave them.
    def _conv_2d(self, op, x, weight, bias):
        if op["padding"] == "same":
            x = _pad_same(x, weight.shape[2:], op["stride"])
        return _activate(F.conv2d(x, weight, bias, stride=op["stride"]), op["activation"])

    def _depthwise_conv_2d(self, op, x, weight, bias):
        if op["padding"] == "same":
            x = _pad_same(x, weight.shape[2:], op["stride"])
        return _activate(F.conv2d(x, weight, bias, stride=op["stride"], groups=x.shape[1]),
                         op["activation"])

    def _max_pool_2d(self, op, x):
        if op["padding"] == "same":
            x = _pad_same(x, op["kernel"], op["stride"], value=-math.inf)
        return F.max_pool2d(x, op["kernel"], op["stride"])

    def _average_pool_2d(self, op, x):
        if op["padding"] == "same":  # TFLite averages over the pixels inside the image only
            ones = _pad_same(torch.ones_like(x[:1, :1]), op["kernel"], op["stride"])
            x = _pad_same(x, op["kernel"], op["stride"])
            return F.avg_pool2d(x, op["kernel"], op["stride"]) / F.avg_pool2d(ones, op["kernel"], op["stride"])
        return F.avg_pool2d(x, op["kernel"], op["stride"])

    def _transpose_conv_bias(self, op, x, weight, bias):
        # MediaPipe's Convolution2DTransposeBias: a transposed convolution plus bias, cut to the
        # output's size from the top-left padding on (mediapipe/util/tflite/operations/transpose_conv_bias.cc)
        full = F.conv_transpose2d(x, weight, bias, stride=op["stride"])
        height, width = op["shapes"][0][1:3]
        top, left = (full.shape[2] - height) // 2, (full.shape[3] - width) // 2
        return full[:, :, top:top + height, left:left + width]

    def _add(self, op, a, b):
        return _activate(a + b, op["activation"])

    def _mul(self, op, a, b):
        return _activate(a * b, op["activation"])

    def _logistic(self, op, x):
        return torch.sigmoid(x)

    def _hard_swish(self, op, x):
        return F.hardswish(x)

    def _relu(self, op, x):
        return F.relu(x)

    def _prelu(self, op, x, alpha):
        return torch.where(x >= 0, x, x * alpha)

    def _pad(self, op, x, paddings):
        (_, _), (top, bottom), (left, right), (front, back) = paddings  # NHWC pairs
        return F.pad(x, (left, right, top, bottom, front, back))

    def _resize_bilinear(self, op, x, _size):
        assert op["half_pixel_centers"] and not op["align_corners"]
        height, width = op["shapes"][0][1:3]
        return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)

    def _depth_to_space(self, op, x):
        n, c, h, w = x.shape
        block = op["block"]  # TFLite's channel order is (row in block, column in block, channel)
        x = x.reshape(n, block, block, c // block ** 2, h, w).permute(0, 3, 4, 1, 5, 2)
        return x.reshape(n, c // block ** 2, h * block, w * block)

    def _reshape(self, op, x, *_shape):
        # (1, anchors, values): the anchors' count follows the input's size (a fully
        # convolutional detector run on a larger input, as a sliding window)
        shape = op["shapes"][0][1:]
        return _to_nhwc(x).reshape(x.shape[0], *([-1, shape[-1]] if len(shape) == 2 else shape))

    def _concatenation(self, op, *tensors):
        axis = op["axis"]
        if tensors[0].dim() == 4:
            axis = {1: 2, 2: 3, 3: 1, -1: 1}[axis]
        return _activate(torch.cat(tensors, dim=axis), op["activation"])
