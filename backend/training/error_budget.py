"""How much a face photo leaves open, measured on the test people without any network:
`python -m backend.training.error_budget --data PATH [--people 30]`.

Each held-out test person is rendered as `evaluate` renders it, then again with one thing
withheld, and the second render's normals are scored against the first's as `evaluate` scores a
method (degrees over the face mask, here where both renders show the face):
- detail: the truth blurred by a Gaussian of sigma pixels: an estimator right in the large but
  blind below that scale (skin relief, creases, eyelid edges);
- identity: the same pose, expression, skin, light and camera, but only the first k identity
  modes of the head model (k = 0: the mean face);
- expression: the same person, neutral.
A row is what an estimator scores that gets everything right except what the row withholds.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import cv2
import numpy as np

from .evaluate import angular_errors, summarize
from .facekit import FaceKit, FaceKitError, Person, held_out_person
from .synthetic import FaceRenderer, unit

BLUR_SIGMAS = (1.0, 2.0, 3.0, 4.0)
IDENTITY_MODES = (0, 10, 20, 40, 70)


def blurred(normals: np.ndarray, where: np.ndarray, sigma: float) -> np.ndarray:
    """Unit normals low-passed inside `where` (the outside does not bleed in)."""
    low = cv2.GaussianBlur(normals * where[..., None], (0, 0), sigma)
    return unit(low, 1e-9)


def withheld_people(person: Person) -> dict[str, Person]:
    """The person with each withheld thing replaced by the model's mean."""
    variants, modes = {}, len(person.identity)
    for k in IDENTITY_MODES:
        if k < modes:
            identity = person.identity.copy()
            identity[k:] = 0
            label = "identity: the mean face" if k == 0 else f"identity: first {k} of {modes} modes"
            variants[label] = dataclasses.replace(person, identity=identity)
    variants["expression: neutral"] = dataclasses.replace(person, expression=np.zeros_like(person.expression))
    return variants


def error_budget(data: Path, people: int) -> list[dict]:
    renderer = FaceRenderer(FaceKit(data))
    errors: dict[str, list[np.ndarray]] = {}
    for index in range(people):
        person, seed = held_out_person(renderer.kit, index)
        truth = renderer.render(person, seed)
        for sigma in BLUR_SIGMAS:
            found = angular_errors(blurred(truth.normals, truth.valid, sigma), truth.normals, truth.mask)
            errors.setdefault(f"detail below sigma {sigma:g} px", []).append(found)
        for label, variant in withheld_people(person).items():
            render = renderer.render(variant, seed)
            found = angular_errors(render.normals, truth.normals, truth.mask * render.mask)
            errors.setdefault(label, []).append(found)
    return [summarize(label, np.concatenate(found)) for label, found in errors.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the ICT-FaceKit folder")
    parser.add_argument("--people", type=int, default=30, help="the first this many test people")
    args = parser.parse_args()
    try:
        rows = error_budget(Path(args.data), args.people)
    except FaceKitError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"{args.people} held-out test people, 256x256, degrees over the face mask")
    print(f"{'withheld':<36}{'mean':>7}{'median':>8}")
    for row in rows:
        print(f"{row['name']:<36}{row['mean']:>7.2f}{row['median']:>8.2f}")


if __name__ == "__main__":
    main()
