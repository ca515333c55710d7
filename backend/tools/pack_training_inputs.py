"""Pack what `python -m backend train --recipe gpu` needs into one folder that travels with the
repository to a machine without network or ../shared:

    python -m backend.tools.pack_training_inputs --data ../shared/data/ict_facekit \\
        --portraits ../shared/data/portraits --output pack

- ict_facekit_light_packed.npz: the head model, its identity and expression bases in float16
  (FaceKit reads them back as float32; a tenth of a millimetre at most), compressed;
- vertex_indices.json: the 68 landmark vertices;
- portraits.npz: the training side of the fixed portrait split (555 photos) re-encoded as JPEG
  (quality 85, their own 225x275 size): the bytes end to end ("jpeg") and where each ends ("ends").

Prints each file's size and the total with the repository's tracked files (the budget is 64 MB).
`pack` is in .gitignore: never commit it (the portraits and the head stay where they are).
"""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import cv2
import numpy as np

from ..training.facekit import PACKED
from ..training.portraits import portrait_split

HALF = ("id_basis", "expr_basis")


def pack_head(data: Path, output: Path) -> None:
    source = np.load(data / PACKED)
    arrays = {k: source[k].astype(np.float16) if k in HALF else source[k] for k in source.files}
    np.savez_compressed(output / PACKED, **arrays)
    landmarks = json.loads((data / "vertex_indices.json").read_text())["idx_to_landmark_verts"]
    (output / "vertex_indices.json").write_text(json.dumps({"idx_to_landmark_verts": landmarks}))


def pack_portraits(images: list[np.ndarray], path: Path, quality: int = 85) -> None:
    """RGB uint8 images -> one .npz of their JPEG bytes (training/intrinsic_training.py reads it)."""
    coded = [cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1].ravel()
             for image in images]
    np.savez(path, jpeg=np.concatenate(coded), ends=np.cumsum([len(c) for c in coded]))


def repository_bytes(root: Path) -> int:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    return sum((root / name).stat().st_size for name in files.decode().split("\0") if name and (root / name).is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the ICT-FaceKit folder")
    parser.add_argument("--portraits", required=True, help="the real portrait folder")
    parser.add_argument("--output", default="pack", help="folder to write (default: pack)")
    args = parser.parse_args(argv)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    pack_head(Path(args.data), output)
    training, _ = portrait_split(args.portraits)
    pack_portraits([cv2.imread(str(p), cv2.IMREAD_COLOR)[..., ::-1] for p in training], output / "portraits.npz")
    packed = sum(p.stat().st_size for p in output.iterdir())
    for p in sorted(output.iterdir()):
        print(f"{p.name}: {p.stat().st_size / 1e6:.2f} MB")
    tracked = repository_bytes(Path(__file__).resolve().parent.parent.parent)
    print(f"pack {packed / 1e6:.2f} MB + repository {tracked / 1e6:.2f} MB = {(packed + tracked) / 1e6:.2f} MB "
          f"({(packed + tracked) / 2 ** 20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
