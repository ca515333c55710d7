"""The ICT-FaceKit morphable head (MIT licence, read from the user's copy by path): shapes of
people and expressions, and where the face's landmarks sit in its UV layout."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

PACKED = "ict_facekit_light_packed.npz"
# Thin transparent shells and eyelash cards of the original renderer: left out of opaque renders.
HIDDEN_MATERIALS = ("M_EyeBlend", "M_EyeOcclusion", "M_LacrimalFluid", "M_EyeLashes")
FACE_MATERIALS = ("M_Face", "M_ScleraLeft", "M_ScleraRight", "M_IrisLeft", "M_IrisRight")


class FaceKitError(RuntimeError):
    """The data folder is missing or not the packed ICT-FaceKit."""


@dataclasses.dataclass(frozen=True)
class Person:
    """A head shape: weights over the identity modes and the expression blendshapes."""
    identity: np.ndarray     # (100,) ~ N(0, 1)
    expression: np.ndarray   # (57,) in [0, 1]


class FaceKit:
    def __init__(self, folder: str | Path):
        folder = Path(folder)
        path = folder / PACKED
        if not path.is_file():
            raise FaceKitError(f"{folder}: no {PACKED} here (pass the ICT-FaceKit folder, "
                               f"e.g. ../shared/data/ict_facekit)")
        data = np.load(path)
        self.neutral = data["neutral"]
        # float32 whatever the file holds (tools/pack_training_inputs.py packs them in float16)
        self.identity_basis = data["id_basis"].reshape(len(data["id_basis"]), -1).astype(np.float32)
        self.expression_basis = data["expr_basis"].reshape(len(data["expr_basis"]), -1).astype(np.float32)
        self.expression_names = [str(n) for n in data["expr_names"]]
        self.material_names = [str(n) for n in data["material_names"]]
        visible = ~np.isin(data["material_names"][data["tri_material"]], HIDDEN_MATERIALS)
        self.triangles = data["tri"][visible]
        self.triangle_material = data["tri_material"][visible].astype(np.int8)
        self.triangle_uv = data["uv"][data["tri_uv"][visible]]             # (T, 3, 2)
        self.material = {name: i for i, name in enumerate(self.material_names)}
        landmarks = json.loads((folder / "vertex_indices.json").read_text())["idx_to_landmark_verts"]
        self.landmark_vertices = np.asarray(landmarks)
        vertex_uv = np.zeros((len(self.neutral), 2), np.float32)
        vertex_uv[data["tri"].ravel()] = data["uv"][data["tri_uv"].ravel()]
        self.landmark_uv = vertex_uv[self.landmark_vertices]              # (68, 2), face tile

    def vertices(self, person: Person) -> np.ndarray:
        """(V, 3) positions in centimetres, +y up, the face looking toward +z."""
        offset = person.identity @ self.identity_basis + person.expression @ self.expression_basis
        return self.neutral + offset.reshape(-1, 3).astype(np.float32)


# --- sampling people ------------------------------------------------------------------------------

# Expressions that real portraits show often, with how likely each is to be active.
_COMMON = {"eyeBlink": 0.25, "eyeSquint": 0.3, "mouthSmile": 0.35, "jawOpen": 0.3, "browInnerUp": 0.15,
           "browDown": 0.15, "cheekSquint": 0.2, "mouthFrown": 0.1, "eyeWide": 0.1, "mouthPucker": 0.05,
           "mouthFunnel": 0.05, "noseSneer": 0.08, "cheekPuff": 0.05, "mouthStretch": 0.1,
           "mouthUpperUp": 0.1, "mouthLowerDown": 0.15, "eyeLook": 0.3, "browOuterUp": 0.1,
           "mouthDimple": 0.1, "mouthPress": 0.1, "mouthRoll": 0.05, "mouthShrug": 0.05,
           "cheekRaiser": 0.2}


def sample_identity(rng: np.random.Generator, modes: int, spread: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(modes) * spread).astype(np.float32)


def sample_expression(rng: np.random.Generator, names: list[str]) -> np.ndarray:
    """Sparse, plausible combinations: a few families at a time, both sides mostly together."""
    weights = np.zeros(len(names), np.float32)
    if rng.random() < 0.25:
        return weights  # neutral faces are common in portraits
    for family, probability in _COMMON.items():
        if rng.random() >= probability:
            continue
        strength = rng.uniform(0.2, 1.0)
        members = [i for i, n in enumerate(names) if n.startswith(family)]
        if family == "eyeLook":  # one gaze direction for both eyes
            direction = rng.choice(["Down", "Up", "In", "Out"])
            members = [i for i in members if direction in names[i]]
        for i in members:
            asymmetry = rng.uniform(0.7, 1.0) if rng.random() < 0.7 else rng.uniform(0.0, 1.0)
            weights[i] = max(weights[i], strength * asymmetry)
    return np.clip(weights, 0.0, 1.0)


TEST_PEOPLE = 200
TEST_SEED = 7_000_000  # test people come from seeds no training sample can reach


def held_out_person(kit: FaceKit, index: int) -> tuple[Person, int]:
    """The index-th held-out person (and its render seed); the last fifth lie at 2-3 sigma."""
    rng = np.random.default_rng([TEST_SEED, index])
    spread = rng.uniform(2.0, 3.0) if index >= TEST_PEOPLE * 4 // 5 else 1.0
    identity = sample_identity(rng, len(kit.identity_basis), spread)
    return Person(identity, sample_expression(rng, kit.expression_names)), TEST_SEED + index


def training_person(kit: FaceKit, seed: int) -> Person:
    if not 0 <= seed < TEST_SEED:
        raise ValueError(f"training seeds lie in [0, {TEST_SEED}): the seeds above are the test people")
    rng = np.random.default_rng([seed, 1])
    spread = 1.0 if rng.random() < 0.8 else rng.uniform(1.5, 3.0)   # the test's last 40 are at 2-3
    identity = sample_identity(rng, len(kit.identity_basis), spread)
    return Person(identity, sample_expression(rng, kit.expression_names))
