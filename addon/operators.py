"""Operators.  Long work (connecting, starting and stopping the backend, estimating) is a Job
(jobs.py, backend_jobs.py): in the UI a modal timer drives it (progress in the status bar, Esc
cancels); in background mode (`blender -b`, the bpy module) `execute` drives the same steps to
the end.  Nothing in Blender changes until a result has arrived, so a failure leaves the file as
it was."""
from __future__ import annotations

import os

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, StringProperty

from . import environment, images, materials, portrait, preferences
from .backend_setup import RemoveJob, SetupJob
from .backend_jobs import (ASSETS, ConnectJob, EstimateJob, FilesBatchJob, StopJob, batch_on_the_backend,
                           store_batch, store_estimates)
from .client.protocol import EstimateOptions
from .jobs import JobOperator, popup_text
from .link import LINK

SOURCES = [("ACTIVE", "Active Image", "The photo shown in the Image Editor (or the one named)"),
           ("NODE", "Selected Texture Node", "The image of the active Image Texture node"),
           ("FILES", "Files", "Photos chosen in the file browser (several make a batch)")]


class _ConnectOperator(JobOperator):
    """Connect to the backend (starting it when `start`); reports who answered."""
    start = False

    def make_job(self, context):
        return ConnectJob(preferences.get(context), start=self.start)

    def finish(self, context, job):
        self.report({"INFO"}, LINK.status)
        return {"FINISHED"}


class FACE_NORMALS_OT_check_backend(_ConnectOperator, bpy.types.Operator):
    bl_idname = "face_normals.check_backend"
    bl_label = "Connect"
    bl_description = "Ask the backend who it is (device, model)"


class FACE_NORMALS_OT_start_backend(_ConnectOperator, bpy.types.Operator):
    bl_idname = "face_normals.start_backend"
    bl_label = "Start Backend"
    bl_description = "Start the face-normals backend with the Python set in the preferences"
    start = True


class FACE_NORMALS_OT_stop_backend(JobOperator, bpy.types.Operator):
    bl_idname = "face_normals.stop_backend"
    bl_label = "Stop Backend"
    bl_description = "Stop the backend this add-on started"

    def make_job(self, context):
        return StopJob()

    def finish(self, context, job):
        self.report({"INFO"}, "Backend stopped")
        return {"FINISHED"}


class FACE_NORMALS_OT_setup_backend(JobOperator, bpy.types.Operator):
    bl_idname = "face_normals.setup_backend"
    bl_label = "Set Up Backend"
    bl_description = ("Make the backend's own Python environment in the add-on's user folder, install the "
                      "bundled backend and PyTorch into it, and start it (a few minutes; Esc cancels)")

    def make_job(self, context):
        return SetupJob(preferences.get(context))

    def modal(self, context, event):
        result = super().modal(context, event)
        if event.type == "TIMER" or result != {"RUNNING_MODAL"}:   # the preferences show progress, errors
            for window in context.window_manager.windows:
                for area in window.screen.areas:
                    if area.type == "PREFERENCES":
                        area.tag_redraw()
        return result

    def finish(self, context, job):
        self.report({"INFO"}, f"Backend set up and running: {LINK.status}")
        return {"FINISHED"}


class FACE_NORMALS_OT_remove_backend(JobOperator, bpy.types.Operator):
    bl_idname = "face_normals.remove_backend"
    bl_label = "Remove Backend"
    bl_description = "Stop the backend the add-on set up and delete its environment (asks first)"

    @classmethod
    def poll(cls, context):
        """Nothing to remove when no environment was made (a half-made one counts)."""
        return environment.folder().exists()

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        self._modal_after_select = True       # confirmed: execute runs the job on the modal timer
        return context.window_manager.invoke_confirm(
            self, event, title="Remove the Face Normals backend?",
            message="Deletes the backend's environment (PyTorch and the backend: a GB or more) from the "
                    "add-on's folder; Set Up Backend makes it again", confirm_text="Remove", icon="WARNING")

    def make_job(self, context):
        return RemoveJob()

    def finish(self, context, job):
        self.report({"INFO"}, "Backend removed")
        return {"FINISHED"}


