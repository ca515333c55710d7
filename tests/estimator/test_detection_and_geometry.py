
import cv2
import numpy as np
import pytest

from backend.estimator import geometry
from backend.estimator.detection import FULL_RANGE, SHORT_RANGE, FaceDetector, anchors
from backend.estimator.faces import roll_from_eyes
from backend.estimator.graph_module import GraphModule, ModelFileError
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
        part = canvas[y:y + small.shape[0], x:x + small.shape[1]]
        part[:] = small[:part.shape[0], :part.shape[1]]
    return canvas


def _rolled(photo, centre, degrees):
    """The photo turned counter-clockwise (as seen) about centre, and the matrix that did it."""
    turn = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return cv2.warpAffine(photo, turn, photo.shape[1::-1], borderMode=cv2.BORDER_REFLECT), turn


def test_the_astronauts_landmarks_lie_on_her_eyes_nose_and_mouth(detector, photo):
    [face] = detector.detect(photo)
    # measured by eye on the 512x512 portrait: outer eye corners, nose tip, mouth
    for name, (x, y) in {"right_eye_outer": (194, 101), "left_eye_outer": (257, 105),
                         "nose_tip": (223, 131), "upper_lip": (223, 143)}.items():
        assert np.hypot(*(face.point(name) - (x, y))) < 6, name
    assert face.landmarks.shape == (478, 3)     # the mesh's 468, then the irises' 2 x 5
    assert -8 < face.roll < 2 and face.score > 0.8 and face.presence > 0.9
    x, y, w, h = face.box
    assert 170 < x < 190 and 60 < y < 80 and 80 < w < 110 and 95 < h < 120


def test_the_irises_lie_between_the_eye_corners_on_the_darkest_spot(detector, photo):
    """Iris centres 468 (her right eye, 33-133) and 473 (her left, 362-263), each ringed by its
    four other points, on the darkest pixel of the eye (a blurred grey image's minimum between
    the corners)."""
    [face] = detector.detect(photo)
    grey = cv2.GaussianBlur(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), (0, 0), 1.5)
    for centre, corners, name in ((468, (33, 133), "right_iris"), (473, (362, 263), "left_iris")):
        iris = face.landmarks[centre, :2]
        assert np.array_equal(face.point(name), iris)
        first, second = face.landmarks[list(corners), :2]
        low, high = sorted((first[0], second[0]))
        assert low + 4 < iris[0] < high - 4
        assert abs(iris[1] - (first[1] + second[1]) / 2) < 4
        half = int(0.3 * (high - low)) + 1
        top = int((first[1] + second[1]) / 2) - half
        region = grey[top:top + 2 * half + 1, int(low):int(high) + 1]
        row, column = np.unravel_index(region.argmin(), region.shape)
        assert np.hypot(*(iris - (int(low) + column + 0.5, top + row + 0.5))) < 3, name
        radii = np.linalg.norm(face.landmarks[centre + 1:centre + 5, :2] - iris, axis=1)
        assert (radii > 2.5).all() and (radii < 6).all()      # her irises are ~8 px across


def test_the_mirror_image_gives_the_mirrored_face(detector, photo):
    [face] = detector.detect(photo)
    [mirrored] = detector.detect(photo[:, ::-1].copy())
    x, y, w, h = face.box
    assert np.allclose(mirrored.box, (512 - x - w, y, w, h), atol=6)
    assert mirrored.roll == pytest.approx(-face.roll, abs=2)
    # the person's right eye is now on the other side of the photo
    assert mirrored.point("right_eye_outer")[0] == pytest.approx(512 - face.point("left_eye_outer")[0], abs=4)
    for mine, its in (("right_iris", "left_iris"), ("left_iris", "right_iris")):
        assert np.hypot(*(mirrored.point(mine) - (512 - face.point(its)[0], face.point(its)[1]))) < 1.5


