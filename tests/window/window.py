"""A real Blender window for the tests: Debian trixie's Blender 4.3 (Python 3.13) in the chroot
that setup.sh makes, under Xvfb, driven by control.py from inside and by xdotool from outside."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 1600, 1000


class SetupUnavailable(Exception):
    """This machine cannot make the chroot (the message says why)."""


def set_up(timeout: float = 3600) -> Path:
    """Run setup.sh (quick once cached); the chroot's root folder.  This process is counted among
    the chroot's users until tear_down, so that another test run on the machine keeps its mounts."""
    with _users_lock():
        done = subprocess.run(["sh", str(HERE / "setup.sh")], capture_output=True, text=True, timeout=timeout)
        if done.returncode == 3:
            raise SetupUnavailable(done.stderr.strip().splitlines()[-1])
        if done.returncode != 0:
            raise RuntimeError(f"tests/window/setup.sh failed ({done.returncode}):\n{done.stderr[-4000:]}")
        root = Path(done.stdout.strip().splitlines()[-1])
        (_users() / str(os.getpid())).touch()
    return root


def tear_down() -> None:
    """Unbind the host's /proc, /sys, /dev and /tmp from the chroot when no other test run still
    uses it: a cache left mounted would take the host's /dev and /tmp with it if someone deleted it."""
    with _users_lock():
        (_users() / str(os.getpid())).unlink(missing_ok=True)
        if not [user for user in _users().iterdir() if _alive(int(user.name))]:
            subprocess.run(["sh", str(HERE / "setup.sh"), "unmount"], capture_output=True, timeout=120)


