"""Which photo an image belongs to.  What the add-on makes from a photo is named `<photo>_<kind>`
(its normal map, its mask, its relit bake), and after Estimate the Image Editor shows the normal
map: every photo-based operator works on the photo whichever of these the editor shows.

Pure Python (no bpy), so the naming rule is tested without Blender."""
from __future__ import annotations

import os
from collections.abc import Iterable

# the images the add-on makes from a photo, by the suffix of their names
KINDS = ("normal", "mask", "relit")


def derived_name(photo_name: str, kind: str) -> str:
    """The name of what the add-on makes from a photo: 'anna.jpg', 'normal' -> 'anna_normal'."""
    return f"{os.path.splitext(photo_name)[0]}_{kind}"


def photo_of(shown: str, names: Iterable[str]) -> str:
    """The photo (one of `names`, the file's images) whose map `shown` is; `shown` itself when it
    is a photo, or a map whose photo is no longer in the file."""
    for kind in KINDS:
        stem = shown.removesuffix(f"_{kind}")
        if stem == shown:
            continue
        photos = sorted(name for name in names
                        if name != shown and os.path.splitext(name)[0] == stem and not is_map(name))
        if photos:
            return photos[0]
    return shown


def is_map(name: str) -> bool:
    """Whether a name is one the add-on gives to what it makes (not a photo's)."""
    return any(name.endswith(f"_{kind}") for kind in KINDS)
