"""Operators.  Long work (starting the backend, estimating) runs through the client's
non-blocking step: in the UI a modal timer drives it (progress in the status bar, ESC cancels);
in background mode (`blender -b`, the bpy module) `execute` drives the same step to the end.
Nothing in Blender changes until a result has arrived, so a failure leaves the file as it was."""
from __future__ import annotations

import os
import time

import bpy
import numpy as np
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, StringProperty

from . import images, materials, portrait, preferences
from .client import ServerError
from .client.protocol import EstimateOptions
from .link import LINK, explain

SOURCES = [("ACTIVE", "Active Image", "The image shown in the Image Editor, or `image_name`"),
           ("NODE", "Selected Texture Node", "The image of the active Image Texture node"),
           ("FILES", "Files", "Photos chosen in the file browser (several make a batch)")]


class FACE_NORMALS_OT_check_backend(bpy.types.Operator):
    bl_idname = "face_normals.check_backend"
    bl_label = "Connect"
    bl_description = "Ask the backend who it is (device, model)"

    def execute(self, context):
        prefs = preferences.get(context)
        try:
            info = LINK.check(prefs)
        except ServerError:
            self.report({"ERROR"}, LINK.error)
            return {"CANCELLED"}
        self.report({"INFO"}, f"Backend on {info['device']}, model {info['model']['version']}")
        return {"FINISHED"}


class FACE_NORMALS_OT_start_backend(bpy.types.Operator):
    bl_idname = "face_normals.start_backend"
    bl_label = "Start Backend"
    bl_description = "Start the face-normals backend with the Python set in the preferences"

    def execute(self, context):
        prefs = preferences.get(context)
        try:
            LINK.start_server(prefs)
            if not bpy.app.background:   # the UI must not wait for the model to load
                self.report({"INFO"}, "Starting the backend: press Connect in a few seconds")
                return {"FINISHED"}
            LINK.wait_ready(prefs)
        except (ServerError, OSError) as error:
            self.report({"ERROR"}, f"Could not start the backend: {error}")
            LINK.stop_server()
            return {"CANCELLED"}
        self.report({"INFO"}, LINK.status)
        return {"FINISHED"}


class FACE_NORMALS_OT_stop_backend(bpy.types.Operator):
    bl_idname = "face_normals.stop_backend"
    bl_label = "Stop Backend"
    bl_description = "Stop the backend this add-on started"

    def execute(self, context):
        LINK.stop_server()
        return {"FINISHED"}


