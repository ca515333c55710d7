"""Warnings about an estimate that succeeded but should not be trusted: a person mask that is
empty, or nearly so.  With face detection off every image gets a normal map (the network takes
it for a face crop), so a plain wall or a product shot would come back as a face-shaped relief
without a word; its person mask (the segmenter's) says there is nobody in it."""
from __future__ import annotations

import numpy as np

# Below this share of the image covered by a person the map is a guess.  A face crop is mostly
# person (the astronaut's head-and-shoulders: ~40%); the segmenter on a plain grey image: 0%.
PERSON_MIN_FRACTION = 0.02


def person_fraction(mask: np.ndarray) -> float:
    """The share of the image where the mask says "person" (above one half)."""
    return float((np.asarray(mask) > 0.5).mean()) if np.size(mask) else 0.0


def person_warnings(mask: np.ndarray) -> list[str]:
    """One sentence per reason not to trust the normal map of an image with this person mask."""
    fraction = person_fraction(mask)
    if fraction >= PERSON_MIN_FRACTION:
        return []
    return [f"no person in this image (a person covers {100 * fraction:.1f}% of it): its normal map is "
            f"the network's guess of a face, not a measurement; use a photo of a person"]