def test_a_rolled_face_is_found_with_its_roll_and_its_crop_turns_with_it(detector, photo):
    [face] = detector.detect(photo)
    rolled, turn = _rolled(photo, face.centre, 30)
    [found] = detector.detect(rolled)
    assert found.roll == pytest.approx(face.roll + 30, abs=3)
    moved = face.landmarks[:, :2] @ turn[:, :2].T + turn[:, 2]
    assert np.abs(found.landmarks[:, :2] - moved).mean() < 3
    upright, crop = geometry.crop_for_face(face), geometry.crop_for_face(found)
    assert crop.angle == found.roll
    assert np.hypot(*(np.array(crop.centre) - turn @ (*upright.centre, 1))) < 3
    assert crop.side == pytest.approx(upright.side, rel=0.03)


@pytest.mark.parametrize("quarters", [1, 3])
def test_a_quarter_turned_face_is_read_with_its_whole_roll(detector, photo, quarters):
    """The detector reads a quarter-turned face's roll 20-40 degrees short; the mesh, run again on
    its own square until the roll settles, closes the gap (two passes left it 7-23 short)."""
    [face] = detector.detect(photo)
    [turned] = detector.detect(np.ascontiguousarray(np.rot90(photo, quarters)))
    assert (turned.roll - face.roll - 90 * quarters + 180) % 360 - 180 == pytest.approx(0, abs=2)


def test_two_faces_side_by_side_are_both_found(detector, photo):
    canvas = _place((600, 1200), photo, 0.9, [(40, 60), (640, 100)])
    centres = sorted(face.centre[0] for face in detector.detect(canvas))
    assert len(centres) == 2
    assert centres[0] < 600 < centres[1]


def test_small_faces_in_a_large_photo_are_all_found(detector, photo):
    """A 2000-px-wide photo with three faces about 150 px high (the short-range model alone,
    on the whole photo, finds none of them)."""
    offsets = [(100, 300), (800, 600), (1400, 200)]
    canvas = _place((1333, 2000), photo, 1.35, offsets)
    faces = detector.detect(canvas)
    assert len(faces) == 3
    for face, (x, y) in zip(sorted(faces, key=lambda f: f.centre[0]), offsets):
        expected = np.array([x + 225 * 1.35, y + 125 * 1.35])
        assert np.hypot(*(np.array(face.centre) - expected)) < 30
        assert 120 < face.box[3] < 180


def test_no_face_in_a_plain_picture_or_noise(detector):
    y, x = np.mgrid[0:480, 0:640] / 640.0
    assert detector.detect(np.dstack([x, y, x * y]).astype(np.float32)) == []
    noise = np.random.default_rng(0).random((512, 512, 3)).astype(np.float32)
    assert detector.detect(noise) == []


def test_anchors_are_mediapipes():
    assert anchors(SHORT_RANGE).shape == (896, 2) and anchors(FULL_RANGE).shape == (2304, 2)
    assert np.allclose(anchors(SHORT_RANGE)[:2], [[4, 4]] * 2)       # input pixels
    assert np.allclose(anchors(SHORT_RANGE)[-1], [120, 120])
    assert anchors(SHORT_RANGE, 512).shape == (896 * 16, 2)          # the window slid over 512²


