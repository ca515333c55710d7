"""The core's rules for images and estimate options, which the estimator, the service and the
add-on share."""
import pytest

from backend.core.images import ImageSizeError, check_image_size
from backend.core.options import EstimateOptions, OptionError


@pytest.mark.parametrize("width, height, channels, code", [
    (100_000, 1, 3, "bad_image"), (8, 8, 3, "bad_image"), (2000, 16, 3, "bad_image"),
    (64, 64, 5, "bad_image"), (5000, 5000, 3, "too_large")])
def test_image_sizes_outside_the_specification(width, height, channels, code):
    with pytest.raises(ImageSizeError) as caught:
        check_image_size(width, height, 4096 * 4096, channels)
    assert caught.value.code == code


def test_sizes_inside_the_specification_pass():
    check_image_size(16, 160, 4096 * 4096, 1)
    check_image_size(4096, 4096, 4096 * 4096, 4)


@pytest.mark.parametrize("options, word", [
    ({"detect": "no"}, "detect"), ({"mask": 1}, "mask"), ({"detect": None}, "detect"),
    ({"convention": "metal"}, "convention"), ({"normals_dtype": "int8"}, "normals_dtype"),
    ({"focal_35mm": True}, "focal_35mm"), ({"focal_35mm": float("nan")}, "focal_35mm"),
    ({"colour": True}, "colour")])
def test_options_are_checked_strictly(options, word):
    with pytest.raises(OptionError, match=word):
        EstimateOptions.parse(options)


def test_options_round_trip_through_json():
    options = EstimateOptions(detect=False, convention="directx", normals_dtype="float32", focal_35mm=50)
    assert EstimateOptions.parse(options.to_wire()) == options
    assert EstimateOptions.parse({"focal_35mm": None}) == EstimateOptions()
