import cv2
import numpy as np
import pytest

from backend.estimator import geometry
from backend.estimator.detection import FaceBox, FaceDetector
from helpers import sphere_normals


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def photo(astronaut):
    return astronaut.astype(np.float32) / 255


def _place(canvas_hw, photo, scale, offsets):
    """Gray canvas with scaled copies of the photo at the given top-left offsets."""
    canvas = np.full((*canvas_hw, 3), 0.5, np.float32)
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    for x, y in offsets:
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    return canvas


def test_finds_the_astronauts_face(detector, photo):
    faces = detector.detect(photo)
    assert len(faces) == 1
    cx, cy = faces[0].centre
    # Her face sits around x 215, y 115 in the 512x512 portrait
    assert 180 < cx < 250 and 80 < cy < 150
    assert 60 < faces[0].width < 160


def test_a_face_placed_at_a_known_box_is_found_there(detector, photo):
    reference = detector.detect(photo)[0]
    scale, (x, y) = 0.7, (430, 260)
    canvas = _place((800, 1000), photo, scale, [(x, y)])
    expected = FaceBox(x + reference.x * scale, y + reference.y * scale,
                       reference.width * scale, reference.height * scale)
    faces = detector.detect(canvas)
    assert len(faces) == 1
    assert faces[0].iou(expected) > 0.6


def test_several_faces_are_all_found(detector, photo):
    canvas = _place((600, 1200), photo, 0.9, [(40, 60), (640, 100)])
    centres = sorted(face.centre[0] for face in detector.detect(canvas))
    assert len(centres) == 2
    assert centres[0] < 600 < centres[1]


def test_no_face_in_a_plain_picture(detector):
    y, x = np.mgrid[0:480, 0:640] / 640.0
    assert detector.detect(np.dstack([x, y, x * y]).astype(np.float32)) == []


def test_crop_is_a_square_around_the_face():
    crop = geometry.crop_for_face(FaceBox(100, 50, 80, 100))
    assert crop.side == pytest.approx(100 * geometry.CROP_MARGIN)
    centre_x = crop.x0 + crop.side / 2
    assert centre_x == pytest.approx(140)


def test_cut_then_paste_returns_the_same_pixels_in_place(photo):
    crop = geometry.Crop(x0=150.0, y0=40.0, side=200.0)
    cut = geometry.cut_crop(photo, crop, 256)
    patch = geometry.paste_back(cut, np.ones((256, 256), np.float32), crop, 512, 512)
    assert (patch.rows, patch.cols) == (slice(40, 240), slice(150, 350))
    assert np.abs(patch.normals - photo[patch.rows, patch.cols]).mean() < 0.02
    assert patch.mask.min() > 0.99


def test_patch_is_clipped_to_the_photo_and_masked_to_the_window():
    crop = geometry.Crop(x0=-20.5, y0=450.75, side=100.0)   # spans x -20.5..79.5, y 450.75..550.75
    patch = geometry.paste_back(np.ones((64, 64, 3), np.float32), np.ones((64, 64), np.float32),
                                crop, 512, 512)
    assert (patch.rows, patch.cols) == (slice(450, 512), slice(0, 80))
    assert patch.normals.shape == (62, 80, 3)
    assert patch.mask[0].max() == 0            # row 450's centre (450.5) lies above the window
    assert patch.mask[1:].min() == 1.0         # every pixel whose centre is inside counts


def test_paste_back_keeps_the_orientation_of_camera_space_normals():
    """A sphere's normals pasted into a photo still point right on the right and up at the top:
    the crop/paste path neither flips nor transposes."""
    crop = geometry.Crop(x0=300.0, y0=100.0, side=200.0)
    patch = geometry.paste_back(sphere_normals(256)[0], np.ones((256, 256), np.float32), crop, 480, 640)
    normals, mask = geometry.composite([patch], 480, 640)
    assert normals[200, 490, 0] > 0.8 and normals[200, 310, 0] < -0.8   # right side +x, left -x
    assert normals[110, 400, 1] > 0.8 and normals[290, 400, 1] < -0.8   # top +y, bottom -y
    assert normals[200, 400, 2] > 0.99
    assert np.allclose(normals[10, 10], [0, 0, 1]) and mask[10, 10] == 0
    assert np.allclose(np.linalg.norm(normals, axis=-1), 1, atol=1e-5)


def test_overlapping_faces_each_keep_their_strongest_pixels():
    def patch(columns, axis, strength):
        normals = np.zeros((100, columns.stop - columns.start, 3), np.float32)
        normals[..., axis] = 1
        mask = np.full(normals.shape[:2], strength, np.float32)
        return geometry.Patch(slice(0, 100), columns, normals, mask)

    up, right = patch(slice(0, 120), 1, 1.0), patch(slice(80, 200), 0, 0.5)
    normals, mask = geometry.composite([up, right], 100, 200)
    assert np.allclose(normals[50, 100], [0, 1, 0])            # the left face is stronger here
    assert mask[50, 150] == 0.5                                 # only the right face reaches here
    assert np.allclose(normals[50, 150], np.array([0.5, 0, 0.5]) / np.sqrt(0.5))  # half-way to flat
    assert np.allclose(normals[50, 10], [0, 1, 0])


def test_face_mask_is_soft_and_centred():
    mask = geometry.face_mask(256)
    assert mask[128, 128] == 1.0 and mask[0, 0] == 0.0
    assert 0 < mask[128, 128 + 86] < 1 or 0 < mask[128, 128 + 80] < 1  # a feathered edge
