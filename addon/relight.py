"""Relighting preview in the Image Editor: drag the mouse over a portrait to move the light and see it
relit at once (shaders/relight.frag.glsl drawn over the image), tune the lights in the sidebar, and
bake the relit view into a new image.  The light falls on the photo's albedo (`<photo>_albedo`, the
photo with its own fitted light divided out) when the estimator made one, as a renderer lights a
surface; without one (older estimates, or Light the Albedo off) on the photo with "Remove Original
Shading" of a guessed frontal shading divided out.  The photo's own fitted light can be added as a
fill (`Photo's Light as Fill`).

The settings live on the scene (`scene.face_normals_relight`), so the preview, the bake and scripts
read the same ones.  The bake runs the GLSL offscreen in the UI and the numpy reference of the same
model (shaders/relight.py) in background mode, where Blender's gpu module is not available, and for
photos larger than the GPU's textures."""
from __future__ import annotations

import math

import bpy
import numpy as np
from bpy.props import (BoolProperty, CollectionProperty, FloatProperty, FloatVectorProperty, IntProperty,
                       PointerProperty, StringProperty)

from . import images
from .shaders import relight as model

DEFAULT_LIGHT = (-0.6, 0.4, 0.7)     # upper left, in front: a classic key light
PREVIEW_MAX_SIDE = 2048              # the preview's textures: enough for a screen, bounded GPU memory


class FaceNormalsLight(bpy.types.PropertyGroup):
    direction: FloatVectorProperty(name="Direction", subtype="DIRECTION", size=3, default=DEFAULT_LIGHT,
                                   description="Toward the light, in the photo's camera space (+X right, +Y up, "
                                               "+Z toward the viewer)")
    colour: FloatVectorProperty(name="Colour", subtype="COLOR", size=3, min=0.0, max=1.0, default=(1.0, 1.0, 1.0))
    intensity: FloatProperty(name="Intensity", default=1.0, min=0.0, soft_max=5.0)


class FaceNormalsRelight(bpy.types.PropertyGroup):
    normal_map: PointerProperty(name="Normal Map", type=bpy.types.Image,
                                description="Default: <photo>_normal")
    mask: PointerProperty(name="Mask", type=bpy.types.Image,
                          description="Where to relight; default: <photo>_mask, else everywhere")
    albedo: PointerProperty(name="Albedo", type=bpy.types.Image,
                            description="The colours to light; default: <photo>_albedo")
    use_albedo: BoolProperty(name="Light the Albedo", default=True,
                             description="Light the albedo (the photo's own light divided out) when there is "
                                         "one; off, or without one: the photo, de-lit by Remove Original Shading")
    fill: FloatProperty(name="Photo's Light as Fill", default=0.0, min=0.0, soft_max=1.0,
                        description="Add the light fitted to the photo (kept with it by Estimate), this strong")
    lights: CollectionProperty(type=FaceNormalsLight)
    active_light: IntProperty(name="Dragged Light", default=0, min=0, max=model.MAX_LIGHTS - 1,
                              description="The light the mouse moves in the preview")
    ambient_colour: FloatVectorProperty(name="Ambient", subtype="COLOR", size=3, min=0.0, max=1.0,
                                        default=(1.0, 1.0, 1.0))
    ambient_strength: FloatProperty(name="Ambient Strength", default=0.25, min=0.0, soft_max=2.0)
    ambient_from_above: FloatProperty(name="From Above", default=0.3, min=-1.0, max=1.0,
                                      description="Ambient brighter on faces turned up (positive) or down")
    delight: FloatProperty(name="Remove Original Shading", default=0.7, min=0.0, max=1.0,
                           description="Without an albedo: how much of a frontal-light shading estimate is "
                                       "divided out of the photo")
    # 0 by default: the photo already holds its highlights, and a white lobe over smooth clothes
    # turned the black turtleneck grey (docs/relighting.md)
    specular: FloatProperty(name="Specular", default=0.0, min=0.0, soft_max=1.0)
    roughness: FloatProperty(name="Roughness", default=0.5, min=0.05, max=1.0)
    exposure: FloatProperty(name="Exposure", default=0.0, soft_min=-4.0, soft_max=4.0, description="Stops")


