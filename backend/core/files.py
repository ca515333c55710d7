"""Which files are photos, and folders expanded into the photos directly inside them."""
from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
RESULT_SUFFIXES = ("_normal.png", "_mask.png", "_relit.png")   # what the tools write beside photos


def is_photo(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(IMAGE_SUFFIXES) and not lower.endswith(RESULT_SUFFIXES)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; folders replaced by the photos directly inside them, sorted."""
    paths = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if is_photo(p.name))
        else:
            paths.append(item)
    return paths
