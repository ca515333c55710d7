"""Photos and clips the batch tests make, and the batch command run as a user runs it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

SIZE = 256     # small photos: the same path, a quarter of the pixels


@pytest.fixture(scope="session")
def small_astronaut(astronaut) -> np.ndarray:
    return cv2.resize(astronaut, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


@pytest.fixture
def photo_folder(tmp_path, small_astronaut) -> Path:
    """Six portraits (the astronaut shifted a little each time), as PNG files."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"p{i}.png"), np.roll(small_astronaut, 3 * i, axis=1)[..., ::-1])
    return folder


def batch_command(*args) -> list[str]:
    return [sys.executable, "-m", "backend", "batch", *map(str, args)]


def run_batch(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(batch_command(*args), capture_output=True, text=True, timeout=timeout)


def manifest_lines(folder: Path) -> list[dict]:
    path = folder / "manifest.jsonl"
    if not path.is_file():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            pass
    return lines
