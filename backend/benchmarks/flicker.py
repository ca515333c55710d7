"""Flicker on a clip of a still portrait, before and after tracking faces over the frames.

`python -m backend.benchmarks.flicker [--frames 24] [--size 512]`: scikit-image's astronaut (a
still person) filmed by a shaking camera: each frame shifted and turned a little (a random walk,
about a pixel and a tenth of a degree a frame) with fresh sensor noise.  Every frame is estimated
twice through `Estimator.estimate`: each frame's crops from its own detection, then from faces
tracked over the clip (batch/tracking.py, as `batch` does for videos).  Flicker is the mean angle
between consecutive frames' normals on the person, after undoing the camera's known motion (so
what is left is the estimate changing, not the person moving in the frame).  The crops' jitter
is measured the same way: how far the face crop's corners move between frames in the still
image's frame (0 for crops that follow the face exactly).
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import cv2
import numpy as np

from ..batch.tracking import FaceTracker
from ..core.options import EstimateOptions
from ..estimator import Estimator, Photo
from ..estimator import geometry
from ..estimator.faces import Face

SHAKE_PIXELS = 0.8       # the random walk's step, pixels (per axis) a frame, on a 512 frame
SHAKE_DEGREES = 0.1      # its step in roll
NOISE = 3.0 / 255        # sensor noise, standard deviation


def shaky_clip(image: np.ndarray, frames: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The frames (float RGB) and each frame's 2x3 affine from the still image into it."""
    rng = np.random.default_rng(seed)
    size = image.shape[0]
    scale = size / 512
    shift, angle = np.zeros(2, np.float64), 0.0
    clip, motions = [], []
    for _ in range(frames):
        shift = shift + rng.normal(0, SHAKE_PIXELS * scale, 2)
        angle += rng.normal(0, SHAKE_DEGREES)
        motion = np.asarray(cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0), np.float64)
        motion[:, 2] = motion[:, 2] + shift
        frame = cv2.warpAffine(image, motion, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        clip.append(np.clip(frame + rng.normal(0, NOISE, frame.shape), 0, 1).astype(np.float32))
        motions.append(motion)
    return clip, motions


def _to_still(values: np.ndarray, motion: np.ndarray) -> np.ndarray:
    size = values.shape[1]
    return cv2.warpAffine(values, motion, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


def flicker(normals: list[np.ndarray], masks: list[np.ndarray], motions: list[np.ndarray]) -> float:
    """Mean degrees between consecutive frames' normals (their x, y turned back with the camera's
    roll) on the pixels that are the person in both, in the still image's frame."""
    angles = []
    for t in range(1, len(normals)):
        pair = []
        for n, m, motion in ((normals[t - 1], masks[t - 1], motions[t - 1]), (normals[t], masks[t], motions[t])):
            still = _to_still(n, motion)
            turn = motion[:, :2] / np.linalg.norm(motion[0, :2])        # the frame's roll, image axes
            xy = still[..., :2] * [1, -1] @ turn * [1, -1]              # OpenGL y up: flip, turn back, flip
            still = np.concatenate([xy, still[..., 2:]], -1)
            pair.append((still / np.linalg.norm(still, axis=-1, keepdims=True).clip(1e-6), _to_still(m, motion)))
        (a, mask_a), (b, mask_b) = pair
        person = (mask_a > 0.5) & (mask_b > 0.5)
        cosine = np.clip((a * b).sum(-1)[person], -1, 1)
        angles.append(float(np.degrees(np.arccos(cosine)).mean()))
    return float(np.mean(angles))


def crop_jitter(faces: list[Face], motions: list[np.ndarray]) -> float:
    """Mean pixels the face crop's corners move between consecutive frames, in the still image's
    frame (one face a frame)."""
    corners = []
    for face, motion in zip(faces, motions):
        back = cv2.invertAffineTransform(motion)
        corners.append(geometry.crop_for_face(face).corners() @ back[:, :2].T + back[:, 2])
    return float(np.linalg.norm(np.diff(np.stack(corners), axis=0), axis=-1).mean())


def measure(estimator: Estimator, clip: list[np.ndarray], motions: list[np.ndarray], *, track: bool,
            fps: float = 24.0) -> dict:
    options = EstimateOptions(normals_dtype="float32", outputs=("normal", "mask"))
    tracker = FaceTracker(fps) if track else None
    normals, masks, faces = [], [], []
    start = time.perf_counter()
    for frame in clip:
        [result] = estimator.estimate([Photo(frame, options, track=tracker)])
        if result.error is not None:
            raise RuntimeError(f"a frame failed: {result.error}")
        assert result.normals is not None and result.mask is not None
        normals.append(result.normals)
        masks.append(result.mask.astype(np.float32) / 255)
        faces.append(result.faces[0])
    return {"flicker_degrees": round(flicker(normals, masks, motions), 3),
            "crop_jitter_pixels": round(crop_jitter(faces, motions), 3),
            "seconds_per_frame": round((time.perf_counter() - start) / len(clip), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.benchmarks.flicker", description=__doc__)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=512, help="the clip's side in pixels")
    parser.add_argument("--weights", help="weights file (default: the shipped model)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    from skimage import data
    image = cv2.resize(data.astronaut(), (args.size, args.size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    clip, motions = shaky_clip(image, args.frames)
    estimator = Estimator(args.weights, device=args.device)
    report = {"frames": args.frames, "size": args.size, "machine": f"{platform.node()} {platform.processor()} "
              f"({__import__('os').cpu_count()} cores)", "date": time.strftime("%Y-%m-%d"),
              "per_frame_detection": measure(estimator, clip, motions, track=False),
              "tracked_and_smoothed": measure(estimator, clip, motions, track=True)}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
