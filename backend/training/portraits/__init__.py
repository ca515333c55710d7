"""The fixed split of the real portraits (../shared/data/portraits, 679 public-domain 225x275
JPEGs) into photos to train on and photos held out for evaluation.

The split is committed as two lists beside this file, `training.txt` and `evaluation.txt` (one
file name a line, sorted), so it never changes when the folder or the code does.  They were made
once with `python -m backend.training.portraits DIR` from the rule in `is_held_out`: a photo is
held out when the first 32 bits of the SHA-256 of its file name, taken modulo 100, are below
`HELD_OUT_PERCENT` (20).  The rule depends on the name alone, so the same photo always falls on
the same side, and a photo added later can be placed without moving any other.  On the 679
photos it holds out 124 and leaves 555 to train on.

Training imports `portrait_split(folder)` for its list; evaluation (`backend.training.consistency`)
for the held-out one.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

HELD_OUT_PERCENT = 20
LISTS = Path(__file__).resolve().parent
TRAINING_LIST = LISTS / "training.txt"
EVALUATION_LIST = LISTS / "evaluation.txt"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


class PortraitSplitError(FileNotFoundError):
    """The portrait folder lacks photos the committed split lists (or is not a folder)."""


def is_held_out(name: str) -> bool:
    """The split's rule: held out for evaluation when hash(name) mod 100 < HELD_OUT_PERCENT."""
    return int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16) % 100 < HELD_OUT_PERCENT


def make_split(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(training names, evaluation names), each sorted, by `is_held_out`."""
    names = sorted(set(names))
    return [n for n in names if not is_held_out(n)], [n for n in names if is_held_out(n)]


def read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluation_names() -> list[str]:
    return read_list(EVALUATION_LIST)


def training_names() -> list[str]:
    return read_list(TRAINING_LIST)


def portrait_split(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """(training paths, evaluation paths) in the portrait folder, in the committed lists' order.
    Raises PortraitSplitError naming what is missing when the folder lacks any listed photo.
    Photos in the folder that neither list names are left out of both."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PortraitSplitError(f"the portrait folder {folder} does not exist or is not a folder")
    training, evaluation = training_names(), evaluation_names()
    missing = [name for name in training + evaluation if not (folder / name).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise PortraitSplitError(
            f"{len(missing)} of the {len(training) + len(evaluation)} portraits of the split "
            f"(backend/training/portraits/*.txt) are missing from {folder}: {shown}")
    return [folder / name for name in training], [folder / name for name in evaluation]


def write_lists(folder: Path) -> tuple[int, int]:
    """Make the two lists from the photos in `folder` (run once; the lists are committed)."""
    names = [p.name for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES]
    training, evaluation = make_split(names)
    TRAINING_LIST.write_text("".join(f"{n}\n" for n in training), encoding="utf-8")
    EVALUATION_LIST.write_text("".join(f"{n}\n" for n in evaluation), encoding="utf-8")
    return len(training), len(evaluation)
