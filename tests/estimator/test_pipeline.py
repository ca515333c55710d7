import numpy as np
import pytest
import torch

from backend.estimator import Estimator, NoFaceError, WeightsError
from backend.estimator.networks import ModelConfig, build_model
from backend.estimator.weights import load_model, read_metadata, save_weights


@pytest.fixture(scope="module")
def estimator(untrained_weights):
    return Estimator(untrained_weights, device="cpu")


def test_photo_gives_full_size_unit_normals_and_a_face_mask(estimator, astronaut):
    result = estimator.estimate(astronaut.astype(np.float32) / 255)
    assert result.normals.shape == (512, 512, 3) and result.normals.dtype == np.float32
    assert np.allclose(np.linalg.norm(result.normals, axis=-1), 1, atol=1e-4)
    assert result.mask.shape == (512, 512)
    assert len(result.faces) == 1
    face = result.faces[0]
    cx, cy = map(int, face.centre)
    assert result.mask[cy, cx] == 1.0
    # away from the face: no mask, and the flat normal
    assert result.mask[480:, :].max() == 0
    assert np.allclose(result.normals[500, 20], [0, 0, 1])
    assert set(result.timings) == {"detect", "network", "paste"}


def test_estimate_file_reads_and_times_the_read(estimator, astronaut_path):
    result = estimator.estimate_file(astronaut_path)
    assert result.normals.shape == (512, 512, 3) and "read" in result.timings


def test_no_face_is_a_clear_error_unless_detection_is_off(estimator):
    plain = np.full((300, 200, 3), 0.5, np.float32)
    with pytest.raises(NoFaceError, match="no face found.*--no-detect"):
        estimator.estimate(plain)
    result = estimator.estimate(plain, detect=False)
    assert result.normals.shape == (300, 200, 3) and result.faces == []
    assert result.mask.min() == 1.0


def test_crop_input_uses_the_network_directly(estimator):
    """With detection off a square crop goes through the network unchanged in size, so the map
    equals the network's own output for that crop."""
    crop = np.random.default_rng(1).random((256, 256, 3)).astype(np.float32)
    result = estimator.estimate(crop, detect=False)
    direct = estimator.predict_crops(crop[None])[0]
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


def test_the_shipped_model_gives_a_face_shaped_map(astronaut):
    """The shipped weights on a real portrait: the face's left side turns left, its right side
    right, its top up and its bottom down (camera space, OpenGL), and it faces the camera."""
    result = Estimator(device="cpu").estimate(astronaut.astype(np.float32) / 255)
    face = result.faces[0]
    x0, y0 = int(face.x), int(face.y)
    x1, y1 = int(face.x + face.width), int(face.y + face.height)
    n = result.normals
    third_w, third_h = (x1 - x0) // 3, (y1 - y0) // 3
    left = n[y0 + third_h:y1 - third_h, x0:x0 + third_w].reshape(-1, 3).mean(0)
    right = n[y0 + third_h:y1 - third_h, x1 - third_w:x1].reshape(-1, 3).mean(0)
    # the detector's box runs from the brows to the mouth: the forehead is above it, the chin
    # at and below its bottom edge
    h = y1 - y0
    forehead = n[y0 - int(0.3 * h):y0, x0 + third_w:x1 - third_w].reshape(-1, 3).mean(0)
    chin = n[y1 - int(0.05 * h):y1 + int(0.15 * h), x0 + third_w:x1 - third_w].reshape(-1, 3).mean(0)
    assert left[0] < -0.1 and right[0] > 0.1
    assert forehead[1] > 0.1 and chin[1] < -0.1
    assert n[y0:y1, x0:x1, 2].mean() > 0.6
