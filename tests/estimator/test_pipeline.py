import threading

import cv2
import numpy as np
import pytest
import torch

from backend.core.encoding import normals_from_uint16
from backend.core.options import EstimateOptions
from backend.estimator import Estimator, NoFaceError, Photo, WeightsError
from backend.estimator.image_io import to_rgb_float
from backend.estimator.networks import ModelConfig, build_model
from backend.estimator.person_check import person_fraction, person_warnings
from backend.estimator.weights import load_model, read_metadata, save_weights


@pytest.fixture(scope="module")
def estimator(untrained_weights):
    return Estimator(untrained_weights, device="cpu")


def test_photo_gives_full_size_unit_normals_and_a_person_mask(estimator, astronaut):
    result = estimator.normal_map(astronaut.astype(np.float32) / 255)
    assert result.normals.shape == (512, 512, 3) and result.normals.dtype == np.float32
    assert np.allclose(np.linalg.norm(result.normals, axis=-1), 1, atol=1e-4)
    assert result.mask.shape == (512, 512)
    assert len(result.faces) == 1
    face = result.faces[0]
    cx, cy = map(int, face.point("nose_tip"))
    assert result.mask[cy, cx] == 1.0
    # the person reaches down to her shoulders; the background (the flag, top left) stays flat
    assert result.mask[250, 200] > 0.9 and result.mask[250, 300] > 0.9
    assert result.mask[:60, :60].max() == 0
    assert np.allclose(result.normals[20, 20], [0, 0, 1])
    assert set(result.timings) == {"detect", "segment", "network", "paste"}


def test_a_batch_gives_each_photo_its_result_in_order_encoded_as_asked(estimator, astronaut, astronaut_path):
    """Files, bytes and pixels in one batch; a bad photo fails alone with its code."""
    directx = EstimateOptions(convention="directx", normals_dtype="uint16")
    photos = [Photo(astronaut_path, directx), Photo(b"not an image"), Photo(astronaut),
              Photo(np.full((300, 200, 3), 128, np.uint8)), Photo(np.zeros((8, 8, 3), np.uint8)),
              Photo(astronaut, EstimateOptions(mask=False, normals_dtype="float32"))]
    results = list(estimator.estimate(photos))
    assert [r.error.code if r.error else "ok" for r in results] == \
        ["ok", "bad_image", "ok", "no_face", "bad_image", "ok"]
    first, _, third, _, _, last = results
    assert first.normals.dtype == np.uint16 and first.mask.dtype == np.uint8
    assert third.normals.dtype == np.float16 and last.normals.dtype == np.float32 and last.mask is None
    assert "read" in first.timings and "encode" in first.timings
    reference = estimator.normal_map(to_rgb_float(astronaut)).normals    # pixels read the same way
    assert np.abs(last.normals - reference).max() < 1e-5
    # DirectX flips green; uint16 holds n * 0.5 + 0.5
    assert np.abs(normals_from_uint16(first.normals) * [1, -1, 1] - reference).max() < 1e-4
    assert results[1].summary() == {"ok": False, "code": "bad_image",
                                    "message": str(results[1].error)}
    assert first.summary()["face_details"][0]["box"] == [round(v, 2) for v in first.faces[0].box]


def test_a_cancelled_photo_skips_the_networks_and_the_others_are_served(estimator, astronaut):
    calls = []
    original = estimator.predict_crops

    def counting(crops):
        calls.append(len(crops))
        return original(crops)
    estimator.predict_crops = counting
    given_up = threading.Event()
    try:
        before = estimator.dropped_crops
        photos = [Photo(astronaut, cancelled=given_up.is_set), Photo(astronaut)]
        # its requester gives up once its crops are cut (the first step's heartbeat)
        first, second = list(estimator.estimate(photos, heartbeat=given_up.set))
    finally:
        del estimator.predict_crops
    assert first.error.code == "cancelled" and second.error is None and second.normals is not None
    assert estimator.dropped_crops - before == 2    # its face crop and person crop
    assert calls == [2]                             # only the other photo's two crops ran


def test_no_face_is_a_clear_error_unless_detection_is_off(estimator):
    plain = np.full((300, 200, 3), 0.5, np.float32)
    with pytest.raises(NoFaceError, match="no face found.*--no-detect"):
        estimator.normal_map(plain)
    result = estimator.normal_map(plain, detect=False)
    assert result.normals.shape == (300, 200, 3) and result.faces == []
    assert result.mask.shape == (300, 200)


