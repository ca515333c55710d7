"""Pictures of estimated maps: the normal map as colour, the albedo, the height, and the photo
relit from a side.

Relit as `make demo` relights out/astronaut_relit.png: the relighting model of shaders/relight.py
(the add-on's relight bake in background Blender runs that same numpy reference), with the
light directions of `shaders.relight.SHOWCASE_LIGHTS`, the demo's white light of intensity 1.2, the
add-on's Relight defaults (specular 0, ambient 0.25, from above 0.3, remove original shading 0.7,
roughness 0.5, exposure 0; addon/relight.py, which needs bpy, so they are restated here) and
the estimate's own mask (the bake's default, `<photo>_mask`): outside it the photo is unchanged.
With an albedo (`assets_row`) the light falls on it, as the add-on does when Estimate made one.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from shaders import relight as model

INTENSITY, SPECULAR = 1.2, 0.0                           # backend/demo.py's bake
AMBIENT, AMBIENT_FROM_ABOVE, DELIGHT, ROUGHNESS = 0.25, 0.3, 0.7, 0.5   # the add-on's defaults


def lighting(side: str) -> model.Lighting:
    """One white light from SHOWCASE_LIGHTS[side] ('left', 'above' or 'right') as the demo bakes it."""
    return model.Lighting([model.Light(model.SHOWCASE_LIGHTS[side], (1.0, 1.0, 1.0), INTENSITY)],
                          model.ambient_sh((1.0, 1.0, 1.0), AMBIENT, AMBIENT_FROM_ABOVE),
                          delight=DELIGHT, specular=SPECULAR, roughness=ROUGHNESS)


def normal_colours(normals: np.ndarray) -> np.ndarray:
    """Unit normals (H, W, 3) -> RGB in [0, 1], n * 0.5 + 0.5 (what the normal PNGs store)."""
    return np.clip(np.asarray(normals, np.float32) * 0.5 + 0.5, 0, 1)


def relit(photo: np.ndarray, normals: np.ndarray, mask: np.ndarray, side: str,
          albedo: np.ndarray | None = None) -> np.ndarray:
    """The photo (H, W, 3) sRGB in [0, 1] relit from `side` through its normals and mask (its
    albedo, linear, lit when given)."""
    return model.relight(photo, normal_colours(normals), lighting(side), mask, albedo)


def height_grey(height: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A height map as grey (H, W, 3): black at its lowest on the person, white at its highest."""
    person = mask > 0.5
    low, high = (float(height[person].min()), float(height[person].max())) if person.any() else (0.0, 1.0)
    grey = np.clip((height - low) / max(high - low, 1e-6), 0, 1) * person
    return np.repeat(grey[..., None], 3, axis=2).astype(np.float32)


def assets_row(photo: np.ndarray, normals: np.ndarray, mask: np.ndarray, albedo: np.ndarray,
               height: np.ndarray, sides: tuple[str, ...] = ("left", "right")) -> np.ndarray:
    """photo | albedo | normals | height | the albedo relit from each of `sides`."""
    tiles = [np.asarray(photo, np.float32), model.linear_to_srgb(albedo), normal_colours(normals),
             height_grey(height, mask)]
    tiles += [relit(photo, normals, mask, side, albedo) for side in sides]
    return np.concatenate(tiles, axis=1)


def tiles_row(photo: np.ndarray, normals: np.ndarray, mask: np.ndarray,
              sides: tuple[str, ...] = ("left", "right")) -> np.ndarray:
    """photo | normals | relit from each of `sides`, side by side (H, W * (2 + len(sides)), 3)."""
    tiles = [np.asarray(photo, np.float32), normal_colours(normals)]
    tiles += [relit(photo, normals, mask, side) for side in sides]
    return np.concatenate(tiles, axis=1)


def fit_height(row: np.ndarray, height: int) -> np.ndarray:
    if row.shape[0] == height:
        return row
    width = max(1, round(row.shape[1] * height / row.shape[0]))
    return cv2.resize(row, (width, height), interpolation=cv2.INTER_AREA)


def stack_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Rows one under the other, each scaled to the first's height and padded black to the widest."""
    height = rows[0].shape[0]
    rows = [fit_height(row, height) for row in rows]
    width = max(row.shape[1] for row in rows)
    return np.concatenate([np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0))) for row in rows], axis=0)


def save_rgb(path: Path, pixels: np.ndarray) -> None:
    """Float RGB in [0, 1] -> 8-bit PNG (folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), (np.clip(pixels, 0, 1)[..., ::-1] * 255 + 0.5).astype(np.uint8))
