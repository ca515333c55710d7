"""What an image must be to be estimated: its channels, its sides and its pixel count.

The backend checks these on every photo (decoded or raw); the protocol announces them; the
add-on can check a photo before sending it.  Failures are one readable sentence each.
"""
from __future__ import annotations

CHANNELS = (1, 2, 3, 4)          # gray, gray + alpha, RGB, RGBA
MIN_SIDE = 16                    # pixels: smaller images hold no face worth estimating
MAX_ASPECT = 10                  # longest side / shortest side


class ImageSizeError(ValueError):
    """An image whose shape the estimator refuses; `code` is "bad_image" (unusable shape) or
    "too_large" (over the pixel limit), as the protocol names them."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def check_image_size(width: int, height: int, max_pixels: int, channels: int = 3) -> None:
    """One image's size (ImageSizeError otherwise).  Python integers: no overflow however
    large the claimed sides."""
    if channels not in CHANNELS:
        raise ImageSizeError("bad_image", f"an image has 1 to 4 channels (gray, gray + alpha, "
                                          f"RGB, RGBA), not {channels}")
    if min(width, height) < MIN_SIDE:
        raise ImageSizeError("bad_image", f"{width}x{height} is too small: images need at least "
                                          f"{MIN_SIDE} pixels a side")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageSizeError("bad_image", f"{width}x{height} is too long and thin: the longest "
                                          f"side may be at most {MAX_ASPECT} times the shortest")
    if width * height > max_pixels:
        raise ImageSizeError("too_large", f"{width}x{height} is {width * height / 1e6:.1f} "
                                          f"megapixels, over the limit of {max_pixels / 1e6:.1f}")