def _users() -> Path:
    """One file per process (its pid) that uses the chroot, beside it in the cache."""
    folder = Path(os.environ.get("FACE_NORMALS_WINDOW_CACHE", "/var/cache/face-normals-window")) / "users"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def _users_lock():
    """Mounting and unmounting, and the users' list, one test run at a time."""
    with open(_users().parent / "users.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


class Window:
    """Xvfb and `blender --factory-startup --python control.py` inside the chroot.  `folder` must
    be under /tmp (the chroot sees the host's /tmp at the same path)."""

    def __init__(self, root: Path, folder: Path):
        self.root, self.folder = root, folder
        self.commands = folder / "commands"
        self.commands.mkdir(parents=True)
        shutil.copy(HERE / "control.py", folder / "control.py")
        self._count = 0
        self._shots = 0
        self._logs = []
        # Xvfb picks a free display itself and writes its number to the pipe: two test runs on one
        # machine cannot both take the same one (choosing it here and starting Xvfb after races)
        self.display = ""
        read_end, write_end = os.pipe()
        self.xvfb = self._spawn("xvfb", ["Xvfb", "-displayfd", str(write_end), "-screen", "0",
                                         f"{WIDTH}x{HEIGHT}x24", "-nolisten", "tcp"], keep=(write_end,))
        os.close(write_end)
        with os.fdopen(read_end) as chosen:
            ready, _, _ = select.select([chosen], [], [], 30)
            number = chosen.readline().strip() if ready else ""
        if not number.isdigit():
            raise RuntimeError(f"Xvfb did not start: {self.log('xvfb')}")
        self.display = f":{number}"
        self.blender = self._spawn("blender", [
            "blender", "--factory-startup", "--window-geometry", "0", "0", str(WIDTH), str(HEIGHT),
            "--python", str(folder / "control.py"), "--", str(self.commands)])
        deadline = time.monotonic() + 180
        while not (self.commands / "ready").exists():
            if time.monotonic() > deadline or self.blender.poll() is not None:
                raise RuntimeError(f"Blender did not come up: {self.log('blender')[-3000:]}")
            time.sleep(0.2)

    def _env(self) -> list[str]:
        return ["/usr/bin/env", "-i", "HOME=/root", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
                f"DISPLAY={self.display}", f"BLENDER_USER_RESOURCES={self.folder / 'blender_user'}"]

    def _spawn(self, name: str, command: list[str], keep: tuple[int, ...] = ()) -> subprocess.Popen:
        handle = open(self.folder / f"{name}.log", "w")
        self._logs.append(handle)
        return subprocess.Popen(["chroot", str(self.root), *self._env(), *command], stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True, pass_fds=keep)

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def run(self, source: str, timeout: float = 60):
        """Run Python in Blender's main thread (see control.py); the value it left in `result`."""
        name = self.commands / str(self._count)
        self._count += 1
        name.with_suffix(".tmp").write_text(source)
        os.replace(name.with_suffix(".tmp"), name.with_suffix(".py"))
        answer = name.with_suffix(".json")
        deadline = time.monotonic() + timeout
        while not answer.exists():
            if self.blender.poll() is not None:
                raise RuntimeError(f"Blender exited ({self.blender.returncode}): {self.log('blender')[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Blender did not answer within {timeout} s: {source[:200]}")
            time.sleep(0.02)
        reply = json.loads(answer.read_text())
        if not reply["ok"]:
            raise AssertionError(f"in Blender:\n{reply['error']}")
        return reply["result"]

    def wait_for(self, expression: str, timeout: float = 60, poll: float = 0.2):
        """Poll an expression in Blender until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.run(f"result = {expression}", timeout=max(60.0, deadline - time.monotonic()))
            if value or time.monotonic() > deadline:
                return value
            time.sleep(poll)

    def tool(self, *command: str) -> str:
        """A program of the chroot on this display (xdotool, import, convert)."""
        done = subprocess.run(["chroot", str(self.root), *self._env(), *command], capture_output=True,
                              text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{command}: {done.stderr}")
        return done.stdout

    def click(self, x: int, y: int) -> None:
        """A real click: move, pause (else Blender only shows a tooltip), click."""
        self.tool("xdotool", "mousemove", str(x), str(y))
        time.sleep(0.3)
        self.tool("xdotool", "click", "1")

    def key(self, name: str, x: int, y: int) -> None:
        """A key, with the pointer over (x, y) (no window manager: the window under the pointer has
        the keyboard)."""
        self.tool("xdotool", "mousemove", str(x), str(y))
        time.sleep(0.3)
        self.tool("xdotool", "key", name)

    def park_pointer(self) -> None:
        """Over the outliner's empty rows, where nothing shows a tooltip (for screenshots)."""
        self.tool("xdotool", "mousemove", str(WIDTH - 120), "300")

    def drag(self, start: tuple[int, int], end: tuple[int, int], steps: int = 8) -> None:
        self.tool("xdotool", "mousemove", str(start[0]), str(start[1]))
        time.sleep(0.3)
        self.tool("xdotool", "mousedown", "1")
        for i in range(1, steps + 1):
            x = start[0] + (end[0] - start[0]) * i // steps
            y = start[1] + (end[1] - start[1]) * i // steps
            self.tool("xdotool", "mousemove", str(x), str(y))
            time.sleep(0.05)
        self.tool("xdotool", "mouseup", "1")

    def screenshot(self, path: Path, box: tuple[int, int, int, int] | None = None, width: int = 0) -> Path:
        """The screen (or box = left, top, width, height of it) as PNG at `path` (anywhere on the
        host); scaled to `width` if given."""
        self._shots += 1
        shot = self.folder / f"shot-{self._shots}.png"           # inside the chroot's view
        self.tool("import", "-window", "root", str(shot))
        if box or width:
            arguments = ["convert", str(shot)]
            if box:
                arguments += ["-crop", f"{box[2]}x{box[3]}+{box[0]}+{box[1]}", "+repage"]
            if width:
                arguments += ["-resize", f"{width}x"]
            self.tool(*arguments, "-strip", str(shot))
        if Path(path) != shot:
            shutil.copyfile(shot, path)
        return Path(path)

    def close(self) -> None:
        for process in (self.blender, self.xvfb):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for handle in self._logs:
            handle.close()
