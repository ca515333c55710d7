"""How a photo's crops are laid back over each other: each crop's weight in its own pixels, and a
map of every crop (normals, albedo) pasted back into one full-size map with those weights.

Per face, from the bottom up: the upper-body crop (v3 models), on the person beyond the
head-and-shoulders crop's window; the head-and-shoulders crop, on the person, fading out toward its
window's edges where they cut through the photo (the two share the pixels where it fades; toward
an edge beyond the photo nothing fades); the face crop, within the face's soft
oval on the person.  Each part keeps the detail of its closest crop.  Where several faces' crops
of one layer overlap, each pixel takes the crop whose weight is strongest there.  With detection
off there is one crop, the whole image, taken to be a face crop: its maps cover all of it.

Crops come in the pipeline's order: every face's face crop, then every face's head-and-shoulders
crop, then (v3) every face's upper-body crop.
"""
from __future__ import annotations

import numpy as np

from . import geometry

# Where a head-and-shoulders or upper-body crop cuts through the person (most often across the
# chest or the waist), its normals and mask fade out over this fraction of the crop's side, so the
# cut reads as a soft transition (into the upper-body crop's, or the flat body) rather than a line
PERSON_EDGE_FADE = 0.12


def crop_weights(windows: list[geometry.Crop], person_masks: np.ndarray, faces: int,
                 size: int, height: int, width: int) -> list[np.ndarray]:
    """Per crop, how much its maps count, in its own pixels: (size, size) for the face crops (with
    detection off, faces=0: the whole image), the side of person_masks for the others; person_masks:
    the segmenter's of every crop but the face crops, of a height x width photo."""
    if not faces:
        return [np.ones((size, size), np.float32)]
    face_crops, people, bodies = windows[:faces], windows[faces:2 * faces], windows[2 * faces:]
    on_people, on_bodies = person_masks[:faces], person_masks[faces:]

    def edges(crop: geometry.Crop) -> np.ndarray:
        return geometry.window_fade(crop, person_masks.shape[-1], PERSON_EDGE_FADE, height, width)

    oval, people_edges = geometry.face_mask(size), [edges(person) for person in people]
    # the face pass is kept only on the person (its oval also covers background beside the head)
    return ([oval * geometry.resampled(mask, person, face, size)
             for mask, person, face in zip(on_people, people, face_crops)]
            + [mask * fade for mask, fade in zip(on_people, people_edges)]
            + [mask * edges(body) * (1 - geometry.resampled(fade, person, body))
               for mask, fade, person, body in zip(on_bodies, people_edges, people, bodies)])


def paste(maps: list[np.ndarray], weights: list[np.ndarray], windows: list[geometry.Crop], faces: int,
          height: int, width: int, *, unit: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every crop's map (S, S, channels; normals in the photo's orientation: unit=True) pasted back
    into one (H, W, channels) map, and how much of each pixel the crops cover (H, W): with
    detection, the person mask.  Normals fade to flat beyond it; other maps are left for the
    caller to fill there."""
    patches = [geometry.paste_back(m, w, crop, height, width) for m, w, crop in zip(maps, weights, windows)]

    def merged(layer: list[geometry.Patch]) -> tuple[np.ndarray, np.ndarray]:
        if unit:
            return geometry.composite(layer, height, width, flat_outside=False)
        return geometry.strongest(layer, np.zeros((height, width, maps[0].shape[-1]), np.float32))

    if faces:
        face_crops, people, bodies = patches[:faces], patches[faces:2 * faces], patches[2 * faces:]
        values, coverage = merged(people)
        if bodies:
            # their weights add up to the person where the head-and-shoulders window fades out and
            # the upper-body crop's fades in: each crop's share of a pixel is its part of the sum
            below, below_coverage = merged(bodies)
            together = below_coverage + coverage
            share = np.divide(coverage, together, out=np.zeros_like(together), where=together > 0)
            geometry.layered(below, values, share, geometry.bounds(people), unit=unit)
            values, coverage = below, np.minimum(together, 1)
        top, top_weight = merged(face_crops)
        geometry.layered(values, top, top_weight, geometry.bounds(face_crops), unit=unit)
    else:
        values, coverage = merged(patches)
    if unit:
        geometry.fade_to_flat(values, coverage, geometry.bounds(patches))
    return values, coverage