def test_with_detection_off_the_mask_is_the_person_and_an_empty_one_warns(estimator, astronaut):
    """Detection off takes any image for a face crop: the segmenter's mask tells a grey wall (a
    warning, not a silent face-shaped relief) from a face crop (her head, not the flag behind it)."""
    wall = estimator.normal_map(np.full((300, 200, 3), 0.5, np.float32), detect=False)
    assert person_fraction(wall.mask) < 0.01
    [warning] = person_warnings(wall.mask)
    assert "no person in this image" in warning
    crop = estimator.normal_map(astronaut[:300, 100:400].astype(np.float32) / 255, detect=False)
    assert crop.mask.shape == (300, 300) and person_warnings(crop.mask) == []
    # the one estimate path carries the warning in its result (and so to the service and predict)
    options = EstimateOptions(detect=False)
    grey, face = estimator.estimate([Photo(np.full((300, 200, 3), 128, np.uint8), options),
                                     Photo(astronaut[:300, 100:400], options)])
    assert grey.warnings == [warning] and grey.summary()["warnings"] == [warning] and face.warnings == []
    assert crop.mask[150, 150] > 0.9 and crop.mask[:40, :40].max() < 0.5     # the face; the flag


def test_crop_input_uses_the_network_directly(estimator):
    """With detection off a square crop goes through the network unchanged in size, so the map
    equals the network's own output for that crop."""
    crop = np.random.default_rng(1).random((256, 256, 3)).astype(np.float32)
    result = estimator.normal_map(crop, detect=False)
    direct = estimator.predict_crops(crop[None]).normals[0]
    assert np.abs(result.normals - direct).max() < 1e-3


def test_weights_round_trip_in_half_precision(tmp_path):
    torch.manual_seed(3)
    model = build_model(ModelConfig(attention_blocks=1)).eval()
    path = tmp_path / "w.safetensors"
    save_weights(model, path, provenance={"command": "test"})
    config, provenance = read_metadata(path)
    assert config == model.config and provenance == {"command": "test"}
    loaded = load_model(path)
    image = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        assert (loaded(image) - model(image)).abs().max() < 0.05
    assert path.stat().st_size < 20e6


def test_weights_that_do_not_fit_the_architecture_are_refused(tmp_path, untrained_weights):
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(untrained_weights))
    _, _ = read_metadata(untrained_weights)
    from safetensors import safe_open
    with safe_open(str(untrained_weights), framework="pt") as handle:
        metadata = handle.metadata()
    dropped = dict(tensors)
    dropped.pop(next(iter(dropped)))
    save_file(dropped, str(tmp_path / "dropped.safetensors"), metadata=metadata)
    with pytest.raises(WeightsError, match="does not fit the architecture.*missing"):
        load_model(tmp_path / "dropped.safetensors")

    metadata_other = dict(metadata, config=ModelConfig(refine_widths=(8, 16)).to_dict().__repr__())
    save_file(tensors, str(tmp_path / "badconfig.safetensors"), metadata=metadata_other)
    with pytest.raises(WeightsError, match="config is unreadable"):
        load_model(tmp_path / "badconfig.safetensors")

    import json
    metadata_small = dict(metadata, config=json.dumps(ModelConfig(refine_widths=(8, 16, 32)).to_dict()))
    save_file(tensors, str(tmp_path / "small.safetensors"), metadata=metadata_small)
    with pytest.raises(WeightsError, match="does not fit.*(unexpected|wrong shape)"):
        load_model(tmp_path / "small.safetensors")


