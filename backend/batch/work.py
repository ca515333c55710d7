"""One batch worker: the model loaded once, units of photos in, each photo's files written
(estimator/output_files.write_result, the files of `predict`) and a manifest record out.

The same `Worker` runs in a local worker process and in a Ray actor; it never writes the manifest
(whoever drives the batch appends the records it hands back, after the files exist).
"""
from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from ..core.options import EstimateOptions
from ..estimator import Estimator, Photo, Result
from ..estimator.output_files import write_result
from . import video
from .inputs import Frame, Unit
from .tracking import FaceTracker


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a worker needs, plain and picklable (it travels to processes and Ray actors)."""
    output: str
    options: EstimateOptions
    npy: bool = False
    exr: bool = False
    weights: str | None = None
    model: str = "auto"            # Estimator's: "shipped" (the 8th), "fast", "quality" or "auto"
    device: str = "auto"
    threads: int = 0               # torch threads in this worker (0: torch's default)
    photos_per_pass: int = 4       # photos whose crops go through the networks together
    smooth: bool = True            # track faces over a clip's frames
    fps: float | None = None       # a clip's frame rate (None: the video's own, or DEFAULT_FPS)

    def content(self) -> dict:
        """What changes the files' pixels: a done photo with other settings is done again."""
        return {"convention": self.options.convention, "detect": self.options.detect,
                "focal_35mm": self.options.focal_35mm, "weights": self.weights, "model": self.model,
                "smooth": self.smooth}

    def wanted(self) -> set[str]:
        """The output names (write_result's keys) every done photo must have."""
        maps = set(self.options.maps)
        extras = {f"{name}_exr" for name in ("normal", "albedo", "height") if self.exr and name in maps}
        return maps | extras | ({"normal_npy"} if self.npy and "normal" in maps else set())


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    def __init__(self, settings: Settings):
        if settings.threads:
            import torch
            torch.set_num_threads(settings.threads)
        self.settings = settings
        self.estimator = Estimator(settings.weights, device=settings.device, model=settings.model)
        self.output = Path(settings.output)

    def run(self, unit: Unit, emit: Callable[[dict], None], stop: Callable[[], bool] = lambda: False) -> None:
        """Estimate a unit's photos, emitting each one's record once its files exist; a clip's
        frames in order, through one face tracker.  stop() is asked between passes."""
        frames = list(unit.frames)
        tracker = FaceTracker(self._fps(unit)) if unit.clip and self.settings.smooth else None
        sources = self._sources(unit)
        step = self.settings.photos_per_pass
        for start in range(0, len(frames), step):
            if stop():
                return
            photos: list[tuple[Frame, Photo]] = []
            for frame in frames[start:start + step]:
                try:
                    photos.append((frame, Photo(next(sources), self.settings.options, track=tracker)))
                except (video.VideoError, StopIteration) as error:   # a frame that does not decode
                    emit(self._failed(frame, "bad_image", str(error) or "the video ends before this frame"))
            for (frame, _), result in zip(photos, self.estimator.estimate([photo for _, photo in photos])):
                emit(self._write(frame, result))

    def _fps(self, unit: Unit) -> float:
        if self.settings.fps:
            return self.settings.fps
        return video.frame_rate(unit.frames[0].path) if unit.video else video.DEFAULT_FPS

    def _sources(self, unit: Unit) -> Iterator:
        if unit.video:
            yield from (pixels for _, pixels in
                        video.video_frames(unit.frames[0].path, {f.index for f in unit.frames if f.index is not None}))
        elif unit.clip:
            yield from (video.sequence_frame(frame.path) for frame in unit.frames)
        else:
            yield from (frame.path for frame in unit.frames)

    def _write(self, frame: Frame, result: Result) -> dict:
        if result.error is not None:
            return self._failed(frame, result.error.code, str(result.error), result.timings)
        try:
            files = write_result(result, self.output, frame.stem, npy=self.settings.npy, exr=self.settings.exr)
        except (OSError, ValueError) as error:
            return self._failed(frame, "write_failed", str(error), result.timings)
        return {**self._record(frame, result.timings), "status": "done",
                "outputs": {k: str(v) for k, v in files.items()}, "error": None,
                "centres": [list(c) for c in result.centres], "camera_space": result.camera_space,
                "warnings": result.warnings}

    def _failed(self, frame: Frame, code: str, message: str, timings: dict | None = None) -> dict:
        return {**self._record(frame, timings or {}), "status": "failed", "outputs": {},
                "error": {"code": code, "message": message}}

    def _record(self, frame: Frame, timings: dict) -> dict:
        return {"input": frame.key, "settings": self.settings.content(), "worker": worker_name(),
                "timings": {k: round(v, 4) for k, v in timings.items()}}
