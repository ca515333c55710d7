"""Operators that texture a face asset from photos: line a camera up with a photo, then project the
photo's estimated normals (and optionally its colours, and its height) onto the mesh's own UV maps."""
from __future__ import annotations

import bpy
import numpy as np
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import images, materials, preferences, projection, texels
from .backend_jobs import EstimateJob, store_estimates
from .job import Job, JobFailed
from .jobs import JobOperator

BLEND_MODES = [("FACING", "Blend by Facing", "Each photo weighted by how squarely its camera sees the surface"),
               ("FILL", "Fill Gaps", "Later photos fill only what the earlier ones did not see")]


class FaceNormalsView(bpy.types.PropertyGroup):
    """One photo and the camera lined up with it."""
    photo: StringProperty(name="Photo")
    camera: StringProperty(name="Camera")


class FACE_NORMALS_OT_camera_background(bpy.types.Operator):
    """Show the photo as the camera's background and match the render size to it, so the camera
    can be lined up with the face"""
    bl_idname = "face_normals.camera_background"
    bl_label = "Photo as Camera Background"
    bl_options = {"REGISTER", "UNDO"}

    image_name: StringProperty(name="Photo", description="Default: the Image Editor's image")
    camera_name: StringProperty(name="Camera", description="Default: the scene camera")

    def execute(self, context):
        camera = bpy.data.objects.get(self.camera_name) if self.camera_name else context.scene.camera
        try:
            photo = images.require_photo(context, self.image_name)
            if camera is None or camera.type != "CAMERA":
                raise ValueError(f"No camera '{self.camera_name}'" if self.camera_name else
                                 "The scene has no camera: add one (Add > Camera) and make it the scene's")
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        backgrounds = camera.data.background_images
        entry = next((b for b in backgrounds if b.image == photo), None) or backgrounds.new()
        entry.image, entry.alpha, entry.frame_method = photo, 0.6, "STRETCH"
        entry.display_depth = "FRONT"
        camera.data.show_background_images = True
        render = context.scene.render
        render.resolution_x, render.resolution_y = photo.size
        render.resolution_percentage = 100
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0
        self.report({"INFO"}, f"'{photo.name}' behind '{camera.name}'; render size {photo.size[0]}x{photo.size[1]}")
        return {"FINISHED"}


class FACE_NORMALS_OT_project_normals(JobOperator, bpy.types.Operator):
    """Project photos' estimated normals through their cameras onto the selected mesh, baked into
    a tangent-space normal map in its UV space and wired into its material"""
    bl_idname = "face_normals.project_normals"
    bl_label = "Project Normals onto Mesh"
    bl_options = {"REGISTER"}   # no redo panel: it would re-run the work outside the modal step

    object_name: StringProperty(name="Mesh", description="Default: the active object")
    image_name: StringProperty(name="Photo", description="Default: the Image Editor's image, else the "
                                                         "scene camera's background image")
    camera_name: StringProperty(name="Camera", description="Default: the scene camera")
    views: CollectionProperty(type=FaceNormalsView, name="Views",
                              description="Several photo/camera pairs of the same asset (a batch); "
                                          "when given, Photo and Camera are not used")
    resolution: IntProperty(name="Resolution", default=1024, min=64, max=8192)
    blend: EnumProperty(name="Several Photos", items=BLEND_MODES, default="FACING")
    colour: BoolProperty(name="Project Colour Too", default=False,
                         description="Also bake a base colour texture: the photo's albedo where Estimate "
                                     "made one (<object>_projected_albedo, linear), else the photo")
    strength: FloatProperty(name="Strength", default=1.0, min=0.0, max=10.0)
    height: BoolProperty(name="Displacement from Height", default=True,
                         description="Also bake the photos' heights (<object>_projected_height) into the "
                                     "material's displacement, when every photo has one")

    def make_job(self, context):
        obj = bpy.data.objects.get(self.object_name) if self.object_name else context.active_object
        if obj is None or obj.type != "MESH":
            raise ValueError("Select the mesh to project onto (click it in the 3D viewport)")
        if not obj.data.uv_layers:
            raise ValueError(f"'{obj.name}' has no UV map to bake into")
        pairs = [(v.photo, v.camera) for v in self.views] or [(self.image_name, self.camera_name)]
        views = []
        for photo_name, camera_name in pairs:
            photo = images.require_photo(context, photo_name)
            camera = bpy.data.objects.get(camera_name) if camera_name else context.scene.camera
            if camera is None or camera.type != "CAMERA":
                raise ValueError(f"No camera '{camera_name}'" if camera_name else "The scene has no camera")
            views.append((photo.name, camera.name))
        return ProjectJob(context, obj.name, views, self.resolution, self.blend, self.colour, self.strength,
                          self.height)

    def finish(self, context, job):
        made = ", ".join(repr(name) for name in job.made)
        self.report({"INFO"}, f"{made} wired into '{job.material}' "
                              f"({len(job.views)} photo{'s' if len(job.views) > 1 else ''}){job.note}")
        return {"FINISHED"}