class FACE_NORMALS_OT_estimate(bpy.types.Operator):
    """Estimate normal maps of face photos with the backend"""
    bl_idname = "face_normals.estimate"
    bl_label = "Estimate Face Normals"
    bl_options = {"REGISTER", "UNDO"}

    source: EnumProperty(name="Source", items=SOURCES, default="ACTIVE")
    image_name: StringProperty(name="Image", description="With source Active Image: this image "
                                                         "(default: the Image Editor's)")
    filepath: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"SKIP_SAVE"})
    filter_image: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    detect: BoolProperty(name="Detect Faces", default=True,
                         description="Find the faces; untick if the photo is already a face crop")
    save_mode: EnumProperty(name="Result", items=[("PREFS", "As in Preferences", ""),
                                                  *preferences.SAVE_MODES], default="PREFS")

    # state of a modal run
    _timer = None
    _request = None
    _sources = None
    _started = 0.0

    # --- the shared steps --------------------------------------------------------------------
    def _collect_sources(self, context) -> list[tuple[str, object, str | None]]:
        """(name, payload, folder to save beside) per photo; raises ValueError with a message."""
        if self.source == "FILES":
            names = [f.name for f in self.files if f.name] or ([os.path.basename(self.filepath)]
                                                               if self.filepath else [])
            folder = self.directory or os.path.dirname(self.filepath)
            if not names:
                raise ValueError("No files chosen")
            out = []
            for name in names:
                path = os.path.join(folder, name)
                try:
                    with open(path, "rb") as handle:
                        out.append((name, handle.read(), folder))
                except OSError as error:
                    raise ValueError(f"Cannot read {path}: {error.strerror}") from None
            return out
        image = self._source_image(context)
        path = bpy.path.abspath(image.filepath) if image.filepath else ""
        return [(image.name, images.source_payload(image), os.path.dirname(path) if path else None)]

    def _source_image(self, context) -> bpy.types.Image:
        if self.source == "NODE":
            obj = context.object
            material = obj.active_material if obj else None
            node = material.node_tree.nodes.active if material and material.node_tree else None
            if node is None or node.bl_idname != "ShaderNodeTexImage" or node.image is None:
                raise ValueError("Select an Image Texture node with an image in the active material")
            return node.image
        if self.image_name:
            image = bpy.data.images.get(self.image_name)
            if image is None:
                raise ValueError(f"No image named '{self.image_name}'")
            return image
        space = context.space_data
        if getattr(space, "type", None) == "IMAGE_EDITOR" and space.image is not None:
            return space.image
        raise ValueError("Open a photo in the Image Editor, or pass image_name")

    def _submit(self, context):
        prefs = preferences.get(context)
        client = LINK.configure(prefs.address, prefs.timeout)
        options = EstimateOptions(detect=self.detect, convention=prefs.convention.lower(), mask=True)
        # one request per photo: any number fits the server's limits, and progress counts photos
        self._request = client.submit_batch(options, [payload for _, payload, _ in self._sources])

    def _finish(self, context) -> set:
        prefs = preferences.get(context)
        request = self._request
        if request.state == "failed":
            self.report({"ERROR"}, explain(request.error, prefs.address, self._sources[0][0]))
            return {"CANCELLED"}
        mode = prefs.save_mode if self.save_mode == "PREFS" else self.save_mode
        made, failed = [], []
        for (name, _, folder), result in zip(self._sources, request.results):
            if "error" in result:
                failed.append(explain(result["error"], prefs.address, name))
                continue
            height, width = result["normals"].shape[:2]
            centres = [] if result["camera_space"] else [(x / width, y / height) for x, y in result["centres"]]
            normals, mask = _limit_size(result["normals"], result["mask"], prefs.max_size)
            beside = folder if mode == "BESIDE" and folder else None
            normal_image, _ = images.store_results(name, normals, mask, save_beside=beside,
                                                   view_centres=centres)
            made.append(normal_image.name)
        for message in failed:
            self.report({"WARNING"} if made else {"ERROR"}, message)
        if not made:
            return {"CANCELLED"}
        self.report({"INFO"}, f"Made {', '.join(made)}" + (f"; {len(failed)} failed" if failed else ""))
        return {"FINISHED"}

    # --- background: run to completion ------------------------------------------------------
    def execute(self, context):
        prefs = preferences.get(context)
        try:
            self._sources = self._collect_sources(context)
            _ensure_backend_blocking(prefs)
        except (ValueError, ServerError) as error:
            self.report({"ERROR"}, str(error) if isinstance(error, ValueError)
                        else explain(error, prefs.address))
            return {"CANCELLED"}
        self._submit(context)
        client = LINK.client
        while not self._request.finished:
            client.socket.poll(50)
            client.step()
        return self._finish(context)

    # --- UI: modal, never blocking ----------------------------------------------------------
    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        if self.source == "FILES" and not (self.files or self.filepath):
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return self._start_modal(context)

    def _start_modal(self, context):
        prefs = preferences.get(context)
        try:
            self._sources = self._collect_sources(context)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self._request = None
        if LINK.info is None and prefs.auto_start:
            try:
                LINK.check(prefs)
            except ServerError:
                LINK.start_server(prefs)   # the modal step waits for it to answer
        if self._request is None and (LINK.info is not None or LINK.process is None):
            self._submit(context)
        self._started = time.monotonic()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.05, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 100)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            if self._request is not None and not self._request.finished:
                LINK.client.abandon(self._request)
            self._end(context)
            self.report({"WARNING"}, "Estimate cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        prefs = preferences.get(context)
        try:
            if self._request is None:                       # waiting for a backend we started
                if LINK.server_ready(prefs):
                    self._submit(context)
                elif time.monotonic() - self._started > 120:
                    raise ServerError("unavailable", "the backend did not start within 120 s")
                return {"RUNNING_MODAL"}
            LINK.client.step()
        except ServerError as error:
            self._end(context)
            self.report({"ERROR"}, f"Could not start the backend: {error}")
            return {"CANCELLED"}
        request = self._request
        if not request.finished:
            share = request.done / request.total if request.total else 0.0
            context.window_manager.progress_update(int(share * 100))
            context.workspace.status_text_set(
                f"Face Normals: estimating {len(self._sources)} photo(s)"
                + (f", {request.done}/{request.total}" if request.total else "") + "  (Esc to cancel)")
            return {"RUNNING_MODAL"}
        self._end(context)
        return self._finish(context)

    def _end(self, context):
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        context.workspace.status_text_set(None)


class FACE_NORMALS_OT_apply_to_material(bpy.types.Operator):
    """Wire a normal map into a material: Image Texture (Non-Color) -> Normal Map -> Principled BSDF"""
    bl_idname = "face_normals.apply_to_material"
    bl_label = "Apply Normals to Material"
    bl_options = {"REGISTER", "UNDO"}

    image_name: StringProperty(name="Normal Map", description="Default: the newest *_normal image")
    material_name: StringProperty(name="Material", description="Default: the active object's")
    strength: bpy.props.FloatProperty(name="Strength", default=1.0, min=0.0, max=10.0)

    def execute(self, context):
        image = bpy.data.images.get(self.image_name) if self.image_name else _newest_normal_image()
        material = (bpy.data.materials.get(self.material_name) if self.material_name
                    else getattr(context.object, "active_material", None))
        if image is None:
            self.report({"ERROR"}, "No normal map: estimate one first, or name it in image_name")
            return {"CANCELLED"}
        if material is None:
            self.report({"ERROR"}, "No material: select an object with a material, or pass material_name")
            return {"CANCELLED"}
        try:
            materials.apply_normal_map(material, image, self.strength)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"'{image.name}' wired into '{material.name}'")
        return {"FINISHED"}


