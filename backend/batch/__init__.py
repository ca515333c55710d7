"""Batch runs at scale: many photos, videos and image sequences through `Estimator.estimate`,
resumable from a manifest, on this machine's cores (local.py) or a Ray cluster (ray_cluster.py).

inputs (what was given, as units) -> run (the driver: manifest, progress, Ctrl-C, summary) ->
an executor (local processes or Ray actors) -> work.Worker (the model once, files written per
photo) with tracking (faces smoothed over a clip's frames) and video (frames in, previews out).
"""
from .inputs import InputError, Unit, read_units
from .work import Settings


def shard(units: list[Unit], index: int, count: int) -> list[Unit]:
    """The index-th (1-based) of count slices: every count-th unit, so slices are even and the
    same inputs always slice the same way (a clip stays whole in one slice)."""
    return units[index - 1::count]


__all__ = ["InputError", "Settings", "Unit", "read_units", "shard"]
