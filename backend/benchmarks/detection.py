"""Face detection on renders with known faces, and on real portraits.

    python -m backend.benchmarks.detection --data ICT_FACEKIT_DIR       # the table
    python -m backend.benchmarks.detection --portraits DIR              # found count, misses
    python -m backend.benchmarks.detection --data ICT_FACEKIT_DIR --calibrate   # crop framing

The renders come from the training renderer (training/synthetic.py): yaw +-60, pitch +-30 and
roll +-30 degrees, its own lighting or a hard side light or low key, drawn glasses (dark frames
across the eyes) and hair (dark shapes over the forehead), faces from 8% to 90% of the photo's
height pasted into larger backgrounds (the renderer's, or noise), photos with several faces, and
photos with no face.  The new detector (estimator/detection.py) and the Haar cascades it replaced
(kept here only, for the comparison) run on the same photos.  A detection finds a face when its
crop's centre lies within half a face height of the face's known centre.  Crop errors are in % of
the face's height: the centre against the point training centres its crops on, the side against
the side training frames the face with (face height / 0.7, the middle of its 50-90% fill).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ..estimator import geometry
from ..estimator.detection import FaceDetector
from ..estimator.image_io import ImageError, read_image

TRAINING_FILL = 0.7     # face height / crop side in the middle of training's range (0.5-0.9)
SIZES = (512, 2048)


@dataclasses.dataclass
class TrueFace:
    centre: np.ndarray   # (2,) photo pixels: where training centres the crop (FACE_CENTRE)
    height: float        # face height in pixels (chin to hairline of the mean head)
    tags: dict = dataclasses.field(default_factory=dict)  # how it was made, for the breakdown


@dataclasses.dataclass
class Photo:
    image: np.ndarray
    faces: list[TrueFace]
    kind: str            # "face", "several", "background"


# --- the Haar cascades, as the estimator used them before MediaPipe's models ----------------------

class HaarDetector:
    """Frontal and profile cascades (both ways), on a copy at most 640 px a side; crops 1.8 times
    the box, 0.1 box lower (the estimator's crop before this detector)."""

    def __init__(self):
        folder = cv2.data.haarcascades
        self.frontal = cv2.CascadeClassifier(folder + "haarcascade_frontalface_alt2.xml")
        self.profile = cv2.CascadeClassifier(folder + "haarcascade_profileface.xml")

    def crops(self, image: np.ndarray) -> list[geometry.Crop]:
        height, width = image.shape[:2]
        scale = min(1.0, 640 / max(height, width))
        gray = cv2.cvtColor((image * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        side = max(24, int(0.06 * min(gray.shape)))
        def run(cascade, g):
            return [tuple(map(float, b)) for b in cascade.detectMultiScale(
                g, scaleFactor=1.15, minNeighbors=5, minSize=(side, side))]
        boxes = run(self.frontal, gray) + run(self.profile, gray)
        boxes += [(gray.shape[1] - x - w, y, w, h) for x, y, w, h in run(self.profile, gray[:, ::-1].copy())]
        kept: list = []
        for box in sorted(boxes, key=lambda b: b[2] * b[3], reverse=True):
            if all(_overlap(box, k) < 0.3 * box[2] * box[3] for k in kept):
                kept.append(box)
        crops = []
        for x, y, w, h in kept:
            x, y, w, h = x / scale, y / scale, w / scale, h / scale
            side = 1.8 * max(w, h)
            crops.append(geometry.Crop.around((x + w / 2, y + h / 2 + 0.1 * h), side))
        return crops


def _overlap(a, b) -> float:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0)


class MeshDetector:
    def __init__(self):
        self.detector = FaceDetector()

    def crops(self, image: np.ndarray) -> list[geometry.Crop]:
        return [geometry.crop_for_face(face) for face in self.detector.detect(image)]


# --- renders with known faces ---------------------------------------------------------------------

class Scenes:
    """Renders of random people, with their true crop centre and face height."""

    def __init__(self, data: str, seed: int = 2026):  # the thresholds were set on seed 7
        from ..training import synthetic
        from ..training.facekit import FaceKit, held_out_person
        self.synthetic = synthetic
        self.kit = FaceKit(data)
        self.person = lambda i: held_out_person(self.kit, i)[0]
        self.renderers: dict = {}
        self.rng = np.random.default_rng(seed)

    def renderer(self, size: int):
        if size not in self.renderers:
            self.renderers[size] = self.synthetic.FaceRenderer(self.kit, size)
        return self.renderers[size]

    def face(self, index: int, height_px: float, light: str, occluder: str,
             pose: tuple[float, float, float]) -> tuple[np.ndarray, TrueFace]:
        """A square render with the face `height_px` high, and that face's truth in it."""
        rng = self.rng
        fill = rng.uniform(0.5, 0.85)
        side = int(round(height_px / fill))
        render_side = int(min(max(side, 64), 448))
        synthetic = self.synthetic
        view = synthetic.View(synthetic.rotation(*pose), float(np.exp(rng.uniform(np.log(60), np.log(250)))),
                              fill, np.radians(rng.uniform(-8, 8, 2)),
                              rng.uniform(-1, 1, 2) * (1 - fill) * render_side * 0.3)
        renderer = self.renderer(render_side)
        person = self.person(index)
        original_shade = renderer._shade
        if light != "renderer":
            renderer._shade = lambda *a, **k: _dramatic_shade(renderer, light, *a, **k)
        try:
            sample = renderer.render_view(person, view, np.random.default_rng([index, 5]))
        finally:
            renderer._shade = original_shade
        image = sample.image
        landmarks = self._landmarks(renderer, person, view)
        image = _occlude(image, landmarks, occluder, rng)
        centre = render_side / 2 + view.shift
        if render_side != side:
            factor = side / render_side
            image = cv2.resize(image, (side, side), interpolation=cv2.INTER_LINEAR if factor > 1 else cv2.INTER_AREA)
            centre = centre * factor
        return image, TrueFace(centre, fill * side)

    def _landmarks(self, renderer, person, view) -> np.ndarray:
        """The 68 landmarks in render pixels (the renderer's own projection)."""
        synthetic, s = self.synthetic, renderer.size
        vertices = self.kit.vertices(person)[self.kit.landmark_vertices]
        focal = view.fill * s * view.distance / synthetic.FACE_HEIGHT_CM
        centre_cam = view.face_centre()
        cam = (vertices - synthetic.FACE_CENTRE) @ view.head.T + centre_cam
        depth = -cam[:, 2]
        proj = np.stack([focal * cam[:, 0] / depth, -focal * cam[:, 1] / depth], 1)
        face_px = np.array([focal * centre_cam[0] / view.distance, -focal * centre_cam[1] / view.distance])
        return proj - face_px + s / 2 + view.shift


def _dramatic_shade(renderer, light, rng, normals, position, depth_map, albedo, specular_weight, skin, focal):
    """A hard side light (a key from 60-100 degrees off the camera, hard shadows, almost no fill)
    or low key (a dim key from the side or above over a nearly black ambient)."""
    from ..training import synthetic
    side = rng.choice([-1, 1])
    angle = math.radians(rng.uniform(60, 100))
    if light == "low_key":
        angle = math.radians(rng.uniform(30, 80))
    direction = np.array([side * math.sin(angle), rng.uniform(-0.1, 0.5), math.cos(angle)])
    direction /= np.linalg.norm(direction)
    ambient = 0.02 if light == "side" else 0.005
    cosine = normals @ direction
    shadow = synthetic._screen_space_shadow(depth_map, position, direction, focal, 0.5, facing=cosine > 0)
    irradiance = (np.clip(cosine, 0, None) * shadow)[..., None] * np.ones(3, np.float32) + ambient
    radiance = albedo * irradiance
    if light == "low_key":
        radiance = radiance * 0.3
    return radiance.astype(np.float32)


def _occlude(image, landmarks, occluder, rng) -> np.ndarray:
    image = image.copy()
    thickness = max(2, int(0.012 * image.shape[0]))
    if occluder == "glasses":  # dark frames across the eyes and a bridge
        colour = tuple(float(c) for c in rng.uniform(0, 0.12, 3))
        for eye in (landmarks[36:42], landmarks[42:48]):
            centre, width = eye.mean(0), np.ptp(eye[:, 0])
            axes = (max(int(width * 0.95), 2), max(int(width * 0.7), 2))
            cv2.ellipse(image, tuple(int(v) for v in centre), axes, 0, 0, 360, colour, thickness, cv2.LINE_AA)
        cv2.line(image, tuple(int(v) for v in landmarks[39]), tuple(int(v) for v in landmarks[42]), colour,
                 thickness, cv2.LINE_AA)
    elif occluder == "hair":  # dark shapes over the forehead, down to the brows
        colour = tuple(float(c) for c in rng.uniform(0, 0.1, 3) * np.array([1.0, 0.7, 0.5]))
        brows = landmarks[17:27]
        top = brows[:, 1].min() - 1.2 * (landmarks[8, 1] - brows[:, 1].mean()) * 0.5
        for _ in range(3):
            centre = (float(rng.uniform(brows[:, 0].min(), brows[:, 0].max())), float(top))
            axes = (int(np.ptp(brows[:, 0]) * rng.uniform(0.3, 0.6)),
                    int(max(brows[:, 1].mean() - top, 4) * rng.uniform(0.8, 1.1)))
            cv2.ellipse(image, tuple(int(v) for v in centre), axes, float(rng.uniform(-30, 30)), 0, 360,
                        colour, -1, cv2.LINE_AA)
    return image


def _background(rng, size: int, noise) -> np.ndarray:
    from ..training import synthetic
    if rng.random() < 0.5:
        small = synthetic._background(rng, noise, 512)
        return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    # noise texture at several scales
    image = np.zeros((size, size, 3), np.float32)
    for sigma in (1.5, 6, 24):
        layer = rng.standard_normal((size // 4, size // 4, 3)).astype(np.float32)
        layer = cv2.GaussianBlur(layer, (0, 0), sigma / 4 + 0.5)
        image += cv2.resize(layer, (size, size)) * rng.uniform(0.05, 0.2)
    return np.clip(image + rng.uniform(0.2, 0.7, 3), 0, 1).astype(np.float32)


def make_photos(scenes: Scenes, count: int, backgrounds: int) -> list[Photo]:
    """`count` faces: single faces at 512 and 2048, and photos with 2-4 faces, plus
    `backgrounds` photos with none."""
    from ..training.synthetic import NoiseBank
    rng = scenes.rng
    noise = NoiseBank(size=512)
    lights = ("renderer", "side", "low_key")
    occluders = ("none", "none", "glasses", "hair")
    photos: list = []
    made, index = 0, 0
    while made < count:
        size = SIZES[len(photos) % 2]
        several = len(photos) % 5 == 4
        number = int(rng.integers(2, 5)) if several else 1
        canvas = _background(rng, size, noise)
        truths: list = []
        boxes: list = []
        for _ in range(number):
            fraction = math.exp(rng.uniform(math.log(0.08), math.log(0.9 if number == 1 else 0.35)))
            pose = (rng.uniform(-60, 60), rng.uniform(-30, 30), rng.uniform(-30, 30))
            light, occluder = lights[index % 3], occluders[index % 4]
            image, truth = scenes.face(index, fraction * size, light, occluder, pose)
            index += 1
            tags = {"light": light, "occluder": occluder, "photo": f"{size}²",
                    "face height": _bin(100 * fraction, (15, 30), "%"),
                    "|yaw|": _bin(abs(pose[0]), (30, 45), "°"), "|pitch|": _bin(abs(pose[1]), (15,), "°"),
                    "|roll|": _bin(abs(pose[2]), (15,), "°"), "faces in photo": "1" if number == 1 else "2-4"}
            side = image.shape[0]
            for _attempt in range(30):  # a place that overlaps no other face's square
                x, y = (int(rng.integers(min(0, size - side), max(size - side, 0) + 1)) for _ in range(2))
                if all(x + side <= bx or bx + bs <= x or y + side <= by or by + bs <= y for bx, by, bs in boxes):
                    break
            else:
                continue
            boxes.append((x, y, side))
            _paste(canvas, image, x, y)
            truths.append(TrueFace(truth.centre + (x, y), truth.height, tags))
        photos.append(Photo(canvas, truths, "several" if several else "face"))
        made += len(truths)
    for _ in range(backgrounds):
        photos.append(Photo(_background(rng, SIZES[len(photos) % 2], noise), [], "background"))
    return photos


def _bin(value: float, edges: tuple, unit: str) -> str:
    low = 0
    for edge in edges:
        if value < edge:
            return f"{low}-{edge}{unit}"
        low = edge
    return f">={low}{unit}"


def _paste(canvas, image, x, y) -> None:
    h, w = canvas.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + image.shape[1], w), min(y + image.shape[0], h)
    canvas[y0:y1, x0:x1] = image[y0 - y:y1 - y, x0 - x:x1 - x]


# --- scoring --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Score:
    faces: int = 0
    found: int = 0
    false_on_faces: int = 0
    false_on_backgrounds: int = 0
    centre_errors: list = dataclasses.field(default_factory=list)
    scale_errors: list = dataclasses.field(default_factory=list)
    seconds: dict = dataclasses.field(default_factory=lambda: {s: [] for s in SIZES})
    by_tag: dict = dataclasses.field(default_factory=dict)  # (tag, value) -> [found, faces]


def score(detector, photos: list[Photo]) -> Score:
    result = Score()
    for photo in photos:
        start = time.perf_counter()
        crops = detector.crops(photo.image)
        result.seconds[photo.image.shape[0]].append(time.perf_counter() - start)
        unmatched = list(crops)
        for truth in photo.faces:
            result.faces += 1
            distances = [np.linalg.norm(np.array(c.centre) - truth.centre) for c in unmatched]
            found = bool(distances) and min(distances) < 0.5 * truth.height
            for tag in truth.tags.items():
                counts = result.by_tag.setdefault(tag, [0, 0])
                counts[0] += found
                counts[1] += 1
            if found:
                crop = unmatched.pop(int(np.argmin(distances)))
                result.found += 1
                result.centre_errors.append(100 * min(distances) / truth.height)
                result.scale_errors.append(100 * abs(crop.side * TRAINING_FILL / truth.height - 1))
        if photo.kind == "background":
            result.false_on_backgrounds += len(unmatched)
        else:
            result.false_on_faces += len(unmatched)
    return result


def print_table(rows: dict[str, Score], photos: list[Photo]) -> None:
    backgrounds = sum(p.kind == "background" for p in photos)
    faces = sum(len(p.faces) for p in photos)
    print(f"{faces} faces in {len(photos) - backgrounds} photos "
          f"({sum(p.kind == 'several' for p in photos)} with several faces), {backgrounds} photos without")
    print(f"{'detector':<24}{'found':>14}{'false (faces)':>15}{'false (bg)':>12}"
          f"{'centre err %':>14}{'scale err %':>13}" + "".join(f"{f'ms {s}²':>10}" for s in SIZES))
    for name, s in rows.items():
        found = f"{s.found}/{s.faces} {100 * s.found / max(s.faces, 1):.1f}%"
        centre = f"{np.median(s.centre_errors):.1f}" if s.centre_errors else "-"
        scale = f"{np.median(s.scale_errors):.1f}" if s.scale_errors else "-"
        ms = "".join(f"{1000 * np.mean(s.seconds[size]):>10.1f}" for size in SIZES)
        print(f"{name:<24}{found:>14}{s.false_on_faces:>15}{s.false_on_backgrounds:>12}{centre:>14}{scale:>13}{ms}")
    print("(crop errors: medians over the faces each detector found)")
    print(f"\nfound, by how the face was made:\n{'':<28}" + "".join(f"{name:>24}" for name in rows))
    tags = sorted({tag for s in rows.values() for tag in s.by_tag})
    for tag in tags:
        cells = []
        for s in rows.values():
            found, total = s.by_tag.get(tag, (0, 0))
            cells.append(f"{found}/{total} {100 * found / max(total, 1):5.1f}%")
        print(f"{tag[0] + ' ' + tag[1]:<28}" + "".join(f"{c:>24}" for c in cells))


def portraits(folder: Path) -> None:
    detector = FaceDetector()
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    misses, several, seconds = [], [], []
    for path in paths:
        try:
            image = read_image(path)
        except ImageError as error:
            print(f"unreadable: {error}")
            continue
        start = time.perf_counter()
        faces = detector.detect(image)
        seconds.append(time.perf_counter() - start)
        if not faces:
            misses.append(path.name)
        elif len(faces) > 1:
            several.append(f"{path.name} ({len(faces)})")
    found = len(paths) - len(misses)
    print(f"{folder}: a face found in {found}/{len(paths)} photos ({100 * found / len(paths):.1f}%), "
          f"{np.mean(seconds) * 1000:.1f} ms per photo")
    print(f"missed: {', '.join(misses) or 'none'}")
    print(f"more than one face: {', '.join(several) or 'none'}")


def calibrate(scenes: Scenes, count: int) -> None:
    """Fit the crop framing constants of geometry (CENTRE_DOWN, CROP_SIDE) on upright faces."""
    detector = FaceDetector()
    downs, sides = [], []
    for index in range(count):
        pose = (scenes.rng.uniform(-45, 45), scenes.rng.uniform(-20, 20), scenes.rng.uniform(-20, 20))
        image, truth = scenes.face(10_000 + index, 180, "renderer", "none", pose)
        canvas = np.full((512, 512, 3), 0.4, np.float32)
        offset = (512 - image.shape[0]) // 2
        _paste(canvas, image, offset, offset)
        faces = detector.detect(canvas)
        if not faces:
            continue
        face = faces[0]
        size = geometry.face_size(face)
        points = face.landmarks[:, :2]
        eyes = (points[[33, 133]].mean(0) + points[[362, 263]].mean(0)) / 2
        a = math.radians(face.roll)
        down = np.array([math.sin(a), math.cos(a)])
        downs.append(float((truth.centre + offset - eyes) @ down) / size)
        sides.append(truth.height / TRAINING_FILL / size)
    def spread(v):
        return "{:.3f}..{:.3f}".format(*np.percentile(v, [10, 90]))
    print(f"{len(downs)} faces: CENTRE_DOWN = {np.median(downs):.3f} (10-90%: {spread(downs)}), "
          f"CROP_SIDE = {np.median(sides):.3f} (10-90%: {spread(sides)})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="the ICT-FaceKit folder (renders)")
    parser.add_argument("--portraits", type=Path, help="a folder of real portraits")
    parser.add_argument("--faces", type=int, default=500)
    parser.add_argument("--backgrounds", type=int, default=100)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
          f"opencv {cv2.__version__}")
    if args.portraits:
        portraits(args.portraits)
    if args.data:
        scenes = Scenes(args.data)
        if args.calibrate:
            calibrate(scenes, args.faces)
            return
        start = time.perf_counter()
        photos = make_photos(scenes, args.faces, args.backgrounds)
        print(f"rendered in {time.perf_counter() - start:.0f} s")
        rows = {"MediaPipe (this)": score(MeshDetector(), photos),
                "Haar cascades (before)": score(HaarDetector(), photos)}
        print_table(rows, photos)
    if not (args.data or args.portraits):
        parser.error("give --data and/or --portraits")


if __name__ == "__main__":
    main()
