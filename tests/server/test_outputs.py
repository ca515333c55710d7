"""The new outputs (albedo, height, light) over the service, as the CLI writes them too."""
import cv2
import numpy as np
import pytest

from backend.estimator.image_io import read_image
from helpers import run_backend


def test_info_announces_the_outputs(server):
    with server.client() as client:
        assert client.info(timeout=10)["outputs"] == ["normal", "mask", "albedo", "height", "light"]


@pytest.mark.parametrize("outputs", [["albedo", "height", "light"], ["normal", "mask"]])
def test_the_service_sends_the_outputs_asked_for(server, astronaut, outputs):
    with server.client() as client:
        [result] = client.estimate([astronaut], outputs=outputs, timeout=120)
    assert (result["normals"] is None) == ("normal" not in outputs)
    assert (result["albedo"] is None) == ("albedo" not in outputs)
    if "albedo" in outputs:
        assert result["albedo"].shape == (512, 512, 3) and result["albedo"].dtype == np.float16
        assert result["height"].shape == (512, 512) and result["height"].dtype == np.float32
        assert np.asarray(result["light"]["sh"]).shape == (9, 3)
        assert result["height_range"]["max"] == pytest.approx(float(result["height"].max()), abs=1e-2)


def test_outputs_match_between_the_service_and_the_cli(server, tmp_path, astronaut_path, untrained_weights):
    with server.client() as client:
        [remote] = client.estimate([astronaut_path.read_bytes()], outputs=["albedo"], timeout=120)
    done = run_backend("predict", astronaut_path, "-o", tmp_path, "--weights", untrained_weights,
                       "--outputs", "albedo", "--exr")
    assert done.returncode == 0, done.stderr
    local = cv2.imread(str(tmp_path / "astronaut_albedo.exr"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    photo = read_image(astronaut_path)
    assert local.shape == photo.shape
    # float16 on the wire; the processes' landmarks differ by float rounding (see test_service)
    assert np.median(np.abs(remote["albedo"].astype(np.float32) - local)) < 2e-3
