"""One weights file per model: safetensors (no pickle, so loading runs no code), fp16 tensors, and
the architecture's `ModelConfig` plus free-form provenance in the file's metadata."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from .networks import FaceNormalNet, ModelConfig, build_model

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "face_normals.safetensors"
FORMAT = "face-normals/1"


class WeightsError(RuntimeError):
    """A weights file that is missing, unreadable or does not fit the architecture."""


def save_weights(model: FaceNormalNet, path: str | Path, *, provenance: dict | None = None) -> None:
    """Write the model in half precision with its config (and how it was made) in the metadata."""
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous().cpu()
               for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "config": json.dumps(model.config.to_dict()),
                "provenance": json.dumps(provenance or {})}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)


def read_metadata(path: str | Path) -> tuple[ModelConfig, dict]:
    """(architecture, provenance) of a weights file, without loading its tensors."""
    path = Path(path)
    if not path.is_file():
        hint = (" (the shipped weights are missing from this install: reinstall, or pass --weights)"
                if path == DEFAULT_WEIGHTS else "")
        raise WeightsError(f"weights file not found: {path}{hint}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path}: not a safetensors weights file ({error})") from None
    if metadata.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a face-normals weights file (format {metadata.get('format')!r}, "
                           f"expected {FORMAT!r})")
    try:
        config = ModelConfig.from_dict(json.loads(metadata["config"]))
        provenance = json.loads(metadata.get("provenance", "{}"))
    except (KeyError, ValueError, TypeError) as error:
        raise WeightsError(f"{path}: its model config is unreadable ({error})") from None
    return config, provenance


def load_model(path: str | Path = DEFAULT_WEIGHTS, device: str | torch.device = "cpu") -> FaceNormalNet:
    """The model of a weights file, in float32 eval mode on `device`."""
    config, _ = read_metadata(path)
    model = build_model(config)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise WeightsError(f"{path}: the tensors are unreadable ({error})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    misshapen = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or misshapen:
        problems = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
            if keys:
                problems.append(f"{len(keys)} {label} (e.g. {keys[0]})")
        raise WeightsError(f"{path}: does not fit the architecture its config describes: "
                           + "; ".join(problems))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    return model.to(device).eval()