def lighting(settings: FaceNormalsRelight, photo: bpy.types.Image | None = None) -> model.Lighting:
    """The model's parameters from the scene's settings; with no light listed, one default light;
    with a photo whose light Estimate kept, that light times `fill` added to the ambient."""
    lights = [model.Light(tuple(light.direction), tuple(light.colour), light.intensity)
              for light in settings.lights[:model.MAX_LIGHTS]] or [model.Light(DEFAULT_LIGHT)]
    ambient = model.ambient_sh(tuple(settings.ambient_colour), settings.ambient_strength,
                               settings.ambient_from_above)
    fitted = images.photo_light(photo) if photo is not None and settings.fill > 0 else None
    return model.Lighting(lights, ambient if fitted is None else ambient + settings.fill * fitted,
                          delight=settings.delight, specular=settings.specular,
                          roughness=settings.roughness, exposure=settings.exposure)


def light_at(u: float, v: float) -> tuple[float, float, float]:
    """Direction toward a light seen at (u, v) over the image (0..1 each): the point on a sphere
    inscribed in the image, so the middle is frontal and the edges graze."""
    x, y = 2 * u - 1, 2 * v - 1
    radius = math.hypot(x, y)
    if radius >= 1:
        return x / radius, y / radius, 0.0
    return x, y, math.sqrt(1 - radius * radius)


