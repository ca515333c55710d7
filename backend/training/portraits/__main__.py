"""`python -m backend.training.portraits DIR`: (re)write the split's lists from the photos in DIR."""
from __future__ import annotations

import sys
from pathlib import Path

from . import EVALUATION_LIST, TRAINING_LIST, write_lists


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m backend.training.portraits PORTRAIT_FOLDER", file=sys.stderr)
        return 1
    training, evaluation = write_lists(Path(args[0]))
    print(f"{training} training photos -> {TRAINING_LIST}\n{evaluation} held-out photos -> {EVALUATION_LIST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
