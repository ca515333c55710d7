"""Blender images <-> numpy, and the datablocks the add-on makes from a photo: its normal map and
mask, and (from servers that make them) its albedo, height and light.
Blender stores rows bottom-up; numpy arrays here are top row first, like every file format."""
from __future__ import annotations

import json
import os

import bpy
import numpy as np

from .core.colour import linear_to_srgb, srgb_to_linear
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


def image_pixels(image: bpy.types.Image, *, clip: bool = True) -> np.ndarray:
    width, height = image.size
    if width == 0 or height == 0:
        raise ValueError(f"image '{image.name}' has no pixels (is its file missing?)")
    buffer = np.empty(width * height * image.channels, np.float32)
    image.pixels.foreach_get(buffer)
    pixels = buffer.reshape(height, width, image.channels)[::-1]
    if image.channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(np.clip(pixels[..., :3], 0.0, 1.0) if clip else pixels[..., :3])


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
LIGHT = "face_normals_light"                 # ID property of a photo: its fitted light, JSON (core/sh.py)
# ID property of a height map: the [min, max] its values 0..1 stand for, in fractions of the photo's
# height (so the range holds at any size the map is stored at), toward the camera
HEIGHT_RANGE = "face_normals_height_range"


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


def store_assets(source_name: str, *, albedo: np.ndarray | None, height: np.ndarray | None,
                 light: dict | None, photo_rows: int, save_beside: str | None) -> list[bpy.types.Image]:
    """The photo's albedo (linear colour image `<photo>_albedo`), height (Non-Color
    `<photo>_height`, 0..1 over its range, kept in HEIGHT_RANGE) and light (JSON in LIGHT on the
    photo's image, or on its normal map when the photo is not loaded): saved beside as 16-bit PNGs
    or packed float images, like the normal map.  height is in photo pixels, photo_rows the
    photo's height in pixels.  Returns the images made."""
    made = []
    if albedo is not None:
        name = derived_name(source_name, "albedo")
        albedo = np.asarray(albedo, np.float32)
        if save_beside:
            path = os.path.join(save_beside, f"{name}.png")
            # clipped: an albedo above 1 (a highlight divided by its shading) would wrap around in 16 bits
            write_png(path, np.round(np.clip(linear_to_srgb(albedo), 0, 1) * 65535).astype(np.uint16))
            image = _load_replacing(name, path, colorspace="sRGB")     # Blender linearises it
        else:
            image = store_linear_colour(name, albedo)
        made.append(image)
    if height is not None:
        name = derived_name(source_name, "height")
        relative = np.asarray(height, np.float32) / photo_rows
        low, high = float(relative.min()), float(relative.max())
        unit = (relative - low) / max(high - low, 1e-12)
        if save_beside:
            path = os.path.join(save_beside, f"{name}.png")
            write_png(path, np.round(unit * 65535).astype(np.uint16))
            image = _load_replacing(name, path)
        else:
            image = store_height(name, unit)
        image[HEIGHT_RANGE] = [low, high]
        made.append(image)
    if light is not None:
        holder = bpy.data.images.get(source_name) or bpy.data.images.get(derived_name(source_name, "normal"))
        if holder is not None:
            holder[LIGHT] = json.dumps(light)
    return made


def photo_light(photo: bpy.types.Image) -> np.ndarray | None:
    """(9, 3) SH coefficients of the light fitted to a photo (on it or on its normal map), or None."""
    normal = bpy.data.images.get(derived_name(photo.name, "normal"))
    text = photo.get(LIGHT) or (normal.get(LIGHT) if normal is not None else None)
    return None if text is None else np.asarray(json.loads(text)["sh"], np.float32).reshape(9, 3)


def height_range(image: bpy.types.Image) -> tuple[float, float] | None:
    """The (min, max) in fractions of the photo's height a height map's 0..1 stand for, or None."""
    found = image.get(HEIGHT_RANGE)
    return None if found is None else (float(found[0]), float(found[1]))


def linear_pixels(image: bpy.types.Image, *, clip: bool = True) -> np.ndarray:
    """(H, W, 3) linear colours of a colour image (byte images hold sRGB-encoded values, float
    images linear ones, and Non-Color ones are taken as linear); clip: to 0..1."""
    pixels = image_pixels(image, clip=clip)
    return pixels if image.is_float else srgb_to_linear(pixels)


def shrink_step(normals: np.ndarray, max_size: int) -> int:
    """The whole factor `limit_size` shrinks by (1: not at all)."""
    if max_size <= 0 or max(normals.shape[:2]) <= max_size:
        return 1
    return -(-max(normals.shape[:2]) // max_size)


def limit_size(normals: np.ndarray, mask, max_size: int):
    """Nearest-neighbour shrink by a whole factor when the result is larger than max_size."""
    step = shrink_step(normals, max_size)
    if step == 1:
        return normals, mask
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


def store_linear_colour(name: str, pixels: np.ndarray) -> bpy.types.Image:
    """Linear colours (H, W, 3 or 4) as a float image in linear Rec.709, packed into the .blend."""
    height, width = pixels.shape[:2]
    image = _new_replacing(name, width, height, colorspace=_linear_colourspace())
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


def store_height(name: str, unit: np.ndarray) -> bpy.types.Image:
    """A height map (H, W) in 0..1 as a float Non-Color image packed into the .blend."""
    image = _new_replacing(name, unit.shape[1], unit.shape[0])
    _set_pixels(image, np.dstack([unit, unit, unit, np.ones_like(unit)]))
    image.pack()
    return image


def _linear_colourspace() -> str:
    """Blender's name for linear Rec.709 ('Linear Rec.709' from 4.0; 'Linear' before)."""
    names = {item.identifier for item in
             bpy.types.ColorManagedInputColorspaceSettings.bl_rna.properties["name"].enum_items}
    return "Linear Rec.709" if "Linear Rec.709" in names else "Linear"


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


def _load_replacing(name: str, path: str, *, colorspace: str = "Non-Color") -> bpy.types.Image:
    image = bpy.data.images.get(name)
    if image is not None:
        bpy.data.images.remove(image)
    image = bpy.data.images.load(path)
    image.name = name
    image.colorspace_settings.name = colorspace
    return image
