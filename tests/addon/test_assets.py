"""Relightable face assets in real headless Blender (issue 27): the add-on asks a real backend for
albedo, height and light beside the normals, keeps them with the photo, builds a complete
material from them (rendered in Cycles and EEVEE) and lights the albedo in the relight bake."""
import json

import cv2
import numpy as np
import pytest

from helpers import sphere_normals

from .conftest import save_photo
from .conftest import image_array

pytestmark = pytest.mark.slow   # Blender (the bpy module) with the extension installed


def test_estimate_keeps_albedo_height_and_light_with_the_photo(clean_file, addon, backend, astronaut, tmp_path):
    bpy = clean_file
    photo = bpy.data.images.load(str(save_photo(astronaut, tmp_path / "face.png")))
    assert bpy.ops.face_normals.estimate(image_name=photo.name, save_mode="PACK") == {"FINISHED"}
    albedo, height = bpy.data.images["face_albedo"], bpy.data.images["face_height"]
    assert albedo.is_float and albedo.packed_file is not None and "Linear" in albedo.colorspace_settings.name
    assert height.colorspace_settings.name == "Non-Color" and tuple(height.size) == (512, 512)
    low, high = addon.images.height_range(height)
    values = image_array(height)[..., 0]
    assert low < high and values.min() == 0.0 and values.max() == pytest.approx(1.0)
    light = json.loads(photo[addon.images.LIGHT])
    assert np.asarray(light["sh"]).shape == (9, 3) and light["source"] == "fitted"
    assert addon.images.photo_light(photo).shape == (9, 3)
    # What the service sends for the same photo, kept as it is (float16 on the wire).
    from bl_ext.user_default.face_normals.client import Client
    with Client(addon.preferences.get().address, timeout=60) as client:
        [sent] = client.estimate([(tmp_path / "face.png").read_bytes()], outputs=["albedo", "height", "light"])
    assert np.abs(image_array(albedo)[..., :3] - sent["albedo"]).max() < 1e-3
    relative = sent["height"] / 512
    assert (low, high) == pytest.approx((relative.min(), relative.max()), abs=1e-6)
    assert np.abs(low + values * (high - low) - relative).max() < 1e-5 * 512
    assert light == sent["light"]


def test_saved_beside_the_albedo_is_an_srgb_16_bit_png_and_the_height_keeps_its_range(
        clean_file, addon, backend, astronaut, tmp_path):
    bpy = clean_file
    photo = bpy.data.images.load(str(save_photo(astronaut, tmp_path / "anna.png")))
    assert bpy.ops.face_normals.estimate(image_name=photo.name, save_mode="BESIDE") == {"FINISHED"}
    for kind, channels in (("albedo", 3), ("height", 1)):
        stored = cv2.imread(str(tmp_path / f"anna_{kind}.png"), cv2.IMREAD_UNCHANGED)
        assert stored.dtype == np.uint16 and stored.shape[2:] == ((3,) if channels == 3 else ())
        assert bpy.data.images[f"anna_{kind}"].filepath == str(tmp_path / f"anna_{kind}.png")
    assert bpy.data.images["anna_albedo"].colorspace_settings.name == "sRGB"
    assert addon.images.height_range(bpy.data.images["anna_height"]) is not None


def test_an_albedo_above_one_is_saved_clipped_not_wrapped(clean_file, addon, tmp_path):
    """A highlight divided by its shading exceeds 1: in 16 bits it must stay white, not wrap to a
    dark or green patch (as make demo's albedo showed)."""
    albedo = np.full((32, 32, 3), 0.5, np.float32)
    albedo[8:16, 8:16] = (1.4, 1.1, 2.0)
    addon.images.store_assets("anna.png", albedo=albedo, height=None, light=None, photo_rows=32,
                              save_beside=str(tmp_path))
    stored = cv2.imread(str(tmp_path / "anna_albedo.png"), cv2.IMREAD_UNCHANGED)
    assert (stored[8:16, 8:16] == 65535).all() and 45000 < stored[0, 0, 0] < 50000   # 0.5 -> sRGB 0.735


def test_without_outputs_or_from_an_old_server_only_normals_and_mask_are_made(
        clean_file, addon, backend, astronaut, tmp_path):
    bpy = clean_file
    photo = bpy.data.images.load(str(save_photo(astronaut, tmp_path / "plain.png")))
    assert bpy.ops.face_normals.estimate(image_name=photo.name, outputs=set()) == {"FINISHED"}
    assert {"plain_normal", "plain_mask"} <= set(bpy.data.images.keys())
    assert not {"plain_albedo", "plain_height"} & set(bpy.data.images.keys())
    assert addon.images.LIGHT not in photo
    assert set(addon.link.LINK.info["outputs"]) == {"normal", "mask", "albedo", "height", "light"}   # announced
    jobs = addon.backend_jobs
    # What a server announces decides what is asked: one from before outputs gets the old request.
    assert jobs.wanted_outputs({"limits": {}}, jobs.ASSETS) is None
    assert jobs.wanted_outputs({"outputs": ["normal", "mask", "albedo"]}, jobs.ASSETS) == ("normal", "mask", "albedo")


