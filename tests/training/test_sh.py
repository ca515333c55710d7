"""The spherical-harmonic lighting maths (backend/core/sh.py) that the renderer's truth, the
training losses, the evaluation and the preview share."""
import numpy as np
import pytest
import torch

from backend.core import sh
from shaders.relight import sh_irradiance


@pytest.fixture(scope="module")
def sphere_normals():
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(20000, 3))
    return (normals / np.linalg.norm(normals, axis=1, keepdims=True)).astype(np.float32)


def test_a_projected_light_shades_like_a_clamped_cosine(sphere_normals):
    colour = np.array([1.0, 0.5, 0.25])
    direction = np.array([0.3, 0.6, 0.74])
    shading = sh.shade(sphere_normals, sh.project_light(direction, colour))
    lambert = np.maximum(sphere_normals @ (direction / np.linalg.norm(direction)), 0)[:, None] * colour
    # the second-order approximation of the cosine lobe: 0.094 at worst, 0.03 on average
    assert np.abs(shading - lambert).max() < 0.1
    assert np.abs(shading - lambert).mean() < 0.035
    facing = direction / np.linalg.norm(direction)
    assert np.allclose(sh.shade(facing, sh.project_light(direction, colour)), colour * 1.0625, rtol=1e-3)


def test_the_direction_of_a_projected_light_comes_back(sphere_normals):
    for direction in ([0, 0, 1], [-0.8, 0.2, 0.55], [0.1, -0.9, 0.3]):
        light = sh.project_light(direction, [0.9, 0.7, 0.6])
        found = sh.dominant_direction(light)
        assert np.allclose(found, np.asarray(direction) / np.linalg.norm(direction), atol=1e-5)
    assert sh.direction_error(sh.project_light([1, 0, 0], [1, 1, 1]),
                              sh.project_light([0, 0, 1], [1, 1, 1])) == pytest.approx(90, abs=1e-3)


def test_shading_is_the_previews_irradiance(sphere_normals):
    coefficients = np.random.default_rng(1).normal(size=(9, 3)).astype(np.float32)
    assert np.allclose(sh.shade(sphere_normals, coefficients), sh_irradiance(sphere_normals, coefficients),
                       atol=1e-5)


def test_rotating_and_mirroring_keep_the_shading(sphere_normals):
    rng = np.random.default_rng(2)
    coefficients = rng.normal(size=(9, 3)).astype(np.float32)
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    turned = sh.rotate(coefficients, rotation)
    assert np.allclose(sh.shade(sphere_normals @ rotation, turned), sh.shade(sphere_normals, coefficients),
                       atol=1e-4)
    mirrored = sphere_normals * np.array([-1, 1, 1], np.float32)
    assert np.allclose(sh.shade(mirrored, sh.mirror(coefficients)), sh.shade(sphere_normals, coefficients),
                       atol=1e-5)
    # a light turned with the frame points where the turned frame says
    light = sh.project_light([0, 0, 1], [1, 1, 1])
    assert np.allclose(sh.dominant_direction(sh.rotate(light, rotation)), np.array([0, 0, 1]) @ rotation, atol=1e-4)


def test_the_basis_is_the_same_for_tensors(sphere_normals):
    n = torch.from_numpy(sphere_normals)
    terms = torch.stack(sh.basis_terms(n[:, 0], n[:, 1], n[:, 2]), -1)
    assert np.allclose(terms.numpy(), sh.basis(sphere_normals), atol=1e-6)