class FACE_NORMALS_OT_estimate(JobOperator, bpy.types.Operator):
    """Estimate normal maps of face photos with the backend"""
    bl_idname = "face_normals.estimate"
    bl_label = "Estimate Face Normals"
    bl_options = {"REGISTER"}   # no redo panel: it would re-run the work outside the modal step

    source: EnumProperty(name="Source", items=SOURCES, default="ACTIVE")
    image_name: StringProperty(name="Image", description="With source Active Image: this image "
                                                         "(default: the Image Editor's)")
    filepath: StringProperty(subtype="FILE_PATH", options={"HIDDEN", "SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    filter_image: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    filter_folder: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})   # subfolders can be opened
    detect: BoolProperty(name="Detect Faces", default=EstimateOptions.detect,
                         description="Find the faces; untick if the photo is already a face crop")
    save_mode: EnumProperty(name="Result", items=[("PREFS", "As in Preferences", ""),
                                                  *preferences.SAVE_MODES], default="PREFS")
    outputs: EnumProperty(name="Also Make", options={"ENUM_FLAG"}, default=set(ASSETS),
                          items=[("albedo", "Albedo", "<photo>_albedo: the colours with the photo's light "
                                                      "divided out (linear)"),
                                 ("height", "Height", "<photo>_height: the normals integrated into a "
                                                      "height map (Non-Color)"),
                                 ("light", "Light", "The photo's light, fitted, kept on the photo for "
                                                    "relighting")],
                          description="Beside the normal map and mask, when the backend makes them")

    def invoke(self, context, event):
        if self.source == "FILES" and not (self.files or self.filepath) and not bpy.app.background:
            self._modal_after_select = True       # the file browser calls execute when done
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return super().invoke(context, event)

    def make_job(self, context):
        prefs = preferences.get(context)
        if self.source == "FILES" and batch_on_the_backend(prefs, paths := self._chosen_files()):
            return FilesBatchJob(prefs, paths, detect=self.detect)     # normal maps and masks
        return EstimateJob(prefs, self._collect_sources(context), detect=self.detect, assets=self.outputs)

    def finish(self, context, job):
        prefs = preferences.get(context)
        store = store_batch if isinstance(job, FilesBatchJob) else store_estimates
        made, failed, warnings = store(job, prefs.save_mode if self.save_mode == "PREFS" else self.save_mode)
        for message in failed:
            self.report({"WARNING"} if made else {"ERROR"}, popup_text(message))
        if not made:
            return {"CANCELLED"}
        space = context.space_data
        if getattr(space, "type", "") == "IMAGE_EDITOR" and self.source != "FILES":
            space.image = bpy.data.images[made[0]]
        self.report({"INFO"}, f"Made {', '.join(made)}" + (f"; {len(failed)} failed" if failed else ""))
        for message in warnings:            # last: what the status bar keeps showing
            self.report({"WARNING"}, popup_text(message))
        return {"FINISHED"}

    def _collect_sources(self, context) -> list[tuple[str, object, str | None]]:
        """(name, payload, folder to save beside) per photo; raises ValueError with a message."""
        if self.source == "FILES":
            out: list[tuple[str, object, str | None]] = []
            for path in self._chosen_files():
                try:
                    with open(path, "rb") as handle:
                        out.append((os.path.basename(path), handle.read(), os.path.dirname(path)))
                except OSError as error:
                    raise ValueError(f"Cannot read {path}: {error.strerror}") from None
            return out
        return [images.estimate_source(self._source_image(context))]

    def _chosen_files(self) -> list[str]:
        """The paths of the files chosen in the file browser; raises ValueError when none."""
        names = [f.name for f in self.files if f.name] or ([os.path.basename(self.filepath)]
                                                           if self.filepath else [])
        if not names:
            raise ValueError("No files chosen")
        folder = self.directory or os.path.dirname(self.filepath)
        return [os.path.join(folder, name) for name in names]

    def _source_image(self, context) -> bpy.types.Image:
        if self.source == "NODE":
            obj = context.object
            material = obj.active_material if obj else None
            node = material.node_tree.nodes.active if material and material.node_tree else None
            if node is None or node.bl_idname != "ShaderNodeTexImage" or node.image is None:
                raise ValueError("Select an Image Texture node with an image in the active material")
            return node.image
        return images.require_photo(context, self.image_name)


class FACE_NORMALS_OT_apply_to_material(bpy.types.Operator):
    """Build a material from a photo's maps: Base Color from <photo>_albedo, Normal from the normal
    map (Image Texture, Non-Color -> Normal Map -> Principled BSDF), Displacement from <photo>_height"""
    bl_idname = "face_normals.apply_to_material"
    bl_label = "Apply to Material"
    bl_options = {"REGISTER", "UNDO"}

    image_name: StringProperty(name="Normal Map", description="Default: the shown photo's <photo>_normal "
                                                              "(or the shown image, if it is a normal map)")
    material_name: StringProperty(name="Material", description="Default: the active object's")
    strength: bpy.props.FloatProperty(name="Strength", default=1.0, min=0.0, max=10.0)
    use_albedo: BoolProperty(name="Base Color from Albedo", default=True,
                             description="Wire <photo>_albedo into Base Color, when there is one")
    use_height: BoolProperty(name="Displacement from Height", default=True,
                             description="Wire <photo>_height into the displacement, when there is one")
    photo_height: bpy.props.FloatProperty(
        name="Photo Height", default=0.0, min=0.0, unit="LENGTH",
        description="How tall the photo is on the object, in its own units, for the displacement's scale "
                    "(0: the object's height, or its Y extent if it is flat)")

    def execute(self, context):
        image = bpy.data.images.get(self.image_name) if self.image_name else _shown_normal_map(context)
        if image is None:
            self.report({"ERROR"}, "No normal map for the shown photo: press Estimate first")
            return {"CANCELLED"}
        try:
            material, owner = self._material(context)
            materials.apply_normal_map(material, image, self.strength)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        wired = [image.name]
        stem = image.name.removesuffix("_normal")
        albedo = bpy.data.images.get(f"{stem}_albedo") if self.use_albedo else None
        if albedo is not None:
            materials.apply_base_colour(material, albedo)
            wired.append(albedo.name)
        height = bpy.data.images.get(f"{stem}_height") if self.use_height else None
        span = images.height_range(height) if height is not None else None
        if height is not None and span is not None:
            materials.apply_height(material, height, low=span[0], high=span[1],
                                   photo_height=self.photo_height or _object_height(context.active_object))
            wired.append(height.name)
        self.report({"INFO"}, f"{', '.join(repr(name) for name in wired)} wired into material "
                              f"'{material.name}'{owner}")
        return {"FINISHED"}

    def _material(self, context) -> tuple[bpy.types.Material, str]:
        """The material named, else the active object's; and ' of <object>' for the report (the
        artist sees which object got it: in a new file that is the default cube)."""
        if self.material_name:
            material = bpy.data.materials.get(self.material_name)
            if material is None:
                raise ValueError(f"No material '{self.material_name}'")
            return material, ""
        obj = context.active_object
        if obj is None:
            raise ValueError("No active object: click the object whose material should get the normal map, "
                             "then Apply to Material again")
        if obj.active_material is None:
            raise ValueError(f"'{obj.name}' has no material: add one (Material Properties, New), then "
                             f"Apply to Material again")
        return obj.active_material, f" of '{obj.name}'"


def _object_height(obj) -> float:
    """An object's height in its own units (its mesh's Z extent; Y for a flat card facing +Z), 1
    without a mesh."""
    if obj is None or obj.type != "MESH":
        return 1.0
    extent = [max(c[axis] for c in obj.bound_box) - min(c[axis] for c in obj.bound_box) for axis in range(3)]
    return extent[2] if extent[2] > 1e-6 else extent[1] or 1.0


class FACE_NORMALS_OT_relightable_portrait(bpy.types.Operator):
    """Make a camera-facing card of the photo with its normals, a camera and a key light"""
    bl_idname = "face_normals.relightable_portrait"
    bl_label = "Relightable Portrait"
    bl_options = {"REGISTER", "UNDO"}

    image_name: StringProperty(name="Photo", description="Default: the Image Editor's image")
    normal_name: StringProperty(name="Normal Map", description="Default: <photo>_normal")
    light: EnumProperty(name="Key Light", items=[(k, k.title(), "") for k in portrait.KEY_LIGHT],
                        default="LEFT")
    use_albedo: BoolProperty(name="Light the Albedo", default=True,
                             description="Base colour from <photo>_albedo (the photo's own light divided "
                                         "out) when there is one, else the photo")

    def execute(self, context):
        try:
            photo = images.require_photo(context, self.image_name)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        normal = bpy.data.images.get(self.normal_name or images.derived_name(photo.name, "normal"))
        if normal is None:
            self.report({"ERROR"}, f"No normal map for '{photo.name}': run Estimate Face Normals first")
            return {"CANCELLED"}
        albedo = bpy.data.images.get(images.derived_name(photo.name, "albedo")) if self.use_albedo else None
        made = portrait.build(photo, normal, light=self.light, scene=context.scene, albedo=albedo)
        for area in (context.screen.areas if context.screen else ()):   # so moving the key light shows
            for space in area.spaces:
                if space.type == "VIEW_3D":   # the scene's light and world, not the preview's studio HDRI
                    space.shading.use_scene_lights = space.shading.use_scene_world = True
        self.report({"INFO"}, f"Portrait in collection '{made['collection'].name}'")
        return {"FINISHED"}


def _shown_normal_map(context) -> bpy.types.Image | None:
    """The normal map of the photo the context shows (or that image itself, if it is one)."""
    photo = images.context_photo(context)
    if photo is None:
        return None
    if photo.name.endswith("_normal"):
        return photo
    return bpy.data.images.get(images.derived_name(photo.name, "normal"))


CLASSES = (FACE_NORMALS_OT_setup_backend, FACE_NORMALS_OT_remove_backend, FACE_NORMALS_OT_check_backend,
           FACE_NORMALS_OT_start_backend, FACE_NORMALS_OT_stop_backend,
           FACE_NORMALS_OT_estimate, FACE_NORMALS_OT_apply_to_material, FACE_NORMALS_OT_relightable_portrait)
