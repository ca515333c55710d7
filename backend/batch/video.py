"""Frames in and a preview out, through OpenCV (opencv-python-headless ships its own FFmpeg, so
common video files decode without anything else installed).

Videos are decoded in order (seeking is not frame-exact in every codec); image sequences are read
frame by frame: EXR plates (scene-linear) are sRGB-encoded for the networks, other files go to the
estimator as files.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..core.colour import linear_to_srgb

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")    # read before OpenCV first touches EXR
import cv2  # noqa: E402

DEFAULT_FPS = 24.0        # an image sequence's frame rate, unless --fps says otherwise
PREVIEW_CODEC = "mp4v"    # MPEG-4 Part 2: OpenCV's bundled FFmpeg writes it without extra libraries


class VideoError(ValueError):
    """A video that cannot be opened or decoded."""


def _open(path: str | Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoError(f"{path}: cannot open the video (not a video, damaged, or a codec "
                         f"OpenCV's FFmpeg does not decode)")
    return capture


def frame_count(path: str | Path) -> int:
    """Frames in a video, counted by decoding (containers' own counts can be wrong)."""
    capture = _open(path)
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    if not count:
        raise VideoError(f"{path}: the video holds no frame OpenCV can decode")
    return count


def frame_rate(path: str | Path) -> float:
    capture = _open(path)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return fps if fps and fps > 0 else DEFAULT_FPS


def video_frames(path: str | Path, wanted: set[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB uint8 frame) for the wanted frames, in order."""
    capture = _open(path)
    try:
        index, last = 0, max(wanted, default=-1)
        while index <= last and capture.grab():
            if index in wanted:
                ok, frame = capture.retrieve()
                if not ok:
                    raise VideoError(f"{path}: frame {index} does not decode")
                yield index, frame[..., ::-1].copy()
            index += 1
    finally:
        capture.release()


def sequence_frame(path: str) -> str | np.ndarray:
    """An image sequence's frame as the estimator takes it: the file, or an EXR's pixels."""
    if not path.lower().endswith(".exr"):
        return path
    pixels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise VideoError(f"{path}: not a readable EXR file")
    if pixels.ndim == 3:
        pixels = pixels[..., 2::-1] if pixels.shape[2] >= 3 else pixels[..., :1]
    return linear_to_srgb(np.clip(np.nan_to_num(pixels.astype(np.float32)), 0.0, 1.0)).astype(np.float32)


def write_preview(normal_files: list[Path], target: Path, fps: float) -> None:
    """The normal maps (16-bit PNGs) as an 8-bit video, written beside and then moved into place."""
    first = cv2.imread(str(normal_files[0]), cv2.IMREAD_COLOR)
    height, width = first.shape[:2]
    partial = target.with_name(f".{target.stem}.{os.getpid()}.partial{target.suffix}")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter.fourcc(*PREVIEW_CODEC), fps, (width, height))
    if not writer.isOpened():
        raise VideoError(f"{target}: OpenCV cannot write {PREVIEW_CODEC} video here")
    try:
        for file in normal_files:
            frame = cv2.imread(str(file), cv2.IMREAD_COLOR)    # 8-bit, BGR as the writer wants
            if frame is None or frame.shape[:2] != (height, width):
                frame = np.zeros((height, width, 3), np.uint8) if frame is None else cv2.resize(frame, (width, height))
            writer.write(frame)
    finally:
        writer.release()
    os.replace(partial, target)
