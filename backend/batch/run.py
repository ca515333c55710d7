"""A batch run from start to summary, whoever does the work (local processes or a Ray cluster):
skip what the manifest says is done, hand the rest out, append each record as it comes back,
show progress, stop cleanly on Ctrl-C, write the clips' previews, and sum it all up.
"""
from __future__ import annotations

import dataclasses
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from . import video
from .inputs import Unit
from .manifest import Manifest
from .work import Settings


class Executor(Protocol):
    def run(self, units: list[Unit], on_record: Callable[[dict], None], stopping: Callable[[], bool]) -> None: ...


@dataclasses.dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: dict[str, str] = dataclasses.field(default_factory=dict)   # input -> "code: message"
    left: int = 0                 # not reached (stopped by Ctrl-C or a cancel)
    seconds: float = 0.0
    previews: list[str] = dataclasses.field(default_factory=list)
    interrupted: bool = False

    @property
    def rate(self) -> float:
        return (self.done + len(self.failed)) / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {"done": self.done, "skipped": self.skipped, "failed": self.failed, "left": self.left,
                "seconds": round(self.seconds, 2), "photos_per_second": round(self.rate, 3),
                "previews": self.previews, "interrupted": self.interrupted}

    def text(self) -> str:
        lines = [f"done {self.done}, skipped {self.skipped} (done before), failed {len(self.failed)}"
                 + (f", left {self.left} for the next run (interrupted)" if self.interrupted else "")
                 + f"; {self.rate:.2f} photos/s over {self.seconds:.1f} s"]
        lines += [f"  failed: {key}: {why}" for key, why in self.failed.items()]
        lines += [f"  preview: {path}" for path in self.previews]
        return "\n".join(lines)


def pending(units: list[Unit], manifest: Manifest, settings: Settings) -> tuple[list[Unit], int]:
    """The units with only their photos not yet done, and how many were done."""
    content, wanted = settings.content(), settings.wanted()
    left, skipped = [], 0
    for unit in units:
        frames = tuple(f for f in unit.frames if not manifest.is_done(f.key, content, wanted))
        skipped += len(unit.frames) - len(frames)
        if frames:
            left.append(dataclasses.replace(unit, frames=frames))
    return left, skipped


def run_batch(units: list[Unit], settings: Settings, executor: Executor, *, preview: bool = False,
              progress: bool = True, on_progress: Callable[[int, int, int], None] | None = None,
              cancelled: Callable[[], bool] = lambda: False, catch_interrupt: bool = True) -> Summary:
    """Run the units not yet done; Ctrl-C (when catch_interrupt, in the main thread) or cancelled()
    stops handing out work, the photos in flight finish and are recorded.  on_progress(finished,
    failed, total) after each photo (finished counts the failed)."""
    output = Path(settings.output)
    output.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(output)
    todo, skipped = pending(units, manifest, settings)
    total = sum(len(unit.frames) for unit in todo)
    summary = Summary(skipped=skipped)
    interrupted = [False]

    def interrupt(_signal, _frame) -> None:
        interrupted[0] = True
        signal.signal(signal.SIGINT, signal.default_int_handler)   # a second Ctrl-C stops at once
        bar.write("stopping after the photos in flight (Ctrl-C again to stop at once)", file=sys.stderr)

    bar = tqdm(total=total, unit="photo", disable=not progress or not total, file=sys.stderr, smoothing=0.1)

    def on_record(record: dict) -> None:
        manifest.append(record)
        if record["status"] == "done":
            summary.done += 1
        else:
            error = record["error"]
            message = error["message"].removeprefix(f"{record['input']}: ")
            summary.failed[record["input"]] = f"{error['code']}: {message}"
        bar.update(1)
        if on_progress:
            on_progress(summary.done + len(summary.failed), len(summary.failed), total)

    previous = signal.signal(signal.SIGINT, interrupt) if catch_interrupt else None
    start = time.perf_counter()
    try:
        if todo:
            executor.run(todo, on_record, lambda: interrupted[0] or cancelled())
    finally:
        summary.seconds = time.perf_counter() - start
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        bar.close()
        manifest.close()
    summary.interrupted = interrupted[0] or cancelled()
    summary.left = total - summary.done - len(summary.failed)
    if preview and not summary.interrupted:
        summary.previews = _previews(units, manifest, settings)
    return summary


def _previews(units: list[Unit], manifest: Manifest, settings: Settings) -> list[str]:
    """Each clip's normal maps, the frames done so far in order, as a video beside them."""
    written = []
    for unit in units:
        if not unit.clip or "normal" not in settings.options.maps:
            continue
        files = [Path(line["outputs"]["normal"]) for line in (manifest.latest.get(f.key) for f in unit.frames)
                 if line and line.get("status") == "done" and "normal" in line.get("outputs", {})]
        if not files:
            continue
        target = Path(settings.output) / f"{unit.stem}_normal_preview.mp4"
        fps = settings.fps or (video.frame_rate(unit.clip) if unit.video else video.DEFAULT_FPS)
        video.write_preview(files, target, fps)
        written.append(str(target))
    return written
