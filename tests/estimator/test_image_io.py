import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from backend.estimator.image_io import (ImageError, encode_normals, read_image, read_normal_png,
                                        write_exr, write_mask_png, write_normal_png)
from helpers import sphere_normals


def _png_bytes(array: np.ndarray) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


def _gradient(height=40, width=60) -> np.ndarray:
    """An RGB image whose channels differ, so a channel swap or a flip cannot go unnoticed."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x / (width - 1), y / (height - 1), np.full_like(x, 0.25, dtype=float)], -1)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "BMP"])
def test_common_formats_read_as_rgb(tmp_path, fmt):
    expected = _gradient()
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray((expected * 255).round().astype(np.uint8)).save(path, format=fmt, quality=98)
    pixels = read_image(path)
    assert pixels.shape == (40, 60, 3) and pixels.dtype == np.float32
    assert np.abs(pixels - expected).mean() < 0.02


def test_sixteen_bit_png_keeps_its_precision():
    expected = _gradient()
    coded = (expected * 65535).round().astype(np.uint16)
    pixels = read_image(_png_bytes(coded[..., ::-1]))  # OpenCV writes BGR
    assert np.abs(pixels - expected).max() < 1e-4


def test_gray_and_alpha_images_become_rgb():
    gray = (np.linspace(0, 1, 30)[None].repeat(20, 0) * 255).astype(np.uint8)
    pixels = read_image(_png_bytes(gray))
    assert pixels.shape == (20, 30, 3)
    assert np.allclose(pixels[..., 0], pixels[..., 2]) and np.allclose(pixels[..., 0], gray / 255)
    gray16 = (gray.astype(np.uint16) * 257)
    assert np.allclose(read_image(_png_bytes(gray16))[..., 1], gray / 255, atol=1e-4)
    rgba = np.dstack([(_gradient() * 255).astype(np.uint8)[..., ::-1], np.full((40, 60), 9, np.uint8)])
    pixels = read_image(_png_bytes(rgba))
    assert pixels.shape == (40, 60, 3) and abs(pixels[0, -1, 0] - 1.0) < 0.01


@pytest.mark.parametrize("orientation, upright", [
    (3, lambda a: a[::-1, ::-1]),          # rotated 180
    (6, lambda a: np.rot90(a, -1)),       # stored rotated: display needs 90 clockwise
    (8, lambda a: np.rot90(a, 1)),
    (2, lambda a: a[:, ::-1]),
])
def test_exif_orientation_is_honoured(orientation, upright):
    stored = (_gradient() * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", quality=98, exif=exif)
    pixels = read_image(buffer.getvalue())
    expected = upright(stored / 255)
    assert pixels.shape == expected.shape
    assert np.abs(pixels - expected).mean() < 0.02
    # Pillow's own transpose agrees with ours
    reference = np.asarray(__import__("PIL.ImageOps").ImageOps.exif_transpose(
        Image.open(io.BytesIO(buffer.getvalue())))) / 255
    assert np.abs(pixels - reference).mean() < 0.01


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims any size: what a hostile or broken file can say."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + _chunk(b"IEND", b""))


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello, this is text, not a photo\n", "not a readable image"),
    (_png_header_only(0, 10), "not a readable image|zero size"),
    (_png_header_only(60000, 60000), "too large|megapixels"),
    (_png_header_only(9000, 9000), "megapixels, over the limit"),
])
def test_bad_inputs_get_one_line_errors(data, message):
    with pytest.raises(ImageError, match=message) as caught:
        read_image(data)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("fmt, options", [("PNG", {}), ("JPEG", {}), ("JPEG", {"progressive": True}),
                                           ("WEBP", {})])
def test_truncated_image_is_an_error(fmt, options):
    """OpenCV decodes a cut JPEG or PNG as a mostly black picture without complaint."""
    buffer = io.BytesIO()
    pixels = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    data = buffer.getvalue()
    assert read_image(data).shape == (96, 128, 3)
    for keep in (0.3, 0.6, 0.9, 0.999):
        with pytest.raises(ImageError, match="truncated"):
            read_image(data[: int(len(data) * keep)])


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ImageError, match="cannot read file"):
        read_image(tmp_path / "nope.jpg")


def test_pixel_limit_is_adjustable():
    data = _png_bytes(np.zeros((100, 100, 3), np.uint8))
    assert read_image(data, max_pixels=10_000).shape == (100, 100, 3)
    with pytest.raises(ImageError, match="over the limit"):
        read_image(data, max_pixels=9_999)


def test_normal_png_is_16_bit_rgb_in_opengl_order(tmp_path):
    normals = sphere_normals(64)[0]
    write_normal_png(tmp_path / "n.png", normals)
    stored = cv2.imread(str(tmp_path / "n.png"), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint16 and stored.shape == (64, 64, 3)
    red, green = stored[..., 2].astype(float), stored[..., 1].astype(float)
    assert red[32, 60] > 60000 and red[32, 3] < 5000        # +x to the right
    assert green[3, 32] > 60000 and green[60, 32] < 5000    # +y at the top
    assert np.abs(read_normal_png(tmp_path / "n.png") - normals).max() < 1e-4


def test_directx_convention_flips_green_only():
    normals = sphere_normals(64)[0]
    flipped = encode_normals(normals, "directx")
    assert np.array_equal(flipped[..., 1], -normals[..., 1])
    assert np.array_equal(flipped[..., [0, 2]], normals[..., [0, 2]])
    with pytest.raises(ValueError):
        encode_normals(normals, "metal")


def test_mask_and_exr_writers(tmp_path):
    mask = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    write_mask_png(tmp_path / "m.png", mask)
    stored = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint8 and stored.shape == (64, 64) and stored[-1, -1] == 255
    normals = sphere_normals(64)[0]
    write_exr(tmp_path / "n.exr", normals)
    back = cv2.imread(str(tmp_path / "n.exr"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert np.abs(back - normals).max() < 1e-6


def test_unwritable_output_is_an_error(tmp_path):
    with pytest.raises(ImageError, match="cannot write"):
        write_mask_png(tmp_path / "missing-folder" / "m.png", np.zeros((4, 4), np.float32))
