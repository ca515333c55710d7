"""A tiny stand-in for the ICT-FaceKit folder, made by the tests (CI has no ../shared): a sphere
head with the same file layout, materials and landmark file, so the real renderer, training and
evaluation code paths run on it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend.training.facekit import FACE_MATERIALS, HIDDEN_MATERIALS

RADIUS = 9.0
EXPRESSIONS = ["eyeBlink_L", "eyeBlink_R", "jawOpen", "mouthSmile_L", "mouthSmile_R"]


def sphere(rings: int = 40, segments: int = 64):
    """Vertices (cm) of a sphere around the head model's face centre, triangles wound counter-
    clockwise seen from outside, UVs: u around (face tile 0..1), v from bottom to top."""
    theta = np.linspace(0, np.pi, rings + 1)            # from the top (+y) down
    phi = np.linspace(-np.pi, np.pi, segments + 1)       # around +y, phi = 0 faces +z
    t, p = np.meshgrid(theta, phi, indexing="ij")
    unit = np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1).reshape(-1, 3)
    centre = np.array([0.0, 1.5, 9.0])
    vertices = (centre + RADIUS * unit).astype(np.float32)
    uv = np.stack([(p / (2 * np.pi) + 0.5), 1 - t / np.pi], -1).reshape(-1, 2).astype(np.float32)
    grid = np.arange((rings + 1) * (segments + 1)).reshape(rings + 1, segments + 1)
    a, b = grid[:-1, :-1].ravel(), grid[1:, :-1].ravel()
    c, d = grid[1:, 1:].ravel(), grid[:-1, 1:].ravel()
    triangles = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]).astype(np.int32)
    return vertices, triangles, uv, unit


@pytest.fixture(scope="session")
def tiny_facekit(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_facekit")
    vertices, triangles, uv, unit = sphere()
    names = ["M_BackHead", *HIDDEN_MATERIALS, *FACE_MATERIALS, "M_GumsTongue", "M_Teeth"]
    centroid_z = unit[triangles].mean(1)[:, 2]
    material = np.where(centroid_z > -0.2, names.index("M_Face"), names.index("M_BackHead"))
    rng = np.random.default_rng(0)
    # Identity modes and expressions: smooth radial bulges of a few millimetres.
    bulges = np.stack([unit[:, 0] * unit[:, 1], unit[:, 2] ** 2, unit[:, 0] ** 2 - unit[:, 1] ** 2,
                       unit[:, 1]], 0)[:, :, None]
    id_basis = rng.normal(0, 0.3, (4, 1, 1)) * bulges * unit[None]
    expr_basis = rng.normal(0, 0.3, (len(EXPRESSIONS), 1, 1)) * bulges[:1] * unit[None]
    np.savez(folder / "ict_facekit_light_packed.npz", neutral=vertices, tri=triangles, uv=uv,
             tri_uv=triangles, tri_material=material.astype(np.int16), material_names=np.array(names),
             id_basis=id_basis.astype(np.float32), id_names=np.array([f"id{i}" for i in range(4)]),
             expr_basis=expr_basis.astype(np.float32), expr_names=np.array(EXPRESSIONS))
    front = np.flatnonzero((unit[:, 2] > 0.5) & (np.abs(unit[:, 1]) < 0.8))
    landmarks = rng.choice(front, 68, replace=False).tolist()
    (folder / "vertex_indices.json").write_text(json.dumps({"idx_to_landmark_verts": landmarks}))
    return folder
