"""The manifest in a batch's output folder: one JSON line per photo estimated or failed, appended
only after the photo's files exist, so it is what a second run trusts.

A line: {"input": the photo's key (its absolute path; a video frame's is "<video>#<index>"),
"status": "done"|"failed", "outputs": {name: file}, "error": {"code", "message"} or null,
"timings": seconds per step, "settings": what changes the files' content (convention, detection,
focal length, weights), "worker": who made it, "time": when (UTC, ISO 8601); a done photo's
also "centres" (the pixel each face's crop is centred on) and "camera_space" (whether the normals
are in camera space, else each face's relative to the line of sight to its centre) and
"warnings" (why not to trust the map, as the service's results say)}.  The last line about
an input wins.  A run killed while appending leaves at worst a torn last line: it is skipped on
reading, and the next append starts on a new line.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

NAME = "manifest.jsonl"


class Manifest:
    def __init__(self, folder: Path):
        self.path = folder / NAME
        self.latest: dict[str, dict] = {}
        if self.path.is_file():
            with self.path.open("rb") as file:
                for raw in file:
                    try:
                        line = json.loads(raw)
                        self.latest[line["input"]] = line
                    except (ValueError, KeyError, TypeError):
                        continue      # a torn last line after a kill, or someone's edit
        self._file: int | None = None

    def is_done(self, key: str, settings: dict, wanted: set[str]) -> bool:
        """Whether an earlier run made this photo's files with these settings, every file asked
        for now among them and still there."""
        line = self.latest.get(key)
        return (line is not None and line.get("status") == "done" and line.get("settings") == settings
                and wanted <= set(line.get("outputs", {}))
                and all(Path(file).is_file() for file in line["outputs"].values()))

    def append(self, record: dict) -> None:
        """One line, in one write (O_APPEND: whole lines, even from several processes)."""
        if self._file is None:
            self._file = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if os.fstat(self._file).st_size and not self._ends_with_newline():
                os.write(self._file, b"\n")
        record = {**record, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.write(self._file, (json.dumps(record) + "\n").encode())
        self.latest[record["input"]] = record

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as file:
            file.seek(-1, os.SEEK_END)
            return file.read(1) == b"\n"

    def close(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None
