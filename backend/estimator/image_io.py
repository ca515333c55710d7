"""Reading photos and writing normal maps.

Pillow identifies the file and its EXIF orientation without decoding it (so size limits are checked
before any pixels are allocated), and the file's structure is walked to its end marker, because
OpenCV decodes truncated JPEG and PNG data without a word (as a mostly black image); OpenCV then
decodes and encodes, because it keeps 16-bit channels that Pillow squashes to 8 bits.  Every
failure is an `ImageError` whose message is one readable line.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.colour import linear_to_srgb
from ..core.encoding import mask_to_uint8, normals_from_uint16, normals_to_uint16
from ..core.images import ImageSizeError, check_image_size

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


class ImageTooLarge(ImageError):
    """An image over the pixel limit (found from its header, before decoding)."""


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


def image_size(data: bytes, *, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of an image file from its header alone (ImageTooLarge over max_pixels,
    ImageError if it is not a whole, usable image)."""
    width, height, _ = _identify(data, "image data", max_pixels)
    return width, height


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
            raise ImageTooLarge(f"{name}: the image is too large to open safely") from None
        except Exception:  # Pillow raises many kinds for non-images and truncated headers
            raise ImageError(f"{name}: not a readable image (unknown format, damaged or truncated; "
                             f"supported: {', '.join(INPUT_FORMATS)})") from None
    if fmt not in INPUT_FORMATS:
        raise ImageError(f"{name}: {fmt} images are not supported (use one of {', '.join(INPUT_FORMATS)})")
    try:
        check_image_size(width, height, max_pixels)
    except ImageSizeError as error:
        raise (ImageTooLarge if error.code == "too_large" else ImageError)(f"{name}: {error}") from None
    if not _is_complete(data, fmt):
        raise ImageError(f"{name}: the {fmt} data is truncated (the file ends before the image does)")
    return width, height, orientation if orientation in _EXIF_ORIENTATION else 1


def _is_complete(data: bytes, fmt: str) -> bool:
    """Whether the file holds the whole image: walked to its end marker where the format has one
    (PNG's IEND chunk, JPEG's EOI after the last scan, RIFF's declared length); TIFF and BMP
    are left to the decoder."""
    if fmt == "PNG":
        position = 8
        while position + 12 <= len(data):
            length = int.from_bytes(data[position:position + 4], "big")
            if data[position + 4:position + 8] == b"IEND":
                return True
            position += 12 + length
        return False
    if fmt in ("JPEG", "MPO"):
        return _jpeg_is_complete(data)
    if fmt == "WEBP":
        return len(data) >= 8 + int.from_bytes(data[4:8], "little")
    return True


def _jpeg_is_complete(data: bytes) -> bool:
    """Segments from SOI; after each scan (SOS) the entropy-coded data runs to the next marker
    (0xFF not followed by 0x00 stuffing or a restart marker); the image is whole at EOI."""
    position = 2
    while position + 2 <= len(data):
        if data[position] != 0xFF:
            return False
        marker = data[position + 1]
        if marker == 0xFF:                  # fill byte before a marker
            position += 1
            continue
        if marker == 0xD9:                  # EOI
            return True
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:   # standalone markers
            position += 2
            continue
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
        if marker != 0xDA:                  # not a scan: the segment's length says it all
            continue
        while True:                         # the scan's entropy-coded data
            position = data.find(b"\xff", position)
            if position < 0 or position + 1 >= len(data):
                return False
            following = data[position + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:
                position += 2
                continue
            break
    return False


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
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"an image has 1 to 4 channels (gray, gray + alpha, RGB, RGBA), not "
                         f"shape {pixels.shape}")
    channels = pixels.shape[2]
    if channels in (2, 4):          # gray + alpha, colour + alpha: drop alpha
        pixels = pixels[..., :channels - 1]
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    if scale is None:
        if not np.isfinite(pixels).all():
            raise ImageError("float pixels must be finite numbers (the image holds NaN or infinity)")
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
    """16-bit RGB PNG with value = n * 0.5 + 0.5 (uint16 normals are written as they are)."""
    coded = normals if normals.dtype == np.uint16 else normals_to_uint16(normals.astype(np.float32))
    _write(path, coded[..., ::-1])


def write_mask_png(path: str | os.PathLike, mask: np.ndarray) -> None:
    """8-bit PNG, 255 = person (uint8 masks are written as they are, float ones are 0..1)."""
    _write(path, mask if mask.dtype == np.uint8 else mask_to_uint8(mask))


def write_colour_png(path: str | os.PathLike, linear: np.ndarray) -> None:
    """Linear RGB -> 16-bit PNG, sRGB-encoded as image editors expect."""
    _write(path, np.round(linear_to_srgb(np.clip(linear.astype(np.float32), 0, 1)) * 65535)
           .astype(np.uint16)[..., ::-1])


def write_scalar_png(path: str | os.PathLike, values: np.ndarray, low: float, high: float) -> None:
    """One channel, 16-bit, low..high stretched to 0..65535 (the range must travel beside it)."""
    stretched = (values.astype(np.float32) - low) / max(high - low, 1e-12)
    _write(path, np.round(np.clip(stretched, 0, 1) * 65535).astype(np.uint16))


def write_exr(path: str | os.PathLike, values: np.ndarray) -> None:
    """32-bit float EXR holding the raw values (normals as vectors, no 0.5 offset; linear colour)."""
    values = values.astype(np.float32)
    _write(path, np.ascontiguousarray(values[..., ::-1] if values.ndim == 3 else values))


def read_normal_png(path: str | os.PathLike) -> np.ndarray:
    """Inverse of write_normal_png: (H, W, 3) float32 vectors in [-1, 1]."""
    coded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if coded is None or coded.dtype != np.uint16 or coded.ndim != 3:
        raise ImageError(f"{path}: not a 16-bit RGB normal map")
    return normals_from_uint16(coded[..., ::-1])


def _write(path: str | os.PathLike, pixels: np.ndarray) -> None:
    """Whole or not at all: encoded beside the target under a temporary name, then renamed over
    it, so a reader (or a run killed meanwhile) never finds half a file."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        if not cv2.imwrite(str(temporary), np.ascontiguousarray(pixels)):
            raise ImageError(f"{path}: cannot write (check the folder exists and is writable)")
        os.replace(temporary, path)
    except cv2.error as error:
        raise ImageError(f"{path}: cannot write ({error.err})") from None
    finally:
        temporary.unlink(missing_ok=True)
