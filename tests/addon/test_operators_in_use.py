"""What users of a real Blender window met (issue 22's numbered list), checked headless where the
bpy module can show it: clear errors instead of tracebacks, the right image picked, the portrait
where it can be seen, no redo panel re-running work outside the modal step."""
import numpy as np
import pytest

from .conftest import save_photo

pytestmark = pytest.mark.slow   # Blender (the bpy module) with the extension installed


def test_a_backend_python_that_does_not_exist_is_a_clear_error(clean_file, addon, astronaut, tmp_path,
                                                                closed_port):
    bpy = clean_file
    prefs = addon.preferences.get()
    saved = (prefs.address, prefs.auto_start, prefs.timeout, prefs.python_command, prefs.backend_source)
    prefs.address, prefs.auto_start, prefs.timeout = f"tcp://127.0.0.1:{closed_port}", True, 1.0
    prefs.python_command, prefs.backend_source = str(tmp_path / "no" / "python"), "OWN"
    try:
        photo = bpy.data.images.load(str(save_photo(astronaut, tmp_path / "a.png")))
        with pytest.raises(RuntimeError, match="Could not start the backend with .*Check Backend Python") as caught:
            bpy.ops.face_normals.estimate(image_name=photo.name)
        assert "Traceback" not in str(caught.value)
    finally:
        prefs.address, prefs.auto_start, prefs.timeout, prefs.python_command, prefs.backend_source = saved
        addon.link.LINK.forget_server()


def test_apply_to_material_wires_the_shown_photos_normal_map(clean_file, addon, tmp_path):
    bpy = clean_file
    flat = np.zeros((8, 8, 3), np.float32)
    flat[..., 2] = 1
    for stem in ("anna", "zoe"):               # zoe_normal sorts last: the old default took it
        bpy.data.images.new(f"{stem}.png", 8, 8)
        addon.images.store_normal_map(f"{stem}_normal", flat)
    bpy.context.scene.face_normals.photo = bpy.data.images["anna.png"]   # the sidebar's picker
    material = bpy.data.materials.new("Skin")
    material.use_nodes = True
    assert bpy.ops.face_normals.apply_to_material(material_name="Skin") == {"FINISHED"}
    textures = [n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeTexImage"]
    assert [t.image.name for t in textures] == ["anna_normal"]


def test_apply_to_material_says_which_object_it_took_and_refuses_without_one(clean_file, addon, capfd):
    bpy = clean_file
    flat = np.zeros((8, 8, 3), np.float32)
    flat[..., 2] = 1
    addon.images.store_normal_map("anna_normal", flat)
    with pytest.raises(RuntimeError, match="No active object: click the object"):
        bpy.ops.face_normals.apply_to_material(image_name="anna_normal")
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    with pytest.raises(RuntimeError, match=f"'{cube.name}' has no material: add one"):
        bpy.ops.face_normals.apply_to_material(image_name="anna_normal")
    cube.data.materials.append(bpy.data.materials.new("Stone"))
    capfd.readouterr()
    assert bpy.ops.face_normals.apply_to_material(image_name="anna_normal") == {"FINISHED"}
    assert f"'anna_normal' wired into material 'Stone' of '{cube.name}'" in capfd.readouterr().out


def test_the_portrait_stands_beside_the_scene_and_casts_no_shadow(clean_file, addon, astronaut, tmp_path):
    bpy = clean_file
    bpy.ops.mesh.primitive_cube_add(size=2)               # the default scene's cube at the origin
    cube = bpy.context.object
    photo = bpy.data.images.load(str(save_photo(astronaut, tmp_path / "p.png")))
    addon.images.store_normal_map("p_normal", np.dstack([np.zeros((512, 512, 2), np.float32),
                                                         np.ones((512, 512), np.float32)]))
    assert bpy.ops.face_normals.relightable_portrait(image_name=photo.name) == {"FINISHED"}
    card = bpy.data.objects["Face Portrait p.png Card"]
    camera = bpy.data.objects["Face Portrait p.png Camera"]
    card_left = min(v.co.x for v in card.data.vertices) + card.location.x
    assert card_left > max(v[0] for v in cube.bound_box)          # not hidden inside the cube
    assert camera.location.x == pytest.approx(card.location.x)   # still framing the card
    assert card.visible_shadow is False
    assert bpy.ops.face_normals.relightable_portrait(image_name=photo.name) == {"FINISHED"}
    assert card.location.x == pytest.approx(bpy.data.objects["Face Portrait p.png Card"].location.x)


def test_the_3d_viewports_actions_find_the_photo_picked_in_the_sidebar(clean_file, addon, astronaut, tmp_path):
    bpy = clean_file
    bpy.ops.object.camera_add()
    bpy.context.scene.camera = bpy.context.object
    photo = bpy.data.images.load(str(save_photo(astronaut, tmp_path / "side.png")))
    bpy.context.scene.face_normals.photo = photo
    assert bpy.ops.face_normals.camera_background() == {"FINISHED"}
    assert bpy.context.scene.camera.data.background_images[0].image == photo


def test_long_work_offers_no_redo_panel_and_the_file_browser_lists_folders(addon):
    import bpy
    for operator in (bpy.types.FACE_NORMALS_OT_estimate, bpy.types.FACE_NORMALS_OT_project_normals):
        assert "UNDO" not in operator.bl_options     # the redo panel would re-run the blocking path
    properties = bpy.ops.face_normals.estimate.get_rna_type().properties
    assert properties["filter_folder"].default is True
    assert all(properties[name].is_hidden for name in ("filepath", "directory", "files"))


def test_a_failed_start_quotes_its_own_log_not_an_earlier_runs(addon, tmp_path):
    from backend.client.launcher import free_loopback_address
    from bl_ext.user_default.face_normals.client import ServerError
    from bl_ext.user_default.face_normals.client.launcher import ServerProcess
    log = tmp_path / "backend.log"
    log.write_text("serving on tcp://127.0.0.1:9 from an earlier run\n")
    process = ServerProcess(address=free_loopback_address(), log_path=log,
                            extra_args=("--weights", str(tmp_path / "missing.safetensors")))
    process.start()
    with pytest.raises(ServerError) as caught:
        process.wait_ready(timeout=60)
    process.stop()
    assert "weights file not found" in str(caught.value) and "earlier run" not in str(caught.value)
