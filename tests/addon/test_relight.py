"""The relighting preview in real headless Blender: the GLSL compiled and run through the gpu module
(llvmpipe), read back offscreen and held to the numpy reference; the bake operator and settings."""
import numpy as np
import pytest

from helpers import sphere_normals

pytestmark = pytest.mark.slow   # Blender's renders and its gpu module


@pytest.fixture(scope="module")
def gpu_ready(blender, tmp_path_factory):
    """Blender's gpu module works in background only after a render has initialised it."""
    bpy = blender
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x = scene.render.resolution_y = 16
    scene.render.filepath = str(tmp_path_factory.mktemp("gpu") / "init.png")
    bpy.ops.object.camera_add()
    scene.camera = bpy.context.object
    bpy.ops.render.render(write_still=True)
    from bl_ext.user_default.face_normals import relight_gpu
    return relight_gpu


def _inputs(astronaut, size=96):
    """A face-like test card: part of the astronaut photo, a sphere's normal map, a soft round mask."""
    photo = astronaut[40:40 + 2 * size:2, 150:150 + 2 * size:2].astype(np.float32) / 255
    normals, inside = sphere_normals(size)
    normals[:, :, 0] = np.where(inside, normals[..., 0], 0.3)     # something to relight outside, too
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    mask = np.clip(1.5 - 4 * np.hypot(x, y), 0, 1).astype(np.float32)
    return photo, (normals * 0.5 + 0.5).astype(np.float32), mask


LIGHTINGS = {
    "one white key light": dict(lights=[((-0.6, 0.4, 0.7), (1, 1, 1), 1.0)], specular=0.1),
    "four coloured lights, glossy, exposed": dict(
        lights=[((1, 0, 0.2), (1, 0.3, 0.2), 1.5), ((-1, 0.2, 0.1), (0.2, 0.4, 1), 0.8),
                ((0, 1, 0.5), (1, 1, 0.8), 0.6), ((0.2, -0.5, 0.8), (0.5, 1, 0.5), 0.4)],
        specular=0.8, roughness=0.2, exposure=0.7, delight=1.0),
    "ambient only, brighter from above": dict(lights=[], sh_args=((0.9, 0.8, 1.0), 0.8, 0.6), delight=0.0),
}


@pytest.mark.parametrize("name", list(LIGHTINGS))
def test_the_glsl_agrees_with_the_numpy_reference(gpu_ready, addon, astronaut, name):
    model = addon.shaders.relight
    spec = dict(LIGHTINGS[name])
    lights = [model.Light(*light) for light in spec.pop("lights")]
    if "sh_args" in spec:
        spec["sh"] = model.ambient_sh(*spec.pop("sh_args"))
    lighting = model.Lighting(lights, **spec)
    photo, normal_map, mask = _inputs(astronaut)

    on_gpu = gpu_ready.RelitImage(photo, normal_map, mask).render(lighting)
    reference = model.relight(photo, normal_map, lighting, mask)

    assert on_gpu.shape == reference.shape == photo.shape
    difference = np.abs(on_gpu - reference) * 255
    assert np.mean(difference <= 2) >= 0.99, f"max {difference.max():.2f}/255"
    assert np.abs(reference - photo).max() > 0.1      # the case really relights something


def test_the_glsl_lights_an_albedo_as_the_numpy_reference_does(gpu_ready, addon, astronaut):
    """With an albedo the photo's colours no longer matter inside the mask: the albedo is lit."""
    model = addon.shaders.relight
    photo, normal_map, mask = _inputs(astronaut)
    albedo = model.srgb_to_linear(photo[::-1, ::-1]) * 0.8          # any colours unlike the photo's
    lighting = model.Lighting([model.Light((0.7, 0.2, 0.6), (1, 0.9, 0.8), 1.3)],
                              model.ambient_sh((1, 1, 1), 0.2) + model.ambient_sh((1, 0.5, 0.5), 0.3, 1.0),
                              specular=0.2)
    on_gpu = gpu_ready.RelitImage(photo, normal_map, mask, albedo).render(lighting)
    reference = model.relight(photo, normal_map, lighting, mask, albedo)
    difference = np.abs(on_gpu - reference) * 255
    assert np.mean(difference <= 2) >= 0.99, f"max {difference.max():.2f}/255"
    assert np.abs(reference - model.relight(photo, normal_map, lighting, mask)).max() > 0.1


def test_the_gpu_keeps_the_photo_upright_and_unmirrored(gpu_ready, addon):
    """A light from +x brightens the right of a sphere in the GPU read-back (row 0 at the top)."""
    model = addon.shaders.relight
    normals, inside = sphere_normals(64)
    photo = np.full((64, 64, 3), 0.5, np.float32)
    lighting = model.Lighting([model.Light((1, 0, 0))], sh=np.zeros((9, 3)), delight=0.0, specular=0.0)
    relit = gpu_ready.RelitImage(photo, normals * 0.5 + 0.5).render(lighting)
    assert relit[32, 56].mean() > 0.3 and relit[32, 8].max() == 0
    lighting.lights = [model.Light((0, 1, 0))]
    relit = gpu_ready.RelitImage(photo, normals * 0.5 + 0.5).render(lighting)
    assert relit[8, 32].mean() > 0.3 and relit[56, 32].max() == 0


