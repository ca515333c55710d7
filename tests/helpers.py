"""Small known inputs and runners the tests share."""
import subprocess
import sys

import numpy as np


def run_backend(*args, cwd=None) -> subprocess.CompletedProcess:
    """`python -m backend ARGS` as a user runs it, in a subprocess."""
    return subprocess.run([sys.executable, "-m", "backend", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def sphere_normals(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space unit normals (size, size, 3) of a sphere filling the image (OpenGL: +x right,
    +y up, so row 0 is +y), flat (0, 0, 1) outside it, and the (size, size) bool mask inside it."""
    y, x = np.mgrid[0:size, 0:size]
    nx, ny = (x + 0.5) / size * 2 - 1, 1 - (y + 0.5) / size * 2
    nz = np.sqrt(np.clip(1 - nx ** 2 - ny ** 2, 0.0, 1.0))
    inside = nx ** 2 + ny ** 2 < 1
    n = np.where(inside[..., None], np.stack([nx, ny, nz], -1), [0, 0, 1])
    return (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32), inside


# The light the tests' v3 model (conftest's v3_weights) gives every crop, in the crop's frame: from
# the upper left, in front
V3_LIGHT_DIRECTION = np.array([-0.5, 0.4, 0.77]) / np.linalg.norm([-0.5, 0.4, 0.77])