def test_a_missing_model_file_names_itself_and_the_conversion(tmp_path):
    with pytest.raises(ModelFileError, match=r"face_landmark\.safetensors is missing.*convert_mediapipe"):
        GraphModule.load(tmp_path / "face_landmark.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ModelFileError, match="unreadable"):
        GraphModule.load(tmp_path / "broken.safetensors")


def test_roll_is_counter_clockwise_as_seen():
    assert roll_from_eyes(np.array([0.0, 0.0]), np.array([10.0, 0.0])) == 0
    # the person's left eye higher in the photo (smaller y): the face turned counter-clockwise
    assert roll_from_eyes(np.array([0.0, 0.0]), np.array([10.0, -10.0])) == pytest.approx(45)


def test_cut_then_paste_returns_the_same_pixels_in_place(photo):
    crop = geometry.Crop(x0=150.0, y0=40.0, side=200.0)
    cut = geometry.cut_crop(photo, crop, 256)
    patch = geometry.paste_back(cut, np.ones((256, 256), np.float32), crop, 512, 512)
    assert (patch.rows, patch.cols) == (slice(40, 240), slice(150, 350))
    assert np.abs(patch.values - photo[patch.rows, patch.cols]).mean() < 0.02
    assert patch.mask.min() > 0.99


def test_a_turned_crop_is_upright_and_pastes_back_in_place(photo):
    rolled, turn = _rolled(photo, (250.0, 140.0), 30)
    upright = geometry.cut_crop(photo, geometry.Crop.around((250, 140), 200), 256)
    crop = geometry.Crop.around((250, 140), 200, angle=30)
    cut = geometry.cut_crop(rolled, crop, 256)
    assert np.abs(cut - upright)[20:-20, 20:-20].mean() < 0.03
    patch = geometry.paste_back(cut, np.ones((256, 256), np.float32), crop, 512, 512)
    inside = patch.mask > 0.99
    assert inside.sum() > 0.95 * 200 * 200
    assert np.abs(patch.values - rolled[patch.rows, patch.cols])[inside].mean() < 0.03
    # the mask ends at the turned square's edges, not at its bounding box
    assert patch.mask[0, 0] == 0 and patch.mask.shape[0] > 260


def test_crop_normals_turn_with_the_face():
    """A face rolled 90 degrees counter-clockwise: its right (+x in the upright crop) is the
    photo's up (+y), its up is the photo's left."""
    turned = np.array([[1.0, 0, 0], [0, 1.0, 0]]) @ geometry.crop_turn(geometry.Crop(0, 0, 10, angle=90))
    assert np.allclose(turned, [[0, 1, 0], [-1, 0, 0]], atol=1e-6)


def test_patch_is_clipped_to_the_photo_and_masked_to_the_window():
    crop = geometry.Crop(x0=-20.5, y0=450.75, side=100.0)   # spans x -20.5..79.5, y 450.75..550.75
    patch = geometry.paste_back(np.ones((64, 64, 3), np.float32), np.ones((64, 64), np.float32),
                                crop, 512, 512)
    assert (patch.rows, patch.cols) == (slice(450, 512), slice(0, 80))
    assert patch.values.shape == (62, 80, 3)
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


def test_a_turned_sphere_pastes_back_as_the_same_sphere():
    """A sphere is the same whatever its roll: cut turned, its normals turned back, it must
    still point right on the right and up at the top of the photo."""
    crop = geometry.Crop(x0=300.0, y0=100.0, side=200.0, angle=35)
    sphere = sphere_normals(256)[0]
    turned = sphere @ geometry.crop_turn(crop).astype(np.float32)
    patch = geometry.paste_back(turned, np.ones((256, 256), np.float32), crop, 480, 640)
    normals, _ = geometry.composite([patch], 480, 640)
    yy, xx = np.mgrid[0:480, 0:640] + 0.5
    dx, dy = (xx - 400) / 100, -(yy - 200) / 100
    inside = dx ** 2 + dy ** 2 < 0.8
    expected = np.dstack([dx, dy, np.sqrt(np.clip(1 - dx ** 2 - dy ** 2, 0, 1))])
    angle = np.degrees(np.arccos(np.clip((normals * expected).sum(-1), -1, 1)))
    assert angle[inside].mean() < 2


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


def test_a_window_fades_only_toward_its_edges_in_the_photo():
    """Inside the photo a window fades toward all four edges alike; toward an edge beyond the
    photo (here its bottom, and with a roll its turned bottom) it does not fade at all."""
    size, border = 100, 0.1
    inside = geometry.window_fade(geometry.Crop(50, 50, 200), size, border, 400, 400)
    assert inside[50, 50] == 1 and inside[50, 0] < 0.1 and inside[0, 50] < 0.1
    assert np.allclose(inside, inside[::-1]) and np.allclose(inside, inside.T)
    overhanging = geometry.window_fade(geometry.Crop(50, 250, 200), size, border, 400, 400)
    # rows from 72 lie below the photo or within a quarter of the fade of it: above them it fades as
    # before, and nowhere toward the bottom
    assert np.allclose(overhanging[:72], inside[:72]) and np.all(overhanging[60:, 10:90] == 1)
    turned = geometry.window_fade(geometry.Crop(50, 250, 200, angle=90), size, border, 400, 400)
    # a quarter turn puts the photo's bottom at one side of the crop: that side no longer fades
    unfaded = [np.allclose(side, 1) for side in (turned[5:95, 0], turned[5:95, -1], turned[0, 5:95], turned[-1, 5:95])]
    assert sum(unfaded) == 1