def _resized(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resample (maps estimated at a reduced size still line up with the photo)."""
    if array.shape[:2] == (height, width):
        return array
    rows = (np.arange(height) * array.shape[0] // height)
    cols = (np.arange(width) * array.shape[1] // width)
    return array[rows][:, cols]


def inputs(photo: bpy.types.Image, settings: FaceNormalsRelight, max_side: int = 0):
    """(photo sRGB-encoded, normal map encoded, mask or None) as float32 arrays at the photo's size
    (every n-th pixel when max_side is set and the photo is larger)."""
    normal_image = settings.normal_map or bpy.data.images.get(images.derived_name(photo.name, "normal"))
    if normal_image is None:
        raise ValueError(f"No normal map for '{photo.name}': estimate one, or pick it in the Relight panel")
    mask_image = settings.mask or bpy.data.images.get(images.derived_name(photo.name, "mask"))
    pixels = images.image_pixels(photo)
    if photo.is_float and photo.colorspace_settings.name != "Non-Color":
        pixels = model.linear_to_srgb(pixels)    # float images hold linear light; the model takes sRGB
    if max_side and max(pixels.shape[:2]) > max_side:
        step = -(-max(pixels.shape[:2]) // max_side)
        pixels = pixels[::step, ::step]
    height, width = pixels.shape[:2]
    normal_map = _resized(images.image_pixels(normal_image), height, width)
    mask = None if mask_image is None else _resized(images.image_pixels(mask_image)[..., 0], height, width)
    return pixels, normal_map, mask


def albedo_input(photo: bpy.types.Image, settings: FaceNormalsRelight, height: int, width: int) -> np.ndarray | None:
    """The photo's albedo (linear, at the size `inputs` gave), or None: not wanted or not made."""
    if not settings.use_albedo:
        return None
    image = settings.albedo or bpy.data.images.get(images.derived_name(photo.name, "albedo"))
    return None if image is None else _resized(images.linear_pixels(image), height, width)


def _gpu_texture_limit() -> int:
    import gpu
    return gpu.capabilities.max_texture_size_get()


class FACE_NORMALS_OT_relight_bake(bpy.types.Operator):
    """Bake the relit photo, with the Relight panel's lights, into a new image <photo>_relit"""
    bl_idname = "face_normals.relight_bake"
    bl_label = "Bake Relit Image"
    bl_options = {"REGISTER", "UNDO"}

    image_name: StringProperty(name="Photo", description="Default: the Image Editor's image")

    def execute(self, context):
        settings = context.scene.face_normals_relight
        try:
            photo = images.require_photo(context, self.image_name)
            pixels, normal_map, mask = inputs(photo, settings)
            albedo = albedo_input(photo, settings, *pixels.shape[:2])
            if bpy.app.background or max(pixels.shape[:2]) > _gpu_texture_limit():
                relit = model.relight(pixels, normal_map, lighting(settings, photo), mask, albedo)
            else:
                from .relight_gpu import RelitImage
                relit = RelitImage(pixels, normal_map, mask, albedo).render(lighting(settings, photo))
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        baked = images.store_colour(images.derived_name(photo.name, "relit"), relit)
        if getattr(context.space_data, "type", "") == "IMAGE_EDITOR":
            context.space_data.image = baked          # the result, where the artist looks
        self.report({"INFO"}, f"Baked '{baked.name}'")
        return {"FINISHED"}


def over_image(area, x: int, y: int) -> bool:
    """Whether window point (x, y) is on the editor's image itself: in its main region and not on
    a region drawn over or beside it (sidebar, toolbar, header), which keep their own clicks."""
    main = next(r for r in area.regions if r.type == "WINDOW")
    if not (main.x <= x < main.x + main.width and main.y <= y < main.y + main.height):
        return False
    return not any(r.type != "WINDOW" and r.width > 1 and r.height > 1 and
                   r.x <= x < r.x + r.width and r.y <= y < r.y + r.height for r in area.regions)


class FACE_NORMALS_OT_relight_preview(bpy.types.Operator):
    """Draw the photo relit over itself; drag over the image with the left mouse button to move the
    light, Esc or right-click to end (or press Preview again)"""
    bl_idname = "face_normals.relight_preview"
    bl_label = "Relight Preview"

    # One preview at a time: its draw handler, and which start it belongs to (the panel shows the
    # button pressed while it runs; pressing it again ends that preview)
    _handle = None
    _session = 0

    @classmethod
    def running(cls) -> bool:
        return cls._handle is not None

    @classmethod
    def poll(cls, context):
        return getattr(context.space_data, "type", "") == "IMAGE_EDITOR" and context.space_data.image

    def invoke(self, context, event):
        from .relight_gpu import RelitImage
        cls = type(self)
        if cls.running():
            cls._end(context)
            return {"FINISHED"}
        settings = context.scene.face_normals_relight
        try:
            self.photo = images.require_photo(context)      # also when the editor shows its normal map
            pixels, normal_map, mask = inputs(self.photo, settings, PREVIEW_MAX_SIDE)
            self.relit = RelitImage(pixels, normal_map, mask, albedo_input(self.photo, settings, *pixels.shape[:2]))
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        context.space_data.image = self.photo       # drawn over the photo itself, at the photo's size
        if not settings.lights:
            settings.lights.add()
        self.dragging = False
        self.area = context.area               # invoked from the sidebar or the image: the same editor
        cls._session += 1
        self.session = cls._session
        cls._handle = bpy.types.SpaceImageEditor.draw_handler_add(self.draw_relit, (), "WINDOW", "POST_PIXEL")
        context.window_manager.modal_handler_add(self)
        self._hint(context)
        context.area.tag_redraw()
        return {"RUNNING_MODAL"}

    def execute(self, context):
        self.report({"ERROR"}, "The preview is interactive: use Bake Relit Image in scripts")
        return {"CANCELLED"}

    def draw_relit(self):
        context = bpy.context
        view = context.region.view2d     # the image spans (0, 0)-(1, 1) in the Image Editor's view space
        corners = (view.view_to_region(0.0, 0.0, clip=False), view.view_to_region(1.0, 1.0, clip=False))
        self.relit.draw(lighting(context.scene.face_normals_relight, self.photo), corners, linear_output=True)

    def _hint(self, context) -> None:
        """How to use the preview, in the status bar while it runs."""
        settings = context.scene.face_normals_relight
        index = min(settings.active_light, len(settings.lights) - 1) + 1
        context.workspace.status_text_set(
            f"Relight Preview: drag over the image to move Light {index}  \u2022  the sidebar's Relight "
            f"panel sets the lights  \u2022  Esc, right-click or Preview again: end")

    def modal(self, context, event):
        cls = type(self)
        if cls._session != self.session or not cls.running():    # ended by the Preview button
            return {"FINISHED", "PASS_THROUGH"}
        try:
            area = self.area
            area.tag_redraw()
            on_image = over_image(area, event.mouse_x, event.mouse_y)
        except ReferenceError:                  # the editor was closed or changed
            cls._end(context)
            return {"CANCELLED", "PASS_THROUGH"}
        if event.type == "ESC" or (event.type == "RIGHTMOUSE" and on_image):
            cls._end(context)
            return {"FINISHED"}
        if event.type == "LEFTMOUSE":
            self.dragging = event.value == "PRESS" and on_image
            if not (on_image or self.dragging):
                return {"PASS_THROUGH"}        # a click in the sidebar or header is theirs
        if self.dragging and event.type in {"MOUSEMOVE", "LEFTMOUSE"}:
            settings = context.scene.face_normals_relight
            light = settings.lights[min(settings.active_light, len(settings.lights) - 1)]
            main = next(r for r in area.regions if r.type == "WINDOW")
            u, v = main.view2d.region_to_view(event.mouse_x - main.x, event.mouse_y - main.y)
            light.direction = light_at(u, v)
            self._hint(context)
            return {"RUNNING_MODAL"}
        return {"PASS_THROUGH"}

    def cancel(self, context):
        """Blender ends the preview itself (a file is loaded, the window closes)."""
        if type(self)._session == self.session:
            type(self)._end(context)

    @classmethod
    def _end(cls, context) -> None:
        if cls._handle is not None:
            bpy.types.SpaceImageEditor.draw_handler_remove(cls._handle, "WINDOW")
            cls._handle = None
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        for area in context.screen.areas if context.screen else ():
            if area.type == "IMAGE_EDITOR":
                area.tag_redraw()


class FACE_NORMALS_OT_relight_light_add(bpy.types.Operator):
    """Add a light to the relighting preview (at most four)"""
    bl_idname = "face_normals.relight_light_add"
    bl_label = "Add Light"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        lights = context.scene.face_normals_relight.lights
        if len(lights) >= model.MAX_LIGHTS:
            self.report({"ERROR"}, f"At most {model.MAX_LIGHTS} lights")
            return {"CANCELLED"}
        lights.add()
        return {"FINISHED"}


class FACE_NORMALS_OT_relight_light_remove(bpy.types.Operator):
    """Remove a light from the relighting preview"""
    bl_idname = "face_normals.relight_light_remove"
    bl_label = "Remove Light"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(name="Light", default=0, min=0)

    def execute(self, context):
        lights = context.scene.face_normals_relight.lights
        if self.index >= len(lights):
            return {"CANCELLED"}
        lights.remove(self.index)
        return {"FINISHED"}


def register_settings():
    bpy.types.Scene.face_normals_relight = PointerProperty(type=FaceNormalsRelight)


def unregister_settings():
    del bpy.types.Scene.face_normals_relight


CLASSES = (FaceNormalsLight, FaceNormalsRelight, FACE_NORMALS_OT_relight_bake, FACE_NORMALS_OT_relight_preview,
           FACE_NORMALS_OT_relight_light_add, FACE_NORMALS_OT_relight_light_remove)