class FACE_NORMALS_OT_relightable_portrait(bpy.types.Operator):
    """Make a camera-facing card of the photo with its normals, a camera and a key light"""
    bl_idname = "face_normals.relightable_portrait"
    bl_label = "Relightable Portrait"
    bl_options = {"REGISTER", "UNDO"}

    image_name: StringProperty(name="Photo", description="Default: the Image Editor's image")
    normal_name: StringProperty(name="Normal Map", description="Default: <photo>_normal")
    light: EnumProperty(name="Key Light", items=[(k, k.title(), "") for k in portrait.KEY_LIGHT],
                        default="LEFT")

    def execute(self, context):
        photo = images.context_photo(context, self.image_name)
        if photo is None:
            self.report({"ERROR"}, "No photo: open one in the Image Editor, or pass image_name")
            return {"CANCELLED"}
        normal = bpy.data.images.get(self.normal_name or f"{os.path.splitext(photo.name)[0]}_normal")
        if normal is None:
            self.report({"ERROR"}, f"No normal map for '{photo.name}': run Estimate Face Normals first")
            return {"CANCELLED"}
        made = portrait.build(photo, normal, light=self.light, scene=context.scene)
        self.report({"INFO"}, f"Portrait in collection '{made['collection'].name}'")
        return {"FINISHED"}


def _ensure_backend_blocking(prefs) -> None:
    """Background mode: make sure a backend answers, starting one if the preferences allow."""
    try:
        LINK.check(prefs)
        return
    except ServerError:
        if not prefs.auto_start:
            raise
    LINK.start_server(prefs)
    LINK.wait_ready(prefs)


def _limit_size(normals: np.ndarray, mask, max_size: int):
    """Nearest-neighbour shrink by a whole factor when the result is larger than max_size."""
    if max_size <= 0 or max(normals.shape[:2]) <= max_size:
        return normals, mask
    step = -(-max(normals.shape[:2]) // max_size)
    normals = normals[::step, ::step]
    normals = normals / np.linalg.norm(normals, axis=-1, keepdims=True).clip(1e-6)
    return normals, None if mask is None else mask[::step, ::step]


def _newest_normal_image():
    found = [image for image in bpy.data.images if image.name.endswith("_normal")]
    return found[-1] if found else None


CLASSES = (FACE_NORMALS_OT_check_backend, FACE_NORMALS_OT_start_backend, FACE_NORMALS_OT_stop_backend,
           FACE_NORMALS_OT_estimate, FACE_NORMALS_OT_apply_to_material, FACE_NORMALS_OT_relightable_portrait)