def test_unusable_weight_files_are_refused(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        Estimator(tmp_path / "absent.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="not a safetensors"):
        Estimator(junk)
    pickled = tmp_path / "model.pt"
    torch.save({"x": torch.zeros(2)}, pickled)
    with pytest.raises(WeightsError):
        Estimator(pickled)


def test_cuda_request_without_cuda_is_refused(untrained_weights):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="no CUDA device"):
        Estimator(untrained_weights, device="cuda")


@pytest.fixture(scope="module")
def shipped():
    return Estimator(device="cpu")


def _mean_normal(normals, point, radius=6):
    x, y = int(point[0]), int(point[1])
    return normals[y - radius:y + radius, x - radius:x + radius].reshape(-1, 3).mean(0)


def test_the_shipped_model_gives_a_face_shaped_map(shipped, astronaut):
    """The shipped weights on a real portrait: the face's left side turns left, its right side
    right, its forehead up and its chin down (camera space, OpenGL), and it faces the camera."""
    result = shipped.normal_map(astronaut.astype(np.float32) / 255)
    face, n = result.faces[0], result.normals
    image_left_cheek, image_right_cheek = face.landmarks[50], face.landmarks[280]
    assert _mean_normal(n, image_left_cheek)[0] < -0.1 and _mean_normal(n, image_right_cheek)[0] > 0.1
    assert _mean_normal(n, face.landmarks[151])[1] > 0.1      # forehead
    assert _mean_normal(n, face.landmarks[175])[1] < -0.1     # chin
    assert _mean_normal(n, face.point("nose_tip"))[2] > 0.6


def _turned(image, centre, degrees):
    turn = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return cv2.warpAffine(image, turn, image.shape[1::-1], flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT), turn


@pytest.mark.parametrize("degrees", [30, -30])
def test_a_rolled_face_gives_the_upright_faces_normals_turned(shipped, astronaut, degrees):
    """Within 1 degree (mean over the face) at 30 degrees of roll, the issue's target; measured
    on the astronaut 0.70 (+30) and 0.85 (-30), 14.5 without turning the normals back.  What is
    left is resampling the rolled photo and where exactly the crop lands on its pixels."""
    photo = astronaut.astype(np.float32) / 255
    upright = shipped.normal_map(photo)
    rolled_photo, turn = _turned(photo, upright.faces[0].centre, degrees)
    rolled = shipped.normal_map(rolled_photo)
    assert rolled.faces[0].roll == pytest.approx(upright.faces[0].roll + degrees, abs=3)
    expected = cv2.warpAffine(upright.normals, turn, (512, 512), flags=cv2.INTER_LINEAR)
    weight = cv2.warpAffine(upright.mask, turn, (512, 512), flags=cv2.INTER_LINEAR)
    a = np.radians(degrees)
    expected = expected @ np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]).T
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True).clip(1e-6)
    hull = np.zeros((512, 512), np.uint8)   # the face: its landmarks' outline, rolled
    points = upright.faces[0].landmarks[:, :2] @ turn[:, :2].T + turn[:, 2]
    cv2.fillConvexPoly(hull, cv2.convexHull(points.astype(np.int32)), 1)
    face = (weight > 0.99) & (rolled.mask > 0.99) & (hull > 0)
    error = np.degrees(np.arccos(np.clip((expected * rolled.normals).sum(-1), -1, 1)))[face]
    assert face.sum() > 5000 and error.mean() < 1.0


def test_every_face_of_a_photo_is_estimated(estimator, astronaut):
    photo = astronaut.astype(np.float32) / 255
    canvas = np.full((560, 1100, 3), 0.5, np.float32)
    canvas[20:532, 20:532] = photo
    canvas[40:552, 570:1082] = photo[:, ::-1]
    result = estimator.normal_map(canvas)
    assert len(result.faces) == 2 and len(result.centres) == 2
    for face in result.faces:
        x, y = map(int, face.point("nose_tip"))
        assert result.mask[y, x] == 1.0
    assert result.mask[:, 540:560].max() < 1.0   # the faces' masks do not merge between them


def test_a_small_face_in_a_large_photo_is_estimated(estimator, astronaut):
    """The astronaut's face, about 110 px high, in a 2200 x 1500 photo."""
    canvas = np.full((1500, 2200, 3), 0.4, np.float32)
    canvas[900:1412, 1500:2012] = astronaut.astype(np.float32) / 255
    result = estimator.normal_map(canvas)
    [face] = result.faces
    x, y = map(int, face.point("nose_tip"))
    assert 1710 < x < 1735 and 1020 < y < 1045 and result.mask[y, x] == 1.0


def test_a_blank_photo_says_no_face_was_found(estimator):
    with pytest.raises(NoFaceError, match="no face found in the photo.*--no-detect"):
        estimator.normal_map(np.zeros((480, 640, 3), np.float32))


@pytest.mark.parametrize("kind", ["grey", "rgba", "rgb16", "grey16"])
def test_grey_rgba_and_16_bit_photos_find_the_face(estimator, astronaut, tmp_path, kind):
    bgr = astronaut[..., ::-1]
    pixels = {"grey": cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY),
              "rgba": np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)]),
              "rgb16": bgr.astype(np.uint16) * 257,
              "grey16": cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257}[kind]
    path = tmp_path / f"{kind}.png"
    cv2.imwrite(str(path), pixels)
    [result] = estimator.estimate([Photo(path, EstimateOptions(normals_dtype="float32"))])
    assert len(result.faces) == 1 and result.normals.shape == (512, 512, 3)
    assert 200 < result.faces[0].point("nose_tip")[0] < 245
