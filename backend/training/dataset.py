"""Rendered pairs cached on disk (memory-mapped .npy files), and the torch datasets over them.

Rendering is the slow part (~0.1 s a pair on one core), so a training run renders its set once,
with one process per core, and trains over it for as many passes as its time allows."""
from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .facekit import FaceKit
from .synthetic import FaceRenderer

FILES = ("images", "normals", "masks")
_renderer: FaceRenderer | None = None


def _start_worker(data: str, size: int) -> None:
    global _renderer
    _renderer = FaceRenderer(FaceKit(data), size)


def _render(seed: int):
    sample = _renderer.training_sample(seed)
    image = np.round(sample.image * 255).astype(np.uint8)
    normals = np.round(sample.normals * 32767).astype(np.int16)
    masks = (sample.mask > 0.5).astype(np.uint8) | ((sample.valid > 0.5).astype(np.uint8) << 1)
    return image, normals, masks


def build_cache(data: str | Path, folder: str | Path, count: int, *, size: int = 256,
                first_seed: int = 0, workers: int | None = None, progress=None) -> Path:
    """Render training pairs for seeds first_seed .. first_seed+count-1 into folder (reused when a
    complete cache with the same settings is there already)."""
    folder = Path(folder)
    settings = {"count": count, "size": size, "first_seed": first_seed, "version": 2}
    meta = folder / "meta.json"
    if meta.is_file() and json.loads(meta.read_text()) == settings:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "images": np.lib.format.open_memmap(folder / "images.npy", "w+", np.uint8, (count, size, size, 3)),
        "normals": np.lib.format.open_memmap(folder / "normals.npy", "w+", np.int16, (count, size, size, 3)),
        "masks": np.lib.format.open_memmap(folder / "masks.npy", "w+", np.uint8, (count, size, size)),
    }
    workers = workers or os.cpu_count() or 1
    seeds = range(first_seed, first_seed + count)
    with multiprocessing.get_context("fork").Pool(workers, _start_worker, (str(data), size)) as pool:
        for i, sample in enumerate(pool.imap(_render, seeds, chunksize=8)):
            for name, value in zip(FILES, sample):
                arrays[name][i] = value
            if progress:
                progress(i + 1, count)
    for array in arrays.values():
        array.flush()
    meta.write_text(json.dumps(settings))
    return folder


class RenderedPairs(Dataset):
    """(image, normals, face mask, valid mask) tensors from a cache, optionally mirrored at random
    (a mirrored photo's normals mirror too: x changes sign)."""

    def __init__(self, folder: str | Path, indices: range | None = None, *, mirror: bool = True):
        folder = Path(folder)
        self.arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in FILES}
        self.indices = indices if indices is not None else range(len(self.arrays["images"]))
        self.mirror = mirror

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int):
        i = self.indices[item]
        image = torch.from_numpy(np.array(self.arrays["images"][i])).permute(2, 0, 1).float() / 255
        normals = torch.from_numpy(np.array(self.arrays["normals"][i])).permute(2, 0, 1).float() / 32767
        masks = torch.from_numpy(np.array(self.arrays["masks"][i]))
        face, valid = (masks & 1).float()[None], ((masks >> 1) & 1).float()[None]
        if self.mirror and torch.rand(()) < 0.5:
            image, normals, face, valid = (t.flip(-1) for t in (image, normals, face, valid))
            normals = normals * torch.tensor([-1.0, 1.0, 1.0]).view(3, 1, 1)
        return image, normals, face, valid
