"""Reading photos and writing normal maps.

Pillow identifies the file and its EXIF orientation without decoding it (so size limits are checked
before any pixels are allocated); OpenCV decodes and encodes, because it keeps 16-bit channels that
Pillow squashes to 8 bits.  Every failure is an `ImageError` whose message is one readable line.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

# OpenCV reads this switch when it first touches EXR, so it must be set before then.  Only our
# writer uses EXR: inputs are identified by Pillow first, which does not accept EXR files.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
import cv2  # noqa: E402

MAX_PIXELS = 50_000_000  # ~ 8660 x 5770: larger photos are refused rather than risk memory
INPUT_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "MPO")
EXIF_FORMATS = ("JPEG", "MPO", "WEBP", "TIFF")

# EXIF orientation tag value -> how to undo it: (rotations by 90 degrees counter-clockwise, mirror first)
_EXIF_ORIENTATION = {1: (0, False), 2: (0, True), 3: (2, False), 4: (2, True),
                     5: (1, True), 6: (3, False), 7: (3, True), 8: (1, False)}


class ImageError(ValueError):
    """An input that cannot be used as a photo, or an output that cannot be written."""


def read_image(source: str | os.PathLike | bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A photo as float32 RGB in [0, 1], shape (H, W, 3), upright as its EXIF orientation says.

    Gray images are repeated to three channels; alpha is dropped; 16-bit images keep their precision.
    """
    name = "image data" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as error:
            raise ImageError(f"{name}: cannot read file ({error.strerror or error})") from None
    if not data:
        raise ImageError(f"{name}: the file is empty")

    width, height, orientation = _identify(data, name, max_pixels)
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        pixels = _decode_with_pillow(data, name)
    elif pixels.ndim == 3 and pixels.shape[2] >= 3:
        pixels = pixels[..., 2::-1]  # OpenCV's BGR(A) -> RGB
    pixels = to_rgb_float(pixels)
    if pixels.shape[:2] != (height, width):
        raise ImageError(f"{name}: decoded size {pixels.shape[1]}x{pixels.shape[0]} "
                         f"differs from the header's {width}x{height}")
    return _apply_orientation(pixels, orientation)


def _identify(data: bytes, name: str, max_pixels: int) -> tuple[int, int, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = image.format, image.size
                # Pillow decodes a whole PNG to look for EXIF; the formats that carry it in
                # their header are read without decoding.
                orientation = image.getexif().get(0x0112, 1) if fmt in EXIF_FORMATS else 1
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{name}: the image is too large to open safely") from None
        except Exception:  # Pillow raises many kinds for non-images and truncated headers
            raise ImageError(f"{name}: not a readable image (unknown format, damaged or truncated; "
                             f"supported: {', '.join(INPUT_FORMATS)})") from None
    if fmt not in INPUT_FORMATS:
        raise ImageError(f"{name}: {fmt} images are not supported (use one of {', '.join(INPUT_FORMATS)})")
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: the image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(f"{name}: {width}x{height} is {width * height / 1e6:.0f} megapixels, "
                         f"over the limit of {max_pixels / 1e6:.0f}")
    return width, height, orientation if orientation in _EXIF_ORIENTATION else 1


def _decode_with_pillow(data: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.mode not in ("L", "I;16", "RGB", "RGBA"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            return np.asarray(image)
    except Exception:
        raise ImageError(f"{name}: the image data is damaged or truncated") from None


def to_rgb_float(pixels: np.ndarray) -> np.ndarray:
    """Gray, gray + alpha or RGB(A) of any depth -> float32 RGB in [0, 1]."""
    if pixels.dtype == np.uint8:
        scale = 255.0
    elif pixels.dtype == np.uint16:
        scale = 65535.0
    elif pixels.dtype.kind == "f":
        scale = None
    else:
        raise ImageError(f"unsupported pixel type {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    channels = pixels.shape[2]
    if channels in (2, 4):          # gray + alpha, colour + alpha: drop alpha
        pixels = pixels[..., :channels - 1]
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    if scale is None:
        return np.clip(pixels, 0.0, 1.0, dtype=np.float32)
    return np.multiply(pixels, np.float32(1 / scale), dtype=np.float32)   # already within [0, 1]


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    rotations, mirror = _EXIF_ORIENTATION[orientation]
    if mirror:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(np.rot90(pixels, rotations))


# --- writing -------------------------------------------------------------------------------------

def encode_normals(normals: np.ndarray, convention: str = "opengl") -> np.ndarray:
    """Unit normals (H, W, 3) -> the stored vectors for a convention (DirectX flips green/y)."""
    if convention not in ("opengl", "directx"):
        raise ValueError(f"unknown normal-map convention {convention!r} (opengl or directx)")
    if convention == "directx":
        normals = normals * np.array([1.0, -1.0, 1.0], np.float32)
    return normals.astype(np.float32, copy=False)


def write_normal_png(path: str | os.PathLike, normals: np.ndarray) -> None:
    """16-bit RGB PNG with value = n * 0.5 + 0.5."""
    coded = np.round((np.clip(normals, -1, 1) * 0.5 + 0.5) * 65535).astype(np.uint16)
    _write(path, coded[..., ::-1])


def write_mask_png(path: str | os.PathLike, mask: np.ndarray) -> None:
    _write(path, np.round(np.clip(mask, 0, 1) * 255).astype(np.uint8))


def write_exr(path: str | os.PathLike, normals: np.ndarray) -> None:
    """32-bit float EXR holding the raw vectors (no 0.5 offset)."""
    _write(path, np.ascontiguousarray(normals[..., ::-1], dtype=np.float32))


def read_normal_png(path: str | os.PathLike) -> np.ndarray:
    """Inverse of write_normal_png: (H, W, 3) float32 vectors in [-1, 1]."""
    coded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if coded is None or coded.dtype != np.uint16 or coded.ndim != 3:
        raise ImageError(f"{path}: not a 16-bit RGB normal map")
    return coded[..., ::-1].astype(np.float32) / 65535 * 2 - 1


def _write(path: str | os.PathLike, pixels: np.ndarray) -> None:
    try:
        ok = cv2.imwrite(str(path), np.ascontiguousarray(pixels))
    except cv2.error as error:
        raise ImageError(f"{path}: cannot write ({error.err})") from None
    if not ok:
        raise ImageError(f"{path}: cannot write (check the folder exists and is writable)")
