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


@pytest.fixture(scope="session")
def v3_weights(tmp_path_factory) -> Path:
    """A v3 weights file (no trained ones ship yet): the training's tiny recipe of the fast size,
    seeded, its light head's last layer set to give one known light whatever the crop (weights 0,
    the bias that light's coefficients: V3_LIGHT_DIRECTION, in helpers.py) and its maps head's
    bias set toward normals facing the camera and a skin-like albedo (random heads can turn the
    normals away from the light)."""
    import torch

    from backend.core import sh
    from backend.estimator import models
    from backend.training.intrinsic_training import RECIPES
    from helpers import V3_LIGHT_DIRECTION
    torch.manual_seed(0)
    # face crops at 128^2, so the fast size's wider crops are cut at 64^2 (a person mask of the
    # segmenter at 32^2 would be too coarse to test the layering with)
    network = models.create_model("fast", **dict(RECIPES["tiny"].fast, input_size=128))
    light = sh.project_light(V3_LIGHT_DIRECTION, (1.0, 1.0, 1.0))
    light[0] += 0.3     # some light from everywhere: the constant term, so the direction stays
    with torch.no_grad():
        network.light[-1].weight.zero_()
        network.light[-1].bias.copy_(torch.from_numpy(light.reshape(-1)))
        network.maps.bias.copy_(torch.tensor([0.0, 0.0, 1.0, 0.5, 0.0, -0.5]))
    path = tmp_path_factory.mktemp("weights") / "v3_tiny_fast.safetensors"
    models.save_model(network, path, provenance={"made_by": "tests/conftest.py", "trained": False})
    return path
