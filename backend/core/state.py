"""Where a running server leaves its state file (address, pid, protocol), so clients can find it."""
from __future__ import annotations

from pathlib import Path

STATE_FOLDER = Path.home() / ".cache" / "face-normals" / "servers"


def state_file(address: str, folder: Path = STATE_FOLDER) -> Path:
    safe = "".join(c if c.isalnum() else "_" for c in address)
    return folder / f"{safe}.json"
