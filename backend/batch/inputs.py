"""What `batch` was given, as units of work: single photos, and clips (a video file or an image
sequence) whose frames are estimated in order by one worker, so their faces can be tracked.

An input is a photo file, a folder (the photos directly inside it), a text file listing one input
per line (blank lines and `#` comments skipped; relative paths are relative to the list), a video
file, or an image-sequence pattern: printf-style `plate.%04d.exr` or `frame_####.png` (one `#`
per digit).  Every unit is plain data (str and int), so it crosses to worker processes and Ray
actors as it is.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from ..core.files import expand_inputs, is_photo

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
SEQUENCE_SUFFIXES = (".exr", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
_PRINTF = re.compile(r"%0?(\d*)d")
_HASHES = re.compile(r"#+")


class InputError(ValueError):
    """An input that names nothing batch can read (the message says which and why)."""


@dataclasses.dataclass(frozen=True)
class Frame:
    """One photo to estimate: the manifest's key, the output files' stem, and where its pixels are
    (a file; or, in a video, the frame's index)."""
    key: str
    stem: str
    path: str
    index: int | None = None      # the frame's number in a video (decoded in order), else None


@dataclasses.dataclass(frozen=True)
class Unit:
    """Photos estimated independently (clip None), or a clip's frames in order (a video's path,
    or the sequence's pattern; its frames' files in `frames`)."""
    frames: tuple[Frame, ...]
    clip: str | None = None
    video: bool = False

    @property
    def stem(self) -> str:
        """The clip's name for its preview (the pattern's or the video's file name, numbering dropped)."""
        name = Path(self.clip or "").name
        return _HASHES.sub("", _PRINTF.sub("", Path(name).stem if self.video else name.rsplit(".", 1)[0])).rstrip("._-")


def is_pattern(text: str) -> bool:
    return bool(_PRINTF.search(Path(text).name) or _HASHES.search(Path(text).name))


def read_units(inputs: list[str], *, frame_count=None) -> list[Unit]:
    """The units of the inputs, photos first grouped into one unit each (InputError for an input
    that is missing or unreadable, or two inputs that would write the same files).
    frame_count(path) -> a video's number of frames (video.frame_count, passed in so this module
    stays free of OpenCV)."""
    photos: list[Path] = []
    units: list[Unit] = []
    for text in _expand_lists(inputs):
        path = Path(text)
        if is_pattern(text):
            units.append(_sequence(path))
        elif path.is_dir() or (path.is_file() and is_photo(path.name)):
            found = expand_inputs([text])
            if path.is_dir() and not found:
                raise InputError(f"{path}: no photos in this folder")
            photos += found
        elif path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            if frame_count is None:
                raise InputError(f"{path}: videos need a frame counter")
            count = frame_count(path)
            key = str(path.resolve())
            units.append(Unit(tuple(Frame(f"{key}#{i}", f"{path.stem}.{i:06d}", key, i) for i in range(count)),
                              clip=key, video=True))
        elif not path.exists():
            raise InputError(f"{path}: no such file or folder")
        else:
            raise InputError(f"{path}: not a photo, folder, list (.txt), video ({', '.join(VIDEO_SUFFIXES)}) "
                             f"or image-sequence pattern (name.%04d.png, name.####.exr)")
    keys = dict.fromkeys(str(p.resolve()) for p in photos)   # a photo named twice is done once
    units = [Unit((Frame(key, Path(key).stem, key),)) for key in keys] + units
    _check_distinct(units)
    return units


def _expand_lists(inputs: list[str]) -> list[str]:
    """Inputs with each list file (.txt) replaced by the inputs it names."""
    expanded = []
    for text in inputs:
        path = Path(text)
        if path.suffix.lower() != ".txt":
            expanded.append(text)
            continue
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"{path}: cannot read the list ({getattr(error, 'strerror', None) or error})") from None
        for line in (line.strip() for line in lines):
            if line and not line.startswith("#"):
                expanded.append(line if Path(line).is_absolute() else str(path.parent / line))
    return expanded


def _sequence(pattern: Path) -> Unit:
    """The files of an image-sequence pattern that exist, in frame order."""
    name = pattern.name
    match = _PRINTF.search(name) or _HASHES.search(name)
    assert match is not None
    if match.re is _PRINTF:
        digits = int(match.group(1) or 0)
    else:
        digits = len(match.group(0))
    number = rf"(\d{{{digits},}})" if digits else r"(\d+)"
    regex = re.compile(re.escape(name[:match.start()]) + number + re.escape(name[match.end():]) + "$")
    folder = pattern.parent
    if not folder.is_dir():
        raise InputError(f"{pattern}: no such folder {folder}")
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := regex.match(p.name)))
    if not found:
        raise InputError(f"{pattern}: no files match this sequence pattern")
    if Path(name).suffix.lower() not in SEQUENCE_SUFFIXES:
        raise InputError(f"{pattern}: sequences of {', '.join(SEQUENCE_SUFFIXES)} files are read")
    clip = str(pattern.resolve())
    return Unit(tuple(Frame(str(p.resolve()), p.stem, str(p.resolve())) for _, p in found), clip=clip)


def _check_distinct(units: list[Unit]) -> None:
    """No two inputs may write the same output files (photos of the same name in two folders)."""
    seen: dict[str, str] = {}
    for frame in (frame for unit in units for frame in unit.frames):
        other = seen.setdefault(frame.stem, frame.key)
        if other != frame.key:
            raise InputError(f"{other} and {frame.key} would both write {frame.stem}_normal.png: "
                             f"run them into different output folders (-o)")
