"""Blender images <-> numpy, and the normal-map and mask datablocks the add-on makes.
Blender stores rows bottom-up; numpy arrays here are top row first, like every file format."""
from __future__ import annotations

import os

import bpy
import numpy as np

from .core.encoding import mask_to_uint8, normals_to_uint16
from .photo_maps import derived_name, photo_of
from .png import write_png


def source_payload(image: bpy.types.Image):
    """What to send for an image: the file's own bytes when it has one on disk (the backend
    decodes it, honouring EXIF orientation and 16-bit depth), else its pixels as float32 RGB."""
    path = bpy.path.abspath(image.filepath) if image.filepath else ""
    if path and os.path.isfile(path) and not image.packed_file and not image.is_dirty:
        with open(path, "rb") as handle:
            return handle.read()
    return image_pixels(image)


def estimate_source(image: bpy.types.Image) -> tuple[str, object, str | None]:
    """(name, payload, folder to save results beside or None) of an image to estimate."""
    path = bpy.path.abspath(image.filepath) if image.filepath else ""
    return image.name, source_payload(image), os.path.dirname(path) if path else None


def context_photo(context, name: str = "") -> bpy.types.Image | None:
    """The photo an operator works on: the one named, else the Image Editor's, else the photo
    picked in the sidebar (the 3D viewport's), else the scene camera's background photo (where
    Photo as Camera Background put it).  A named or shown normal map, mask or relit image stands
    for its photo (photo_maps.photo_of)."""
    if name:
        return bpy.data.images.get(photo_of(name, bpy.data.images.keys()))
    space = context.space_data
    if getattr(space, "type", "") == "IMAGE_EDITOR" and space.image is not None:
        return bpy.data.images.get(photo_of(space.image.name, bpy.data.images.keys()), space.image)
    picked = getattr(context.scene, "face_normals", None)
    if picked is not None and picked.photo is not None:
        return picked.photo
    camera = context.scene.camera
    if camera is not None and camera.type == "CAMERA":
        return next((b.image for b in camera.data.background_images if b.image is not None), None)
    return None


def require_photo(context, name: str = "") -> bpy.types.Image:
    """`context_photo`, or ValueError with what to do when there is none."""
    photo = context_photo(context, name)
    if photo is None:
        raise ValueError(f"No photo '{name}'" if name else
                         "No photo: open one in the Image Editor, or pick one in the Face Normals "
                         "sidebar")
    return photo


def image_pixels(image: bpy.types.Image) -> np.ndarray:
    width, height = image.size
    if width == 0 or height == 0:
        raise ValueError(f"image '{image.name}' has no pixels (is its file missing?)")
    buffer = np.empty(width * height * image.channels, np.float32)
    image.pixels.foreach_get(buffer)
    pixels = buffer.reshape(height, width, image.channels)[::-1]
    if image.channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(np.clip(pixels[..., :3], 0.0, 1.0))


def read_map(path: str) -> np.ndarray:
    """A map file's pixels as stored (H, W, 3) float 0..1, top row first: read as Non-Color
    (no colour transform), and the datablock removed again."""
    image = bpy.data.images.load(path, check_existing=False)
    try:
        image.colorspace_settings.name = "Non-Color"
        return image_pixels(image)
    finally:
        bpy.data.images.remove(image)


def _set_pixels(image: bpy.types.Image, rgba: np.ndarray) -> None:
    image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1], np.float32).ravel())
    image.update()


VIEW_CENTRES = "face_normals_view_centres"   # ID property of a normal map in view space


