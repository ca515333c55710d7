"""`python -m backend predict|info` end to end, as a user runs them (a real subprocess)."""
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from backend.estimator.image_io import read_normal_png
from helpers import run_backend


def _decode(path):
    return read_normal_png(path)   # refuses anything but a 16-bit RGB PNG


def test_predict_writes_normal_map_mask_npy_and_exr(tmp_path, astronaut_path, untrained_weights):
    done = run_backend("predict", astronaut_path, "-o", tmp_path, "--weights", untrained_weights,
                       "--npy", "--exr")
    assert done.returncode == 0, done.stderr
    normals = _decode(tmp_path / "astronaut_normal.png")
    assert normals.shape == (512, 512, 3)
    assert np.abs(np.linalg.norm(normals, axis=-1) - 1).max() < 1e-3
    mask = cv2.imread(str(tmp_path / "astronaut_mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint8 and mask.shape == (512, 512) and mask.max() == 255
    raw = np.load(tmp_path / "astronaut_normal.npy")
    assert raw.dtype == np.float32 and raw.shape == (512, 512, 3)
    assert np.abs(raw - normals).max() < 1e-4
    exr = cv2.imread(str(tmp_path / "astronaut_normal.exr"), cv2.IMREAD_UNCHANGED)
    assert exr is not None and np.abs(exr[..., ::-1] - raw).max() < 1e-6
    assert "1 face detected" in done.stdout


def test_directx_output_mirrors_green(tmp_path, astronaut_path, untrained_weights):
    for convention in ("opengl", "directx"):
        done = run_backend("predict", astronaut_path, "-o", tmp_path / convention,
                           "--weights", untrained_weights, "--convention", convention)
        assert done.returncode == 0, done.stderr
    opengl = _decode(tmp_path / "opengl" / "astronaut_normal.png")
    directx = _decode(tmp_path / "directx" / "astronaut_normal.png")
    assert np.abs(directx[..., 1] + opengl[..., 1]).max() < 1e-4
    assert np.abs(directx[..., [0, 2]] - opengl[..., [0, 2]]).max() < 1e-4


def test_batch_reports_bad_files_and_finishes_the_rest(tmp_path, astronaut_path, untrained_weights):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.open(astronaut_path).save(folder / "a_first.jpg", quality=95)
    (folder / "b_broken.jpg").write_bytes(b"not really a jpeg")
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(folder / "c_wall.png")
    Image.open(astronaut_path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "d_last.png")
    out = tmp_path / "out"
    done = run_backend("predict", folder, "-o", out, "--weights", untrained_weights)
    assert done.returncode == 1
    assert (out / "a_first_normal.png").exists() and (out / "d_last_normal.png").exists()
    assert not (out / "b_broken_normal.png").exists() and not (out / "c_wall_normal.png").exists()
    assert "b_broken.jpg: not a readable image" in done.stderr
    assert "c_wall.png: no face found" in done.stderr
    assert "2 of 4 inputs failed" in done.stderr
    assert "Traceback" not in done.stderr
    assert "4/4" in done.stderr  # the progress bar ran to the end


def test_no_detect_treats_the_input_as_a_crop_and_warns_when_nobody_is_in_it(tmp_path, untrained_weights):
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(tmp_path / "wall.png")
    done = run_backend("predict", tmp_path / "wall.png", "--no-detect", "-o", tmp_path / "o",
                       "--weights", untrained_weights, "--json")
    assert done.returncode == 0, done.stderr
    assert _decode(tmp_path / "o" / "wall_normal.png").shape == (120, 160, 3)
    [warning] = json.loads(done.stdout)["warnings"]
    assert "no person in this image" in warning and f"warning: {tmp_path / 'wall.png'}: no person" in done.stderr


def test_missing_weights_and_bad_device_are_one_line_errors(tmp_path, astronaut_path, untrained_weights):
    done = run_backend("predict", astronaut_path, "-o", tmp_path, "--weights", tmp_path / "none.safetensors")
    assert done.returncode == 1 and done.stderr.startswith("error: weights file not found")
    assert "Traceback" not in done.stderr
    done = run_backend("predict", astronaut_path, "-o", tmp_path, "--weights", untrained_weights,
                       "--device", "cuda:7")
    assert done.returncode == 1 and "Traceback" not in done.stderr


def test_info_describes_the_model(untrained_weights):
    done = run_backend("info", "--weights", untrained_weights, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["device"] == "cpu" and 1_000_000 < report["parameters"] < 8_000_000
    assert report["provenance"]["made_by"] == "tests/conftest.py"


def test_focal_length_turns_the_face_into_camera_space(tmp_path, astronaut_path, untrained_weights):
    """The astronaut's face sits left of and above the photo's centre: in camera space its
    normals lean right and down (toward the camera) compared with the default view space."""
    maps = {}
    for name, extra in (("view", ()), ("camera", ("--focal-mm", "28"))):
        done = run_backend("predict", astronaut_path, "-o", tmp_path / name, "--weights", untrained_weights,
                           "--npy", *extra)
        assert done.returncode == 0, done.stderr
        maps[name] = np.load(tmp_path / name / "astronaut_normal.npy")
    face = cv2.imread(str(tmp_path / "camera" / "astronaut_mask.png"), cv2.IMREAD_UNCHANGED) == 255
    lean = (maps["camera"][face] - maps["view"][face]).mean(0)
    assert lean[0] > 0.01 and lean[1] < -0.05        # ~4 degrees left of the axis, ~15 above it
    refused = run_backend("predict", astronaut_path, "-o", tmp_path, "--focal-mm", "0")
    assert refused.returncode == 1 and "focal length" in refused.stderr


def test_json_reports_each_photo_and_its_faces(tmp_path, astronaut_path, untrained_weights):
    """--json: one JSON object per photo on stdout (the progress lines go to stderr)."""
    (tmp_path / "wall.png").write_bytes(b"")  # an empty file
    done = run_backend("predict", astronaut_path, tmp_path / "wall.png", "-o", tmp_path / "o",
                       "--weights", untrained_weights, "--json")
    assert done.returncode == 1
    good, bad = map(json.loads, done.stdout.splitlines())
    assert good["photo"] == str(astronaut_path) and good["normal"].endswith("astronaut_normal.png")
    [face] = good["faces"]
    assert set(face) == {"box", "roll", "score", "presence", "landmarks"} and good["warnings"] == []
    assert 200 < face["landmarks"]["nose_tip"][0] < 245 and -8 < face["roll"] < 2
    right_iris, left_iris = face["landmarks"]["right_iris"], face["landmarks"]["left_iris"]
    assert face["landmarks"]["right_eye_outer"][0] < right_iris[0] < face["landmarks"]["right_eye_inner"][0]
    assert face["landmarks"]["left_eye_inner"][0] < left_iris[0] < face["landmarks"]["left_eye_outer"][0]
    assert len(face["box"]) == 4 and face["score"] > 0.8
    assert bad["photo"].endswith("wall.png") and "empty" in bad["error"]
    assert "1 face detected" in done.stderr


def test_a_v3_model_without_weights_is_a_one_line_error(tmp_path, astronaut_path):
    for command in (["info"], ["predict", astronaut_path, "-o", tmp_path]):
        done = run_backend(*command, "--model", "fast")
        assert done.returncode == 1 and "no v3 weights are shipped yet" in done.stderr
        assert "Traceback" not in done.stderr


def test_a_v3_model_runs_from_a_weights_file_and_gives_its_own_light(tmp_path, astronaut_path, v3_weights):
    done = run_backend("predict", astronaut_path, "-o", tmp_path, "--model", "fast", "--weights", v3_weights,
                       "--outputs", "normal,albedo,light")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "astronaut_light.json").read_text())["source"] == "model"
    assert (tmp_path / "astronaut_albedo.png").exists()


def test_predict_writes_every_output_and_one_multilayer_exr(tmp_path, astronaut_path, untrained_weights):
    import OpenEXR
    done = run_backend("predict", astronaut_path, "-o", tmp_path, "--weights", untrained_weights, "--exr",
                       "--outputs", "normal,mask,albedo,height,light", "--json")
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"normal", "mask", "albedo", "height", "light", "exr"} <= set(line)
    assert (tmp_path / "astronaut_light.json").exists() and (tmp_path / "astronaut_normal.exr").exists()
    with OpenEXR.File(str(tmp_path / "astronaut.exr"), separate_channels=True) as exr:
        channels = {name: channel.pixels for name, channel in exr.channels().items()}
    assert sorted(channels) == ["albedo.B", "albedo.G", "albedo.R", "height.Y", "mask.Y",
                                "normal.X", "normal.Y", "normal.Z"]
    normals = np.dstack([channels[f"normal.{axis}"] for axis in "XYZ"])
    assert np.abs(normals - _decode(tmp_path / "astronaut_normal.png")).max() < 1e-4
    mask = cv2.imread(str(tmp_path / "astronaut_mask.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(np.round(channels["mask.Y"] * 255), mask)
    single = cv2.imread(str(tmp_path / "astronaut_albedo.exr"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert np.array_equal(np.dstack([channels[f"albedo.{c}"] for c in "RGB"]), single)
    low, high = line["height_range"]["min"], line["height_range"]["max"]
    assert channels["height.Y"].min() == pytest.approx(low, abs=1e-3)
    assert channels["height.Y"].max() == pytest.approx(high, abs=1e-3)