def _store(bpy, name, array, colorspace):
    height, width = array.shape[:2]
    image = bpy.data.images.new(name, width, height, alpha=True, float_buffer=True)
    image.colorspace_settings.name = colorspace
    rgba = np.dstack([array if array.ndim == 3 else np.dstack([array] * 3), np.ones((height, width))])
    image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1], np.float32).ravel())
    return image


def test_bake_makes_a_relit_image_with_the_panels_lights(clean_file, addon, astronaut):
    bpy = clean_file
    model = addon.shaders.relight
    photo, normal_map, mask = _inputs(astronaut, 64)
    _store(bpy, "face.png", model.srgb_to_linear(photo), "sRGB")    # float images hold linear light
    _store(bpy, "face_normal", normal_map, "Non-Color")
    _store(bpy, "face_mask", mask, "Non-Color")
    settings = bpy.context.scene.face_normals_relight
    light = settings.lights.add()
    light.direction, light.colour, light.intensity = (1, 0, 0.3), (1, 0.9, 0.8), 1.2
    settings.specular, settings.exposure = 0.3, 0.5

    assert bpy.ops.face_normals.relight_bake(image_name="face.png") == {"FINISHED"}
    baked = bpy.data.images["face_relit"]
    assert tuple(baked.size) == (64, 64) and not baked.is_float and baked.packed_file is not None
    pixels = np.empty(64 * 64 * 4, np.float32)
    baked.pixels.foreach_get(pixels)
    pixels = pixels.reshape(64, 64, 4)[::-1, :, :3]
    expected = model.relight(photo, normal_map, addon.relight.lighting(settings), mask)
    assert np.abs(pixels - expected).max() < 2.5 / 255
    # Running it again replaces the image instead of piling up copies.
    assert bpy.ops.face_normals.relight_bake(image_name="face.png") == {"FINISHED"}
    assert [i.name for i in bpy.data.images if i.name.startswith("face_relit")] == ["face_relit"]


def test_bake_without_a_normal_map_is_a_clear_error_and_changes_nothing(clean_file, addon, astronaut):
    bpy = clean_file
    _store(bpy, "lonely.png", astronaut[:32, :32].astype(np.float32) / 255, "sRGB")
    before = set(bpy.data.images.keys())
    with pytest.raises(RuntimeError, match="No normal map for 'lonely.png'"):
        bpy.ops.face_normals.relight_bake(image_name="lonely.png")
    assert set(bpy.data.images.keys()) == before


def test_dragging_maps_the_image_onto_a_sphere_of_light_directions(addon):
    light_at = addon.relight.light_at
    assert np.allclose(light_at(0.5, 0.5), (0, 0, 1))
    assert np.allclose(light_at(1.0, 0.5), (1, 0, 0))
    assert np.allclose(light_at(0.5, 0.0), (0, -1, 0))
    assert np.allclose(light_at(1.0, 1.0), (np.sqrt(0.5), np.sqrt(0.5), 0))
    assert np.isclose(np.linalg.norm(light_at(0.7, 0.6)), 1)


def test_the_preview_reads_large_photos_at_a_bounded_size(clean_file, addon, astronaut):
    bpy = clean_file
    photo, normal_map, mask = _inputs(astronaut, 64)
    _store(bpy, "big.png", photo, "Non-Color")
    _store(bpy, "big_normal", normal_map[::2, ::2], "Non-Color")     # estimated at half size
    settings = bpy.context.scene.face_normals_relight
    pixels, normals, no_mask = addon.relight.inputs(bpy.data.images["big.png"], settings, max_side=32)
    assert pixels.shape == normals.shape == (32, 32, 3) and no_mask is None
    assert np.allclose(pixels, photo[::2, ::2], atol=1e-6)
    full = addon.relight.inputs(bpy.data.images["big.png"], settings)
    assert full[0].shape == full[1].shape == (64, 64, 3)


def test_at_most_four_lights_can_be_added_and_each_removed(clean_file, addon):
    bpy = clean_file
    lights = bpy.context.scene.face_normals_relight.lights
    for _ in range(4):
        assert bpy.ops.face_normals.relight_light_add() == {"FINISHED"}
    with pytest.raises(RuntimeError, match="At most 4 lights"):
        bpy.ops.face_normals.relight_light_add()
    lights[1].intensity = 3.0
    assert bpy.ops.face_normals.relight_light_remove(index=0) == {"FINISHED"}
    assert len(lights) == 3 and lights[0].intensity == 3.0
    assert len(addon.relight.lighting(bpy.context.scene.face_normals_relight).lights) == 3