class ProjectJob(Job):
    """Estimate the photos that have no normal map yet (one batch), sample the mesh's UV surface,
    project each photo, then combine and wire the result: one phase per step, so the UI shows
    progress and Esc works between them."""

    title = "Projecting normals"

    def __init__(self, context, object_name: str, views: list[tuple[str, str]], resolution: int,
                 blend: str, colour: bool, strength: float, height: bool):
        super().__init__()
        self.object_name, self.views = object_name, views
        self.resolution, self.blend, self.colour, self.strength = resolution, blend, colour, strength
        self.height = height         # asked for; only where every photo has a height map (else `note`)
        self.prefs = preferences.get(context)
        missing = [photo for photo, _ in views if images.derived_name(photo, "normal") not in bpy.data.images]
        self.estimate = (EstimateJob(self.prefs, [images.estimate_source(bpy.data.images[p])
                                                  for p in dict.fromkeys(missing)], detect=True)
                         if missing else None)
        self.surface: texels.Surface | None = None
        self.projections: list = []
        self.albedo = False          # every photo has an albedo: project those (else the photos)
        self.made: list[str] = []
        self.material = self.note = ""
        self.total = len(views) + 2

    def step(self) -> bool:
        if self.estimate is not None:
            if not self.estimate.step():
                self.status = f"estimating {self.estimate.status}"
                return False
            _, failed, _ = store_estimates(self.estimate, self.prefs.save_mode)
            if failed:
                raise JobFailed(f"No normal map, and estimating one failed: {failed[0]}")
            self.estimate = None
            return False
        obj = bpy.data.objects[self.object_name]
        depsgraph = bpy.context.evaluated_depsgraph_get()
        if self.surface is None:
            self.status = "sampling the surface"
            self.surface = projection.sample_surface(obj, depsgraph, obj.data.uv_layers.active.name,
                                                     self.resolution)
        elif len(self.projections) < len(self.views):
            photo_name, camera_name = self.views[len(self.projections)]
            self.status = f"projecting '{photo_name}'"
            self.projections.append(self._project(obj, bpy.data.images[photo_name],
                                                  bpy.data.objects[camera_name], depsgraph))
        else:
            self._store(obj)
            return True
        self.done += 1
        return False

    def _project(self, obj, photo, camera, depsgraph):
        assert self.surface is not None
        normal_map, mask = _estimated_maps(photo, self.prefs.convention, camera, depsgraph)
        if not self.projections:        # estimates done: albedo, height only if every photo has one (no mixing)
            self.albedo = all(images.derived_name(name, "albedo") in bpy.data.images for name, _ in self.views)
            self.height = self.height and self._every_photo_has_a_height()
        colour = None
        if self.colour:
            colour = (images.linear_pixels(bpy.data.images[images.derived_name(photo.name, "albedo")])
                      if self.albedo else images.image_pixels(photo))
        if colour is not None and colour.shape[:2] != normal_map.shape[:2]:
            raise JobFailed(f"'{photo.name}' and its normal map differ in size")
        height = None
        if self.height:
            height_image = bpy.data.images[images.derived_name(photo.name, "height")]
            span = images.height_range(height_image)
            assert span is not None            # _every_photo_has_a_height
            low, high = span
            height = low + images.image_pixels(height_image)[..., 0] * (high - low)
            if height.shape != normal_map.shape[:2]:
                raise JobFailed(f"'{photo.name}' and its height map differ in size")
        return projection.project(self.surface, obj, camera, depsgraph, normal_map, mask, colour, height)

    def _every_photo_has_a_height(self) -> bool:
        """Whether every photo has a height map with its range; else says which has none in `note`."""
        for name, _ in self.views:
            found = bpy.data.images.get(images.derived_name(name, "height"))
            if found is None or images.height_range(found) is None:
                self.note = f"; no height: '{name}' has no height map (estimate it again with a backend " \
                            f"that makes heights)"
                return False
        return True

    def _store(self, obj) -> None:
        assert self.surface is not None
        uv_name = obj.data.uv_layers.active.name
        normals, coverage, colour = texels.combine(self.projections, self.blend)
        normals = texels.grow(normals, self.surface.covered)
        made = images.store_normal_map(f"{obj.name}_projected_normal", normals)
        self.made = [made.name]
        material = _material(obj)
        materials.apply_normal_map(material, made, self.strength, uv_map=uv_name)
        if colour is not None:
            rgba = np.dstack([texels.grow(colour, self.surface.covered), coverage])
            stored = (images.store_linear_colour(f"{obj.name}_projected_albedo", rgba) if self.albedo
                      else images.store_colour(f"{obj.name}_projected_colour", rgba))
            materials.apply_base_colour(material, stored, uv_map=uv_name)
            self.made.append(stored.name)
        if self.height:
            relief = texels.grow(texels.combine_heights(self.projections, self.blend)[..., None],
                                 self.surface.covered)[..., 0]
            low, high = float(relief.min()), float(relief.max())
            stored = images.store_height(f"{obj.name}_projected_height", (relief - low) / max(high - low, 1e-12))
            # its 0..1 stand for low..high in the object's units: the photo height of apply_height is 1
            materials.apply_height(material, stored, low=low, high=high, photo_height=1.0, uv_map=uv_name)
            self.made.append(stored.name)
        self.material = material.name

    def cancel(self) -> None:
        if self.estimate is not None:
            self.estimate.cancel()


def _estimated_maps(photo: bpy.types.Image, convention: str, camera: bpy.types.Object, depsgraph):
    """The photo's unit normals (OpenGL) in the camera's space and its face mask."""
    normal_image = bpy.data.images[images.derived_name(photo.name, "normal")]
    normals: np.ndarray = images.image_pixels(normal_image) * 2 - 1
    if convention == "DIRECTX":
        normals[..., 1] *= -1
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True).clip(1e-6)
    normals = projection.view_to_camera(normals, images.view_centres(normal_image), camera, depsgraph)
    mask_image = bpy.data.images.get(images.derived_name(photo.name, "mask"))
    mask = None if mask_image is None else images.image_pixels(mask_image)[..., 0]
    if mask is not None and mask.shape != normals.shape[:2]:
        mask = None
    return normals, mask


def _material(obj: bpy.types.Object) -> bpy.types.Material:
    """The object's active material; a new one with a Principled BSDF when it has none."""
    if obj.active_material is None:
        material = bpy.data.materials.new(f"{obj.name} Face")
        material.use_nodes = True
        obj.data.materials.append(material)
    return obj.active_material


CLASSES = (FaceNormalsView, FACE_NORMALS_OT_camera_background, FACE_NORMALS_OT_project_normals)
