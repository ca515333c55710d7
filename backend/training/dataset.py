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
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..estimator.networks import mirrored_normals
from .facekit import FaceKit
from shaders.relight import linear_to_srgb

from .synthetic import RENDER_VERSION, FaceRenderer

FILES = ("images", "normals", "masks")
TRUTH = ("albedo", "light")   # since render version 7: albedo (sRGB-encoded uint8), SH light (9, 3)
_renderer: FaceRenderer | None = None


def _start_worker(data: str, size: int) -> None:
    global _renderer
    _renderer = FaceRenderer(FaceKit(data), size)


def _render(seed: int):
    assert _renderer is not None, "_start_worker runs first in each worker"
    sample = _renderer.training_sample(seed)
    image = np.round(sample.image * 255).astype(np.uint8)
    normals = np.round(sample.normals * 32767).astype(np.int16)
    masks = ((sample.mask > 0.5).astype(np.uint8) | ((sample.valid > 0.5).astype(np.uint8) << 1)
             | ((sample.subject > 0.5).astype(np.uint8) << 2))
    albedo = np.round(linear_to_srgb(sample.albedo) * 255).astype(np.uint8)
    return image, normals, masks, albedo, sample.light


def render_test(job: tuple[int, str, int | None, bool]):
    """A held-out test person's render in a worker: (index, framing, light seed, painted)."""
    assert _renderer is not None, "_start_worker runs first in each worker"
    index, framing, light_seed, paint = job
    return _renderer.test_sample(index, framing, light_seed=light_seed, paint=paint)


def render_tests(data: str | Path, jobs: list, size: int, workers: int | None = None) -> list:
    """Test renders (render_test's jobs) on every core, in the jobs' order."""
    with multiprocessing.get_context("fork").Pool(workers or os.cpu_count() or 1, _start_worker,
                                                  (str(data), size)) as pool:
        return pool.map(render_test, jobs, chunksize=2)


def build_cache(data: str | Path, folder: str | Path, count: int, *, size: int = 256,
                first_seed: int = 0, workers: int | None = None, progress=None) -> Path:
    """Render training pairs for seeds first_seed .. first_seed+count-1 into folder (reused when a
    complete cache with the same settings is there already)."""
    folder = Path(folder)
    settings = {"count": count, "size": size, "first_seed": first_seed, "version": RENDER_VERSION}
    meta = folder / "meta.json"
    if meta.is_file() and json.loads(meta.read_text()) == settings:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "images": np.lib.format.open_memmap(folder / "images.npy", "w+", np.uint8, (count, size, size, 3)),
        "normals": np.lib.format.open_memmap(folder / "normals.npy", "w+", np.int16, (count, size, size, 3)),
        "masks": np.lib.format.open_memmap(folder / "masks.npy", "w+", np.uint8, (count, size, size)),
        "albedo": np.lib.format.open_memmap(folder / "albedo.npy", "w+", np.uint8, (count, size, size, 3)),
        "light": np.lib.format.open_memmap(folder / "light.npy", "w+", np.float32, (count, 9, 3)),
    }
    workers = workers or os.cpu_count() or 1
    seeds = range(first_seed, first_seed + count)
    with multiprocessing.get_context("fork").Pool(workers, _start_worker, (str(data), size)) as pool:
        for i, sample in enumerate(pool.imap(_render, seeds, chunksize=8)):
            for name, value in zip(FILES + TRUTH, sample):
                arrays[name][i] = value
            if progress:
                progress(i + 1, count)
    for array in arrays.values():
        array.flush()
    meta.write_text(json.dumps(settings))
    return folder


def mirror(image: torch.Tensor, normals: torch.Tensor, *masks: torch.Tensor) -> list[torch.Tensor]:
    """A pair seen in a mirror: every map flips left-right and the normals' x changes sign."""
    return [image.flip(-1), mirrored_normals(normals), *(mask.flip(-1) for mask in masks)]


class RenderedPairs(Dataset):
    """(image, normals, face mask, valid mask) tensors from a cache, optionally mirrored at random."""

    def __init__(self, folder: str | Path, indices: range | None = None, *, mirror: bool = True):
        folder = Path(folder)
        self.arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in FILES}
        self.indices = indices if indices is not None else range(len(self.arrays["images"]))
        self.mirror = mirror

    def __len__(self) -> int:
        return len(self.indices)

    def read(self, items: range) -> tuple[torch.Tensor, ...]:
        """Images, normals, face and valid masks of several pairs, unmirrored: (N, C, H, W) float."""
        picked = [self.indices[i] for i in items]
        image = torch.from_numpy(self.arrays["images"][picked]).permute(0, 3, 1, 2).float() / 255
        normals = torch.from_numpy(self.arrays["normals"][picked]).permute(0, 3, 1, 2).float() / 32767
        masks = torch.from_numpy(self.arrays["masks"][picked])[:, None]
        return image, normals, (masks & 1).float(), ((masks >> 1) & 1).float()

    def __getitem__(self, item: int):
        pair = [t[0] for t in self.read(range(item, item + 1))]
        if self.mirror and torch.rand(()) < 0.5:
            pair = mirror(*pair)
        return tuple(pair)


class DownsampledPairs(Dataset):
    """(image, normals, valid mask) of some rendered pairs at side x side, resampled once and held
    in memory, mirrored at random.  The coarse network trains at 128^2 and reads each render
    thousands of times: resampling the 256^2 maps on every read took a fifth of its step."""

    def __init__(self, pairs: RenderedPairs, side: int, chunk: int = 250):
        images, normals, valid = [], [], []
        for start in range(0, len(pairs), chunk):
            image, truth, _face, mask = pairs.read(range(start, min(start + chunk, len(pairs))))
            images.append(F.interpolate(image, size=(side, side), mode="area").half())
            truth = F.normalize(F.interpolate(truth, size=(side, side), mode="area"), dim=1)
            normals.append(truth.half())
            valid.append(F.interpolate(mask, size=(side, side), mode="area") > 0.99)
        self.images, self.normals, self.valid = torch.cat(images), torch.cat(normals), torch.cat(valid)
        self.mirror = pairs.mirror

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: int):
        pair = [self.images[item].float(), self.normals[item].float(), self.valid[item].float()]
        if self.mirror and torch.rand(()) < 0.5:
            pair = mirror(*pair)
        return tuple(pair)
