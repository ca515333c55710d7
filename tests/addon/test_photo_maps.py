"""Which photo an image belongs to (addon/photo_maps.py): pure Python, loaded from its file so the
test needs no Blender (the add-on's package imports bpy)."""
import importlib.util

import pytest

from .conftest import ROOT


@pytest.fixture(scope="module")
def photo_maps():
    spec = importlib.util.spec_from_file_location("photo_maps", ROOT / "addon" / "photo_maps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["normal", "mask", "relit"])
def test_each_map_the_addon_makes_leads_back_to_its_photo(photo_maps, kind):
    names = ["astronaut.png", "astronaut_normal", "astronaut_mask", "astronaut_relit", "grey.png"]
    shown = photo_maps.derived_name("astronaut.png", kind)
    assert photo_maps.photo_of(shown, names) == "astronaut.png"


def test_a_photo_is_itself_and_a_map_without_its_photo_stays_the_map(photo_maps):
    names = ["astronaut.png", "astronaut_normal", "brick_normal"]
    assert photo_maps.photo_of("astronaut.png", names) == "astronaut.png"
    assert photo_maps.photo_of("brick_normal", names) == "brick_normal"


def test_photos_named_like_maps_or_without_an_extension(photo_maps):
    # a photo file whose name ends like a map is still a photo (the add-on's maps carry no extension)
    names = ["anna_mask.jpg", "anna_mask_normal", "render", "render_normal", "render_mask"]
    assert photo_maps.photo_of("anna_mask_normal", names) == "anna_mask.jpg"
    assert photo_maps.photo_of("anna_mask.jpg", names) == "anna_mask.jpg"
    assert photo_maps.photo_of("render_mask", names) == "render"     # a generated image, no extension
    # another map of the same stem is never taken for the photo
    assert photo_maps.photo_of("x_normal", ["x_mask", "x_relit"]) == "x_normal"
