"""Shared fixtures: real photos from installed packages and model checkpoints the tests make."""
from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut portrait (ships inside the wheel), uint8 RGB 512x512."""
    from skimage import data
    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_path(astronaut, tmp_path_factory) -> Path:
    from PIL import Image
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    return path


@pytest.fixture
def closed_port() -> int:
    """A loopback port where nothing answers: held bound and never listening for the test, so a
    connection is refused, whatever else runs on this machine (a fixed "unused" port may not be)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


@pytest.fixture(scope="session")
def untrained_weights(tmp_path_factory) -> Path:
    """A checkpoint of the real architecture with seeded random weights (BatchNorm statistics left
    at their defaults): the pipeline's geometry and I/O do not depend on what the model learned.
    Only the output heads' biases are set toward +z, so that its normals face the camera, varied,
    as any face's do (random heads can point them away, and then a turn into camera space or a
    projection onto a mesh has nothing to show)."""
    import torch

    from backend.estimator.networks import build_model
    from backend.estimator.weights import save_weights
    torch.manual_seed(0)
    model = build_model()
    with torch.no_grad():
        for net in (model.coarse, model.refine):
            cells = net.unet.head.bias.numel() // 3   # the refiner predicts stride^2 pixels a cell
            net.unet.head.bias.copy_(torch.tensor([0.0, 0.0, 0.3]).repeat_interleave(cells))
    path = tmp_path_factory.mktemp("weights") / "untrained.safetensors"
    save_weights(model, path, provenance={"made_by": "tests/conftest.py", "trained": False})
    return path