def _sphere_assets(addon, stem="ball", size=64):
    """A photo of a pink ball: its normal map, a pink albedo, a dome height (range kept)."""
    normals, inside = sphere_normals(size)
    addon.images.store_normal_map(f"{stem}_normal", normals)
    albedo = np.where(inside[..., None], [0.6, 0.2, 0.1], [0.2, 0.2, 0.2]).astype(np.float32)
    dome = np.where(inside, normals[..., 2], 0.0) * size / 2          # photo pixels
    addon.images.store_assets(f"{stem}.png", albedo=albedo, height=dome, light=None, photo_rows=size,
                              save_beside=None)
    return normals, inside, albedo


def _card_with_material(bpy, name="Card"):
    bpy.ops.mesh.primitive_plane_add(size=2)
    card = bpy.context.object
    card.name = name
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    card.data.materials.append(material)
    return card, material


def test_apply_to_material_wires_albedo_normals_and_height_once(clean_file, addon):
    bpy = clean_file
    _sphere_assets(addon)
    card, material = _card_with_material(bpy)
    for _ in range(2):                                   # a second run rewires, adds nothing
        assert bpy.ops.face_normals.apply_to_material(image_name="ball_normal") == {"FINISHED"}
    nodes = material.node_tree.nodes
    textures = sorted(n.image.name for n in nodes if n.bl_idname == "ShaderNodeTexImage")
    assert textures == ["ball_albedo", "ball_height", "ball_normal"]
    bsdf = next(n for n in nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    assert bsdf.inputs["Base Color"].links[0].from_node.image.name == "ball_albedo"
    output = next(n for n in nodes if n.bl_idname == "ShaderNodeOutputMaterial")
    [displacement] = [n for n in nodes if n.bl_idname == "ShaderNodeDisplacement"]
    assert output.inputs["Displacement"].links[0].from_node == displacement
    # The dome is 32 photo pixels high on a 64-pixel photo, and the plane's 2 units tall: 1 unit.
    low, high = addon.images.height_range(bpy.data.images["ball_height"])
    assert displacement.inputs["Scale"].default_value == pytest.approx((high - low) * 2, rel=1e-5)
    assert (high - low) == pytest.approx(0.5, abs=0.02) and low == pytest.approx(0.0, abs=1e-6)
    assert material.displacement_method == "DISPLACEMENT"


@pytest.mark.parametrize("engine", ["CYCLES", "BLENDER_EEVEE"])
def test_a_material_with_all_three_maps_renders(clean_file, addon, engine, tmp_path):
    """Lit from the right, the ball's right side is brighter than its left (the normals act) and
    pink (the albedo is the colour), in either engine, headless."""
    bpy = clean_file
    _sphere_assets(addon)
    card, material = _card_with_material(bpy)
    assert bpy.ops.face_normals.apply_to_material(image_name="ball_normal", material_name=card.name) == {"FINISHED"}
    scene = bpy.context.scene
    bpy.ops.object.camera_add(location=(0, 0, 5))
    scene.camera = bpy.context.object
    scene.camera.data.type, scene.camera.data.ortho_scale = "ORTHO", 2.0
    bpy.ops.object.light_add(type="SUN", rotation=(0, np.radians(70), 0))     # from +x
    scene.render.engine = engine
    scene.render.resolution_x = scene.render.resolution_y = 64
    scene.view_settings.view_transform = "Standard"
    if engine == "CYCLES":
        scene.cycles.samples = 4
    scene.render.filepath = str(tmp_path / f"{engine}.png")
    bpy.ops.render.render(write_still=True)
    rendered = cv2.imread(str(tmp_path / f"{engine}.png"))[..., ::-1].astype(np.float32)
    left, right = rendered[24:40, 14:24].mean((0, 1)), rendered[24:40, 40:50].mean((0, 1))
    assert right.mean() > left.mean() + 20
    assert right[0] > right[1] + 20 and right[1] >= right[2]


def test_the_bake_lights_the_albedo_and_falls_back_to_the_photo_without_it(clean_file, addon, astronaut):
    bpy = clean_file
    model = addon.shaders.relight
    normals, inside, albedo = _sphere_assets(addon, "face")
    photo = np.full((64, 64, 3), 0.8, np.float32)        # a bright photo: its own light not divided out
    image = bpy.data.images.new("face.png", 64, 64, float_buffer=True)
    image.pixels.foreach_set(np.dstack([model.srgb_to_linear(photo), np.ones((64, 64))]).astype(np.float32).ravel())
    settings = bpy.context.scene.face_normals_relight
    light = settings.lights.add()
    light.direction = (1, 0, 0.3)

    def baked():
        assert bpy.ops.face_normals.relight_bake(image_name="face.png") == {"FINISHED"}
        return image_array(bpy.data.images["face_relit"])[..., :3]

    lit_albedo = baked()
    expected = model.relight(photo, normals * 0.5 + 0.5, addon.relight.lighting(settings), None, albedo)
    assert np.abs(lit_albedo - expected).max() < 2.5 / 255
    assert lit_albedo[32, 50, 0] > lit_albedo[32, 50, 2] + 0.2              # the pink albedo, lit
    settings.use_albedo = False                                              # an old file's way
    lit_photo = baked()
    expected = model.relight(photo, normals * 0.5 + 0.5, addon.relight.lighting(settings))
    assert np.abs(lit_photo - expected).max() < 2.5 / 255


def test_the_photos_own_light_adds_as_a_fill(clean_file, addon):
    bpy = clean_file
    model = addon.shaders.relight
    photo = bpy.data.images.new("lit.png", 8, 8)
    from bl_ext.user_default.face_normals.core import sh
    fitted = sh.project_light((0, 1, 0), (1, 1, 1))
    photo[addon.images.LIGHT] = json.dumps({"sh": fitted.tolist()})
    settings = bpy.context.scene.face_normals_relight
    assert np.allclose(addon.relight.lighting(settings, photo).sh, addon.relight.lighting(settings).sh)
    settings.fill = 0.5
    added = addon.relight.lighting(settings, photo).sh - addon.relight.lighting(settings).sh
    assert np.allclose(added, 0.5 * fitted, atol=1e-6)
    assert model.sh_irradiance(np.array([0, 1.0, 0]), added)[0] > model.sh_irradiance(np.array([0, -1.0, 0]), added)[0]


def test_the_portrait_lights_the_albedo_without_a_specular_layer_in_standard_view(clean_file, addon, astronaut,
                                                                                 tmp_path):
    bpy = clean_file
    _sphere_assets(addon, "p")
    bpy.data.images.new("p.png", 64, 64)
    assert bpy.ops.face_normals.relightable_portrait(image_name="p.png") == {"FINISHED"}
    material = bpy.data.materials["Face Portrait p.png Material"]
    bsdf = next(n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    assert bsdf.inputs["Base Color"].links[0].from_node.image.name == "p_albedo"
    assert bsdf.inputs["Specular IOR Level"].default_value == 0.0
    assert bpy.context.scene.view_settings.view_transform == "Standard"
    assert bpy.ops.face_normals.relightable_portrait(image_name="p.png", use_albedo=False) == {"FINISHED"}
    assert bsdf.inputs["Base Color"].links[0].from_node.image.name == "p.png"


def test_export_writes_the_photos_maps_into_one_multilayer_exr(clean_file, addon, backend, astronaut, tmp_path):
    import OpenEXR
    bpy = clean_file
    photo = bpy.data.images.load(str(save_photo(astronaut, tmp_path / "exp.png")))
    assert bpy.ops.face_normals.estimate(image_name=photo.name) == {"FINISHED"}
    target = tmp_path / "out.exr"
    # from the photo's albedo, as when the Image Editor shows it: the same photo's maps
    assert bpy.ops.face_normals.export_exr(image_name="exp_albedo", filepath=str(target)) == {"FINISHED"}
    with OpenEXR.File(str(target), separate_channels=True) as exr:
        channels = {name: channel.pixels for name, channel in exr.channels().items()}
    assert {name.split(".")[0] for name in channels} == {"normal", "albedo", "height", "mask"}
    normals = np.dstack([channels[f"normal.{axis}"] for axis in "XYZ"])
    stored = image_array(bpy.data.images["exp_normal"])[..., :3] * 2 - 1
    assert np.abs(normals - stored).max() < 1e-3
    assert np.allclose(np.dstack([channels[f"albedo.{c}"] for c in "RGB"]),
                       image_array(bpy.data.images["exp_albedo"])[..., :3], atol=1e-6)
    low, high = addon.images.height_range(bpy.data.images["exp_height"])
    assert channels["height.Y"].min() == pytest.approx(low * 512, abs=1e-3)
    assert channels["height.Y"].max() == pytest.approx(high * 512, abs=1e-3)


def test_export_without_maps_is_a_clear_error(clean_file, addon, tmp_path):
    bpy = clean_file
    bpy.data.images.new("bare.png", 8, 8)
    with pytest.raises(RuntimeError, match="No maps of 'bare' to export: run Estimate"):
        bpy.ops.face_normals.export_exr(image_name="bare.png", filepath=str(tmp_path / "x.exr"))
    assert not (tmp_path / "x.exr").exists()