def store_results(source_name: str, normals: np.ndarray, mask: np.ndarray | None, *,
                  save_beside: str | None,
                  view_centres: list[tuple[float, float]] | tuple = (),
                  ) -> tuple[bpy.types.Image, bpy.types.Image | None]:
    """Normal map (and mask) datablocks named after the source, Non-Color.  With save_beside (a
    folder) they are written there as 16-bit / 8-bit PNGs and loaded from the files; otherwise
    they are float images packed into the .blend.  view_centres: see `remember_view_centres`."""
    normal_name, mask_name = derived_name(source_name, "normal"), derived_name(source_name, "mask")
    height, width = normals.shape[:2]
    mask_image = None
    if save_beside:
        normal_path = os.path.join(save_beside, f"{normal_name}.png")
        write_png(normal_path, normals_to_uint16(normals))
        normal_image = _load_replacing(normal_name, normal_path)
        if mask is not None:
            mask_path = os.path.join(save_beside, f"{mask_name}.png")
            write_png(mask_path, mask_to_uint8(mask))
            mask_image = _load_replacing(mask_name, mask_path)
    else:
        normal_image = store_normal_map(normal_name, normals)
        if mask is not None:
            mask_image = _new_replacing(mask_name, width, height)
            _set_pixels(mask_image, np.dstack([mask, mask, mask, np.ones_like(mask)]))
            mask_image.pack()
    remember_view_centres(normal_image, view_centres)
    return normal_image, mask_image


def limit_size(normals: np.ndarray, mask, max_size: int):
    """Nearest-neighbour shrink by a whole factor when the result is larger than max_size."""
    if max_size <= 0 or max(normals.shape[:2]) <= max_size:
        return normals, mask
    step = -(-max(normals.shape[:2]) // max_size)
    normals = normals[::step, ::step]
    normals = normals / np.linalg.norm(normals, axis=-1, keepdims=True).clip(1e-6)
    return normals, None if mask is None else mask[::step, ::step]


def remember_view_centres(image: bpy.types.Image, centres: list[tuple[float, float]] | tuple) -> None:
    """Mark a normal map as view space: each face's normals relative to the line of sight to the
    centre of its crop (core/frames.py), the centres as (x, y) fractions of the map's width and
    height.  Projecting the map through a camera turns it into that camera's space.  No centres:
    the map is taken as camera space (a render, or a map made elsewhere)."""
    if centres:
        image[VIEW_CENTRES] = [float(v) for centre in centres for v in centre]
    elif VIEW_CENTRES in image:
        del image[VIEW_CENTRES]


def view_centres(image: bpy.types.Image) -> list[tuple[float, float]]:
    flat = list(image.get(VIEW_CENTRES, ()))
    return list(zip(flat[0::2], flat[1::2]))


def store_colour(name: str, pixels: np.ndarray) -> bpy.types.Image:
    """sRGB-encoded pixels (H, W, 3 or 4) as an 8-bit sRGB image packed into the .blend."""
    height, width = pixels.shape[:2]
    image = _new_replacing(name, width, height, float_buffer=False, colorspace="sRGB")
    _set_pixels(image, pixels if pixels.shape[2] == 4 else np.dstack([pixels, np.ones((height, width))]))
    image.pack()
    return image


def store_normal_map(name: str, normals: np.ndarray) -> bpy.types.Image:
    """Unit normals (H, W, 3) as a float Non-Color image (value = n * 0.5 + 0.5) packed into the .blend."""
    height, width = normals.shape[:2]
    image = _new_replacing(name, width, height)
    _set_pixels(image, np.dstack([np.clip(normals * 0.5 + 0.5, 0.0, 1.0), np.ones((height, width))]))
    image.pack()
    return image


def _new_replacing(name: str, width: int, height: int, *, float_buffer: bool = True,
                   colorspace: str = "Non-Color") -> bpy.types.Image:
    """A new image (float Non-Color unless told); an existing one of that name is reused (running
    twice does not pile up name.001 copies)."""
    image = bpy.data.images.get(name)
    if image is not None and (tuple(image.size) != (width, height) or image.filepath
                              or image.is_float != float_buffer):
        bpy.data.images.remove(image)
        image = None
    if image is None:
        image = bpy.data.images.new(name, width, height, alpha=True, float_buffer=float_buffer)
    image.colorspace_settings.name = colorspace
    return image


def _load_replacing(name: str, path: str) -> bpy.types.Image:
    image = bpy.data.images.get(name)
    if image is not None:
        bpy.data.images.remove(image)
    image = bpy.data.images.load(path)
    image.name = name
    image.colorspace_settings.name = "Non-Color"
    return image
