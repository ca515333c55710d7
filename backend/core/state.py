"""Where a running server leaves its state file (address, pid, protocol), so clients can find it."""
from __future__ import annotations

from pathlib import Path

STATE_FOLDER = Path.home() / ".cache" / "face-normals" / "servers"


def file_safe(address: str) -> str:
    """An address as a file name: 'tcp://127.0.0.1:5555' -> 'tcp___127_0_0_1_5555'."""
    return "".join(c if c.isalnum() else "_" for c in address)


def state_file(address: str, folder: Path = STATE_FOLDER) -> Path:
    return folder / f"{file_safe(address)}.json"
