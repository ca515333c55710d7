"""The README's pictures: `python -m backend.tools.readme_pictures [--portraits DIR [NAME NAME]]`.

Writes, in docs/pictures/ (`--output`), one picture per photo, photo | albedo | normals
(n * 0.5 + 0.5) | height | the albedo relit from the left and from the right (as `make demo`
relights: backend/training/pictures.py; albedo and height as the service makes them,
estimator/intrinsics.py): `astronaut.png` (scikit-image's astronaut) and, with --portraits,
`<stem>.png` for each named portrait.  The names must be held-out portraits
(backend/training/portraits/evaluation.txt), so the README never shows a photo the model trained
on; without names, the first two of that list.  `--model` and `--weights` pick the model as
`predict`'s do (default: the one `predict` runs); a v3 model's own albedo is shown, a
normals-only model's is fitted.  Run it after a new model is shipped and commit the pictures.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DEFAULT_OUTPUT = Path("docs/pictures")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.tools.readme_pictures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="two held-out portraits' file names (default: the first two)")
    parser.add_argument("--portraits", help="the real portrait folder (../shared/data/portraits); without it, "
                                            "the astronaut only")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help=f"folder (default {DEFAULT_OUTPUT})")
    parser.add_argument("--model", choices=("auto", "fast", "quality"), default="auto",
                        help="the model, as predict's --model (default auto)")
    parser.add_argument("--weights", help="weights file (default: the model's shipped one)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    args = parser.parse_args(argv)

    from ..estimator import Estimator, ImageError, NoFaceError, WeightsError
    from ..estimator import intrinsics
    from ..estimator.image_io import read_image
    from ..training.pictures import assets_row, save_rgb
    from ..training.portraits import evaluation_names

    held_out = evaluation_names()
    names = (args.names or held_out[:2]) if args.portraits else []
    if args.portraits and len(names) != 2:
        return _fail(f"give two portrait names, not {len(names)}")
    if args.names and not args.portraits:
        return _fail("portrait names need --portraits, the folder they are in")
    outside = [name for name in names if name not in held_out]
    if outside:
        return _fail(f"{', '.join(outside)}: not a held-out portrait (backend/training/portraits/evaluation.txt)")
    folder = Path(args.portraits or ".")
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        return _fail(f"{', '.join(missing)}: not found in {folder}")
    try:
        estimator = Estimator(args.weights, device=args.device, model=args.model)
    except (WeightsError, ValueError) as error:
        return _fail(str(error))

    from skimage import data
    photos = [("astronaut", data.astronaut().astype(np.float32) / 255)]
    output = Path(args.output)
    try:
        photos += [(Path(name).stem, read_image(folder / name)) for name in names]
    except ImageError as error:
        return _fail(str(error))
    for stem, photo in photos:
        try:
            found = estimator.normal_map(photo)
        except NoFaceError as error:
            return _fail(f"{stem}: {error}")
        albedo, _ = found.albedo_and_light(photo)
        assert albedo is not None
        height = intrinsics.height(found.normals, found.mask)
        path = output / f"{stem}.png"
        save_rgb(path, assets_row(photo, found.normals, found.mask, albedo, height))
        print(f"wrote {path}")
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
