"""Person segmentation: MediaPipe's selfie segmentation model run in PyTorch (estimator/segmentation.py)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from backend.estimator.graph_module import ModelFileError
from backend.estimator.segmentation import PersonSegmenter

# MediaPipe's own masks (mediapipe 0.10.21, mp.solutions.selfie_segmentation, model_selection=0,
# on the uint8 images), averaged over 8x8 blocks (cv2.INTER_AREA) and rounded to 3 decimals.
MEDIAPIPE_ASTRONAUT = [
    [0.000, 0.000, 0.177, 0.697, 0.306, 0.000, 0.000, 0.000],
    [0.000, 0.000, 0.518, 1.000, 0.654, 0.000, 0.000, 0.000],
    [0.000, 0.028, 0.596, 1.000, 0.175, 0.000, 0.000, 0.000],
    [0.003, 0.577, 1.000, 1.000, 0.738, 0.026, 0.000, 0.000],
    [0.299, 1.000, 1.000, 1.000, 1.000, 0.567, 0.000, 0.000],
    [0.579, 1.000, 1.000, 1.000, 0.976, 0.904, 0.584, 0.117],
    [0.814, 1.000, 1.000, 1.000, 1.000, 0.999, 1.000, 0.686],
    [0.853, 0.993, 0.993, 0.999, 1.000, 1.000, 1.000, 0.823],
]
# and at full resolution across the edge of her hair, 16 pixels from (row, column): left and top
MEDIAPIPE_HAIR_EDGES = {
    (66, 146): [0.000, 0.000, 0.000, 0.013, 0.038, 0.056, 0.066, 0.294,
               0.742, 0.974, 0.991, 1.000, 1.000, 1.000, 1.000, 1.000],
    (20, 250): [0.885, 0.838, 0.768, 0.634, 0.435, 0.267, 0.129, 0.052,
               0.034, 0.020, 0.010, 0.005, 0.005, 0.003, 0.001, 0.000],
}
MEDIAPIPE_COFFEE = [  # 400x600: the stretch to 256x256 and back (the cup is a little "person")
    [0.000, 0.000, 0.022, 0.252, 0.265, 0.000, 0.000, 0.000],
    [0.000, 0.000, 0.190, 0.611, 0.859, 0.366, 0.000, 0.000],
    [0.000, 0.000, 0.428, 0.994, 1.000, 0.608, 0.000, 0.000],
    [0.000, 0.000, 0.449, 0.874, 0.999, 0.292, 0.000, 0.000],
    [0.000, 0.000, 0.260, 0.979, 0.883, 0.123, 0.000, 0.000],
    [0.000, 0.000, 0.259, 0.966, 0.851, 0.385, 0.000, 0.000],
    [0.000, 0.013, 0.107, 0.586, 0.567, 0.369, 0.000, 0.000],
    [0.000, 0.001, 0.209, 0.157, 0.031, 0.031, 0.000, 0.000],
]


@pytest.fixture(scope="module")
def segmenter():
    return PersonSegmenter()


@pytest.fixture(scope="module")
def photo(astronaut):
    return astronaut.astype(np.float32) / 255


@pytest.fixture(scope="module")
def mask(segmenter, photo):
    return segmenter.segment(photo)


def _blocks(mask: np.ndarray) -> np.ndarray:
    return cv2.resize(mask, (8, 8), interpolation=cv2.INTER_AREA)


def test_the_mask_covers_the_astronaut_and_not_the_background(mask):
    assert mask.shape == (512, 512) and mask.dtype == np.float32
    assert mask.min() >= 0 and mask.max() <= 1
    assert mask[100:150, 200:250].min() > 0.9     # her face
    assert mask[350:450, 50:150].min() > 0.9      # her suit, left shoulder to arm
    assert mask[280:330, 300:340].min() > 0.9     # her suit on the right shoulder
    assert mask[200:260, 130:180].min() > 0.9     # the neck ring on the left
    for corner in (mask[:40, :40], mask[:40, -40:], mask[100:200, 400:450]):  # flag, wall, the shuttle
        assert corner.max() < 0.1


def test_the_mask_is_mediapipes(segmenter, photo, mask):
    assert np.abs(_blocks(mask) - MEDIAPIPE_ASTRONAUT).max() < 2e-3
    for (row, column), expected in MEDIAPIPE_HAIR_EDGES.items():
        assert np.abs(mask[row, column:column + 16] - expected).max() < 2e-3, (row, column)
    from skimage import data
    coffee = data.coffee().astype(np.float32) / 255
    result = segmenter.segment(coffee)
    assert result.shape == coffee.shape[:2]
    assert np.abs(_blocks(result) - MEDIAPIPE_COFFEE).max() < 2e-3


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_a_blank_image_holds_no_person(segmenter, value):
    assert segmenter.segment(np.full((300, 400, 3), value, np.float32)).max() < 0.01


def test_the_mirror_image_gives_the_mirrored_mask(segmenter, photo, mask):
    mirrored = segmenter.segment(np.ascontiguousarray(photo[:, ::-1]))[:, ::-1]
    difference = np.abs(mirrored - mask)
    # MediaPipe's own masks differ as much: the helmet on her lap is the one unsure part, and
    # edges move by a pixel (measured: mean 0.029, 0.4% of the pixels by more than 0.5)
    assert difference.mean() < 0.05 and (difference > 0.5).mean() < 0.01
    assert difference[:330].mean() < 0.015       # above the helmet


def test_square_crops_in_one_batch_give_each_crops_mask(segmenter, photo):
    crops = np.stack([photo[:300, 100:400], photo[200:500, 0:300], np.full((300, 300, 3), 0.5, np.float32)])
    masks = segmenter.segment_crops(crops)
    assert masks.shape == (3, 300, 300)
    for crop, result in zip(crops, masks):
        assert np.abs(result - segmenter.segment(crop)).max() < 1e-4
    assert masks[0, 120:140, 120:140].min() > 0.9 and masks[2].max() < 0.01


def test_wrong_shapes_are_refused(segmenter):
    with pytest.raises(ValueError, match="RGB"):
        segmenter.segment(np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError, match="square"):
        segmenter.segment_crops(np.zeros((2, 64, 32, 3), np.float32))


def test_a_missing_weights_file_names_itself_and_the_conversion(tmp_path):
    with pytest.raises(ModelFileError, match=r"selfie_segmentation\.safetensors is missing.*convert_mediapipe"):
        PersonSegmenter(weights=tmp_path)
