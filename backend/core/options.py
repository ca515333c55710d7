"""What one can ask of an estimate: the one place its options and their defaults are spelled out.

The CLI, the service (from a request's JSON, strictly), the add-on and batch runs all build an
`EstimateOptions`; the estimator reads it.  Nothing is coerced: a bool where a number is due,
an unknown name or a value out of range is an `OptionError` naming the option.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .frames import check_focal

CONVENTIONS = ("opengl", "directx")        # DirectX flips green (y)
NORMALS_DTYPES = ("float16", "uint16", "float32")   # uint16: n * 0.5 + 0.5 scaled to 0..65535
# What an estimate can return, and each map's bytes per pixel on the wire (light is JSON only):
# normal (H, W, 3) vectors; mask (H, W) uint8 person; albedo (H, W, 3) float16 linear RGB;
# height (H, W) float32 pixels toward the camera
OUTPUTS = ("normal", "mask", "albedo", "height", "light")
BYTES_PER_PIXEL = {"mask": 1, "albedo": 6, "height": 4, "light": 0}


class OptionError(ValueError):
    """An option that is unknown, of the wrong type or out of range."""


@dataclass(frozen=True)
class EstimateOptions:
    detect: bool = True                  # find the faces; False: the image is a face crop already
    convention: str = "opengl"           # of the normals returned
    mask: bool = True                    # also return the person mask
    normals_dtype: str = "float16"       # of the normals returned
    focal_35mm: float | None = None      # the photo's focal length, 35 mm equivalent: given, the
                                         # normals are in camera space (core/frames.py)
    outputs: tuple[str, ...] | None = None   # what to return, of OUTPUTS, in this order; None:
                                             # normal, and mask when `mask` (as before outputs were)

    def __post_init__(self):
        for name in ("detect", "mask"):
            if type(getattr(self, name)) is not bool:
                raise OptionError(f"option {name!r} must be true or false, not {getattr(self, name)!r:.40}")
        for name, allowed in (("convention", CONVENTIONS), ("normals_dtype", NORMALS_DTYPES)):
            if getattr(self, name) not in allowed:
                raise OptionError(f"option {name!r} must be one of {', '.join(map(repr, allowed))}")
        if self.outputs is not None:
            if (not isinstance(self.outputs, (list, tuple)) or not self.outputs
                    or any(name not in OUTPUTS for name in self.outputs)
                    or len(set(self.outputs)) != len(self.outputs)):
                raise OptionError(f"option 'outputs' must be a list of distinct names of "
                                  f"{', '.join(OUTPUTS)}, not {self.outputs!r:.60}")
            object.__setattr__(self, "outputs", tuple(self.outputs))
        if self.focal_35mm is not None:
            try:
                object.__setattr__(self, "focal_35mm", check_focal(self.focal_35mm))
            except ValueError as error:
                raise OptionError(f"option 'focal_35mm': {error}") from None

    @classmethod
    def parse(cls, options: dict) -> EstimateOptions:
        """Options from JSON, checked strictly (OptionError otherwise)."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            names = ", ".join(repr(n)[:40] for n in unknown[:3])
            raise OptionError(f"unknown estimate field(s) {names} (known: {', '.join(known)})")
        return cls(**options)

    @property
    def maps(self) -> tuple[str, ...]:
        """The outputs asked for, in their order."""
        if self.outputs is not None:
            return self.outputs
        return ("normal", "mask") if self.mask else ("normal",)

    def to_wire(self) -> dict:
        wire = dataclasses.asdict(self)
        for name in ("focal_35mm", "outputs"):   # absent: what a server before them assumes
            if wire[name] is None:
                del wire[name]
            elif name == "outputs":
                wire[name] = list(wire[name])
        return wire

    def reply_bytes_per_pixel(self) -> int:
        sizes = {**BYTES_PER_PIXEL, "normal": 3 * (4 if self.normals_dtype == "float32" else 2)}
        return sum(sizes[name] for name in self.maps)
