"""The v3 estimator's models by name (timm's way: one file per architecture, a config per size,
one factory), and their weights files.

    create_model("quality")            an untrained network of a named size
    weights_path("fast")               where that size's shipped weights live
    pick("auto", device)               the size run when none is named (None, the 8th model,
                                       until v3 weights ship)
    resolve("auto", device, weights)   that size and the weights file it runs
    load_model(path) / save_model(...) safetensors, fp16, the architecture and config in the metadata

Sizes: "fast" (the CPU default: per face about the 8th model's cost) and "quality" (at most the
authors' network pair's time per face on a CPU), trained together in one run
(training/intrinsic_training.py), the fast one partly from the quality one.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from ..weights import DEFAULT_WEIGHTS, WeightsError
from .intrinsic import IntrinsicConfig, IntrinsicNet

__all__ = ["IntrinsicConfig", "IntrinsicNet", "create_model", "load_model", "pick", "resolve", "save_model",
           "weights_path"]

FORMAT = "face-intrinsics/1"
WEIGHTS_FOLDER = Path(__file__).resolve().parent.parent.parent / "weights"
ARCHITECTURES = {"intrinsic": (IntrinsicNet, IntrinsicConfig)}
SIZES = {
    "fast": ("intrinsic", IntrinsicConfig(base_size=128, widths=(16, 32, 48, 96, 128), attention_blocks=1,
                                          detail_stride=4, detail_widths=(16, 32, 64), light_hidden=64,
                                          wide_scale=0.5)),
    "quality": ("intrinsic", IntrinsicConfig(widths=(32, 48, 96, 144, 192), detail_widths=(32, 48, 96))),
}


def create_model(name: str, **overrides) -> IntrinsicNet:
    """An untrained network of a named size; overrides change its config's fields (the training
    recipes' small test configs)."""
    if name not in SIZES:
        raise ValueError(f"unknown model {name!r}: one of {sorted(SIZES)}")
    architecture, config = SIZES[name]
    network, _ = ARCHITECTURES[architecture]
    return network(dataclasses.replace(config, **overrides))


def weights_path(name: str) -> Path:
    return WEIGHTS_FOLDER / f"face_intrinsics_{name}.safetensors"


def pick(name: str | None, device: torch.device, *, weights_given: bool = False) -> str | None:
    """The v3 size to run for a requested name, or None for the 8th model.  A size is run as
    named; "shipped" is the 8th model; "auto" (or None): "quality" on a GPU, "fast" elsewhere, once
    that size's weights ship and unless a weights file was given (a file without a size is the
    8th model's)."""
    if name in SIZES:
        return name
    if name == "shipped":
        return None
    if name not in (None, "auto"):
        raise ValueError(f"unknown model {name!r}: auto, shipped or one of {sorted(SIZES)}")
    if weights_given:
        return None
    size = "quality" if device.type == "cuda" else "fast"
    return size if weights_path(size).is_file() else None


def resolve(name: str | None, device: torch.device,
            weights: str | os.PathLike | None) -> tuple[str | None, Path]:
    """The v3 size to run (None: the 8th model; `pick`) and its weights file: `weights` when
    given, else where that size's (or the 8th model's) shipped weights live."""
    size = pick(name, device, weights_given=bool(weights))
    return size, Path(weights) if weights else weights_path(size) if size else DEFAULT_WEIGHTS


def architecture_of(model: nn.Module) -> str:
    return next(name for name, (network, _) in ARCHITECTURES.items() if isinstance(model, network))


def save_model(model: IntrinsicNet, path: str | Path, *, provenance: dict | None = None) -> None:
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous().cpu()
               for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "architecture": architecture_of(model),
                "config": json.dumps(model.config.to_dict()), "provenance": json.dumps(provenance or {})}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> IntrinsicNet:
    """The network of a v3 weights file, float32, eval mode, on `device`."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path} (no v3 weights are shipped yet: "
                           "train them with `python -m backend train --recipe gpu`)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise WeightsError(f"{path}: not a v3 weights file (format {metadata.get('format')!r})")
        network, config_type = ARCHITECTURES[metadata["architecture"]]
        model = network(config_type.from_dict(json.loads(metadata["config"])))
        tensors = load_file(str(path))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError) as error:
        if isinstance(error, WeightsError):
            raise
        raise WeightsError(f"{path}: not a usable v3 weights file ({error})") from None
    return model.to(device).eval()
