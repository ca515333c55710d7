"""What pip is doing, read from its output lines (Set Up Backend's progress, backend_setup.py).
Pure Python: tested without Blender."""
from __future__ import annotations

import re
from pathlib import Path


class PipProgress:
    """Reads pip's output: what it is collecting, downloading (and how far, with pip >= 24.1's
    raw progress), installing.  `done`/`total`: packages collected, then installed."""

    def __init__(self):
        self.collected: list[str] = []
        self.status = "resolving the packages"
        self.total = 0
        self.done = 0
        self.downloaded_mb = 0.0
        self._current = ""

    def feed(self, line: str) -> None:
        text = line.strip()
        if match := re.match(r"(?:Collecting|Processing) (\S+)", text):
            name = Path(match.group(1)).name.split("-")[0] if "/" in match.group(1) else match.group(1)
            name = re.split(r"[<>=!~\[ ;]", name)[0]
            self.collected.append(name)
            self.done = len(self.collected)
            self.status = f"collecting {name}"
        elif match := re.match(r"Downloading (\S+) \(([\d.]+) (kB|MB|GB)\)", text):
            size = float(match.group(2)) * {"kB": 1e-3, "MB": 1.0, "GB": 1e3}[match.group(3)]
            self.downloaded_mb += size
            self._current = f"downloading {match.group(1).split('-')[0]} ({match.group(2)} {match.group(3)})"
            self.status = self._current
        elif match := re.match(r"Progress (\d+) of (\d+)", text):
            if int(match.group(2)):
                self.status = f"{self._current}, {100 * int(match.group(1)) // int(match.group(2))}%"
        elif text.startswith("Using cached"):
            self.status = f"using cached {text.split()[2].split('-')[0]}"
        elif text.startswith("Installing collected packages:"):
            names = [n.strip() for n in text.split(":", 1)[1].split(",") if n.strip()]
            self.total, self.done = len(names), 0
            large = " (PyTorch is large: a minute or more)" if "torch" in names else ""
            self.status = f"installing {len(names)} packages{large}"
