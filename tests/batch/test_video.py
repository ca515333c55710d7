"""A video the test films (a few dozen frames, written with OpenCV's bundled FFmpeg) and an EXR
image sequence through `python -m backend batch`, faces tracked, with a preview video."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
import cv2  # noqa: E402

from backend.batch.video import frame_count  # noqa: E402
from backend.core.colour import srgb_to_linear  # noqa: E402
from backend.estimator.image_io import read_normal_png  # noqa: E402

from .conftest import SIZE, manifest_lines, run_batch  # noqa: E402

FRAMES = 24


@pytest.mark.slow
def test_a_video_and_an_exr_sequence_through_batch(tmp_path, small_astronaut, untrained_weights):
    clip = tmp_path / "take.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 24, (SIZE, SIZE))
    assert writer.isOpened()
    for t in range(FRAMES):           # the camera drifts a pixel a frame
        writer.write(np.roll(small_astronaut, t, axis=1)[..., ::-1].copy())
    writer.release()
    assert frame_count(clip) == FRAMES
    plates = tmp_path / "plates"
    plates.mkdir()
    for t in range(3):
        linear = srgb_to_linear(np.roll(small_astronaut, 2 * t, axis=0).astype(np.float32) / 255)
        cv2.imwrite(str(plates / f"plate.{t + 1001:04d}.exr"), linear[..., ::-1].astype(np.float32))
    out = tmp_path / "out"
    done = run_batch(clip, plates / "plate.%04d.exr", "-o", out, "--weights", untrained_weights,
                     "--preview", "--exr", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["done"] == FRAMES + 3 and not summary["failed"]
    for t in range(FRAMES):
        assert read_normal_png(out / f"take.{t:06d}_normal.png").shape == (SIZE, SIZE, 3)
        assert (out / f"take.{t:06d}_normal.exr").is_file()
    for t in range(3):
        assert read_normal_png(out / f"plate.{t + 1001:04d}_normal.png").shape == (SIZE, SIZE, 3)
    assert len(manifest_lines(out)) == FRAMES + 3
    previews = sorted(summary["previews"])
    assert previews == sorted([str(out / "take_normal_preview.mp4"), str(out / "plate_normal_preview.mp4")])
    assert frame_count(out / "take_normal_preview.mp4") == FRAMES
    capture = cv2.VideoCapture(str(out / "plate_normal_preview.mp4"))
    ok, first = capture.read()
    assert ok and first.shape == (SIZE, SIZE, 3)
    # the preview shows the normal map (8-bit), not the photo
    expected = cv2.imread(str(out / "plate.1001_normal.png"), cv2.IMREAD_COLOR)
    assert np.abs(first.astype(int) - expected).mean() < 6
