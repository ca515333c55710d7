"""Set Up Backend and Remove Backend as jobs (jobs.py): the backend's private environment in the
extension's user folder (environment.py), made and removed without blocking Blender.

The set-up, step by step, each step a subprocess polled without waiting:
1. find a Python that can make a venv (3.11-3.13): the one given in the preferences, or
   Blender's own (sys.executable), python3.13, python3.12, python3.11, python3 on PATH - each
   asked, not assumed;
2. `<that python> -m venv --without-pip <folder>`, then pip from the pip wheel the zip carries
   (`<venv python> <pip.whl>/pip install --no-index <pip.whl>`): no `ensurepip` needed (Debian's
   and Ubuntu's Python lack it without python3-venv), and the same recent pip everywhere, which
   trusts the system's certificate store (truststore);
3. `<venv python> -m pip install <the bundled face-normals wheel>` with PyTorch's CPU index as an
   extra index (default), the plain index (CUDA builds on Linux), or only a folder of wheels
   (offline: `--no-index --find-links DIR`); progress from pip's output and, while pip installs
   (it prints nothing per package), from the packages' metadata appearing in the environment;
4. start `<venv python> -m backend serve` and wait for its `info`;
5. only then write the marker (environment.write_marker): the environment is ready.
Cancel terminates the running process; a failure keeps pip's whole log in
environment.log_path() and says what to do.  Nothing here imports torch or the backend."""
from __future__ import annotations

import functools
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import environment
from .backend_process import Stopping, launch
from .client import ServerError
from .client.launcher import ServerProcess
from .job import Job, JobFailed
from .link import LINK
from .pip_progress import PipProgress

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
SUPPORTED = ((3, 11), (3, 12), (3, 13))
FREE_BYTES = {"CPU": 2_000_000_000, "CUDA": 8_000_000_000, "INDEX": 2_000_000_000}   # download + install
# What the panel promises per PyTorch choice: CPU measured ~1.2 GB; the index's PyTorch on Linux and
# Windows is the CUDA build (issue #30: 3.1 GB downloaded, 5.7 GB on disk)
DISK_NEEDS = {"CPU": "about 1.2 GB on disk",
              "CUDA": "several GB: about 3 GB to download, 6 GB on disk",
              "INDEX": "on Linux and Windows the index gives the CUDA build: about 6 GB on disk"}
START_SECONDS = 180.0
LOG_LINES = 12                       # pip's last lines shown in the panel on failure

# Asked of each candidate Python: its version, and whether it has venv and ensurepip.
CHECK = ("import json, sys\n"
         "ok = {'version': list(sys.version_info[:2]), 'executable': sys.executable}\n"
         "for name in ('venv', 'ensurepip'):\n"
         "    try:\n"
         "        __import__(name)\n"
         "        ok[name] = True\n"
         "    except Exception:\n"
         "        ok[name] = False\n"
         "print(json.dumps(ok))\n")


@dataclass
class SetupState:
    """What the panel shows: the last failure's message and the log lines that explain it."""
    error: str = ""
    log_tail: list[str] = field(default_factory=list)
    running: bool = False
    progress: str = ""               # the running set-up's phase and count, for the panel
    python: str = ""                 # the Python the last set-up chose, and how it gets pip


STATE = SetupState()


def wheel_path(name: str = "face_normals") -> Path | None:
    """A wheel the zip carries (addon/build.py puts them in backend_wheel/): the face-normals
    backend, or pip (name="pip") for environments made without ensurepip."""
    found = sorted((Path(__file__).parent / "backend_wheel").glob(f"{name}-*.whl"))
    return found[-1] if found else None


@functools.cache
def nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None


class Process:
    """A subprocess whose merged stdout/stderr a thread reads line by line into a queue (and the
    log file), so `lines()` never blocks."""

    def __init__(self, command: list[str], *, log, env: dict | None = None):
        self.command = command
        log.write(f"\n[{time.strftime('%H:%M:%S')}] $ {' '.join(command)}\n")
        log.flush()
        self._log = log
        self._queue: queue.Queue[str] = queue.Queue()
        self.popen = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, env=env, text=True, errors="replace",
                                      bufsize=1, start_new_session=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self.output: list[str] = []

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._queue.put(line.rstrip("\r\n"))

    def lines(self) -> list[str]:
        new = []
        while True:
            try:
                new.append(self._queue.get_nowait())
            except queue.Empty:
                break
        logged = [line for line in new if not line.startswith("Progress ")]   # pip's raw progress
        if logged:
            self._log.write("\n".join(logged) + "\n")
            self._log.flush()
        self.output += new
        return new

    def finished(self) -> int | None:
        """The exit code once the process has ended and all its output was read, else None."""
        code = self.popen.poll()
        if code is None or self._thread.is_alive():
            return None
        self.lines()
        return code

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(3)
            except subprocess.TimeoutExpired:
                self.popen.kill()


CERTIFICATE = re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|SSLCertVerificationError|"
                         r"problem confirming the ssl certificate")


def certificate_failure(output: list[str]) -> str | None:
    """The hosts whose HTTPS certificates pip could not verify (from pip's own lines), else None."""
    failed = [line for line in output if CERTIFICATE.search(line)]
    hosts: list[str] = []
    for line in failed:
        host = re.search(r"host='([^']+)'", line) or re.search(r"https?://([^/:\s'\"]+)", line)
        if host and host.group(1) not in hosts:
            hosts.append(host.group(1))
    return (" and ".join(hosts) or "the package index") if failed else None


def explain_certificate(host: str, cert: str) -> str:
    """Why pip refused the index's certificate, and the next step that works."""
    if cert:
        return (f"pip could not verify the HTTPS certificate of {host} with the Certificate Bundle {cert} "
                f"(CERTIFICATE_VERIFY_FAILED): that file does not hold the authority that signed it. Ask your "
                f"IT for the CA bundle of the proxy that inspects HTTPS (a .pem file), set it there and press "
                f"Set Up Backend again")
    return (f"pip could not verify the HTTPS certificate of {host} (CERTIFICATE_VERIFY_FAILED): something "
            f"between this computer and the index shows its own certificate, most often a company proxy "
            f"that inspects HTTPS. pip already uses this system's certificate store, so either install "
            f"your organisation's root certificate there, or set its CA bundle (a .pem file, from your IT) "
            f"in Certificate Bundle below; then press Set Up Backend again")


def explain_pip_failure(output: list[str], *, offline: str, index: str, cert: str = "") -> str:
    """A sentence that says why pip failed and what to do."""
    text = "\n".join(output)
    host = certificate_failure(output)
    missing = re.findall(r"No matching distribution found for (\S+)", text)
    network = re.search(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
                        r"resolution|Name or service not known|Network is unreachable|Connection refused|"
                        r"ConnectTimeout|ReadTimeout|Max retries exceeded|ProxyError|SSLError|"
                        r"Could not fetch URL", text)
    if re.search(r"No space left on device|\[Errno 28\]", text):
        return (f"The disk is full: the set-up needs about 2 GB free (8 GB for CUDA) in "
                f"{environment.user_folder()}. Free some space and press Set Up Backend again")
    if host is not None:
        return explain_certificate(host, cert)
    if offline and missing:
        return (f"The wheel folder {offline} has no wheel for {missing[0]} for this Python: fill it with "
                f"`pip download` (see the README, 'Offline set-up') and press Set Up Backend again")
    if network:
        where = index or "the package index (PyPI)"
        return (f"Could not reach {where}: check the network connection (or the proxy in pip's "
                f"configuration), then press Set Up Backend again; offline, set a Wheel Folder "
                f"(README: 'Offline set-up')")
    if missing:
        return (f"{index or 'The package index (PyPI)'} gave no {missing[0]}: check the network connection "
                f"(pip may not have said it could not connect), or choose another Python (3.11 to 3.13), "
                f"Package Index or PyTorch build in the preferences")
    return "pip failed installing the backend (its last lines are below; the whole log is in " \
           f"{environment.log_path()})"


def cpu_index_gone(line: str) -> bool:
    """pip's last retry of a page of PyTorch's CPU index: after it pip would go on without that
    index and take the package index's torch (CUDA on Linux and Windows) instead of the CPU build."""
    path = CPU_INDEX.split("//", 1)[-1].split("/", 1)[-1]       # whl/cpu
    return bool(re.search(r"Retrying \(Retry\(total=0\b", line)) and f"/{path}/" in line


def discard(root: Path) -> tuple[subprocess.Popen, Path]:
    """Rename the folder away at once and delete it in a subprocess (a gigabyte of files can take a
    minute); returns that process and the folder's new name."""
    trash = root.with_name(f"{root.name}.removing-{os.getpid()}-{time.monotonic_ns()}")
    os.replace(root, trash)
    return subprocess.Popen([sys.executable, "-c", "import shutil, sys; shutil.rmtree(sys.argv[1])", str(trash)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), trash


def pip_options(prefs) -> tuple[list[str], dict | None]:
    """The source options for pip and the environment it runs in (None: inherited).  Offline
    means only the folder: pip's own configuration (other indexes, find-links) is left out."""
    if prefs.wheel_folder:
        folder = bpy_abspath(prefs.wheel_folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
        return ["--no-index", "--find-links", folder], env
    options = ["--index-url", prefs.index_url] if prefs.index_url else []
    if prefs.torch_build == "CPU":
        options += ["--extra-index-url", CPU_INDEX]
    if prefs.ca_bundle:       # pip's requests would take these variables over --cert
        options += ["--cert", bpy_abspath(prefs.ca_bundle)]
        return options, {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    return options, None


def installed_since(root: Path, since: float) -> int:
    """Packages pip has finished installing into the environment since `since` (time.time()):
    pip prints nothing per package while it installs, but each one's metadata folder gets its
    RECORD file last."""
    site = root.glob("Lib/site-packages/*.dist-info/RECORD") if sys.platform == "win32" else \
        root.glob("lib*/python*/site-packages/*.dist-info/RECORD")
    count = 0
    for record in site:
        try:
            count += record.stat().st_mtime >= since
        except OSError:
            pass
    return count


def bpy_abspath(path: str) -> str:
    import bpy
    return os.path.abspath(bpy.path.abspath(path))


def pip_version(root: Path) -> tuple[int, ...]:
    for info in root.glob("lib*/python*/site-packages/pip-*.dist-info") if sys.platform != "win32" else \
            root.glob("Lib/site-packages/pip-*.dist-info"):
        try:
            return tuple(int(p) for p in info.name[4:-10].split(".")[:2])
        except ValueError:
            pass
    return (0,)


class SetupJob(Job):
    title = "Setting up the backend"

    def __init__(self, prefs):
        super().__init__()
        import shlex
        if STATE.running:
            raise ValueError("A backend set-up is already running (Esc cancels it)")
        self.prefs = prefs
        self.root = environment.folder()
        self.wheel = wheel_path()
        if self.wheel is None:
            raise ValueError("This add-on has no backend wheel inside (a developer build?): install the zip "
                             "that `make addon` builds, or choose Backend: My Own Python")
        self.pip_wheel = wheel_path("pip")
        if self.pip_wheel is None:
            raise ValueError("This add-on has no pip wheel inside (a developer build?): install the zip "
                             "that `make addon` builds")
        if prefs.wheel_folder and not os.path.isdir(bpy_abspath(prefs.wheel_folder)):
            raise ValueError(f"The wheel folder {prefs.wheel_folder} does not exist")
        if prefs.ca_bundle and not os.path.isfile(bpy_abspath(prefs.ca_bundle)):
            raise ValueError(f"The Certificate Bundle {prefs.ca_bundle} is not a file: give the .pem file of "
                             f"your organisation's certificate authority, or leave the field empty")
        given = shlex.split(prefs.setup_python)
        self.candidates = [given] if given else self._candidates()
        self.rejected: list[str] = []
        environment.user_folder().mkdir(parents=True, exist_ok=True)
        self.log = open(environment.log_path(), "w", encoding="utf-8")
        self.log.write(f"Face Normals backend set-up, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self.process: Process | None = None
        self.phase = "python"
        self.base: list[str] | None = None
        self.pip = PipProgress()
        self.pip_started = 0.0
        self.server: ServerProcess | None = None
        self.started = self.server_started = time.monotonic()
        self.info: dict = {}
        self._replacing: Stopping | None = None
        STATE.error, STATE.log_tail, STATE.running, STATE.python = "", [], True, ""
        environment.marker(self.root).unlink(missing_ok=True)    # a re-run is not ready until it ends
        free = shutil.disk_usage(environment.user_folder()).free
        if free < FREE_BYTES[prefs.torch_build]:
            self._fail(f"The disk is full: the set-up needs about {FREE_BYTES[prefs.torch_build] / 1e9:.0f} GB "
                       f"free in {environment.user_folder()} ({free / 1e9:.1f} GB free). Free some space and "
                       f"press Set Up Backend again", raise_=False)
            raise ValueError(STATE.error)

    @staticmethod
    def _candidates() -> list[list[str]]:
        names = [sys.executable, *(shutil.which(n) for n in ("python3.13", "python3.12", "python3.11", "python3"))]
        seen, found = set(), []
        for name in names:
            if name and os.path.realpath(name) not in seen:
                seen.add(os.path.realpath(name))
                found.append([name])
        if sys.platform == "win32" and shutil.which("py"):     # the python.org launcher
            found += [["py", f"-3.{minor}"] for minor in (13, 12, 11)]
        return found

    def _fail(self, message: str, *, tail: list[str] | None = None, raise_: bool = True) -> None:
        STATE.error, STATE.log_tail, STATE.running = message, (tail or [])[-LOG_LINES:], False
        self.log.write(f"\nFAILED: {message}\n")
        self.log.close()
        if self.server is not None:
            self.server.stop()
            LINK.forget_server()
        if raise_:
            raise JobFailed(message + (": " + " | ".join(STATE.log_tail[-3:]) if STATE.log_tail else ""))

    def step(self) -> bool:
        try:
            finished = getattr(self, f"_step_{self.phase}")()
            count = f" ({self.done}/{self.total})" if self.total else ""
            STATE.progress = f"{self.status}{count}"
            return finished
        except JobFailed:
            raise
        except BaseException as error:      # a bug: still never left "running" (or ready)
            self.cancel()
            STATE.error = (f"The set-up stopped on an unexpected error ({error!r}): the backend is not set up; "
                           f"the log is {environment.log_path()}")
            raise

    # 1. a Python that can make a venv with pip
    def _step_python(self) -> bool:
        self.status = "finding a Python for the backend"
        if self.process is None:
            if not self.candidates:
                self._fail("No usable Python for the backend (3.11 to 3.13 with its venv module) was found: "
                           + "; ".join(self.rejected) + ". Install Python 3.12 (python.org, or your system's "
                           "python3 package) or give one in Set-Up Python")
            try:
                self.process = Process([*self.candidates[0], "-c", CHECK], log=self.log)
            except OSError as error:
                self.rejected.append(f"{' '.join(self.candidates.pop(0))}: {error.strerror or error}")
                return False
        code = self.process.finished()
        if code is None:
            self.process.lines()
            return False
        command = self.candidates.pop(0)
        try:
            found = json.loads(self.process.output[-1]) if code == 0 and self.process.output else None
        except ValueError:
            found = None
        self.process = None
        if found is None:
            self.rejected.append(f"{' '.join(command)}: does not run")
        elif tuple(found["version"]) not in SUPPORTED:
            self.rejected.append(f"{' '.join(command)}: Python {'.'.join(map(str, found['version']))}")
        elif not found["venv"]:
            self.rejected.append(f"{' '.join(command)}: has no venv module")
        else:
            self.base = command
            version = ".".join(map(str, found["version"]))
            runs = "" if os.path.realpath(command[0]) == os.path.realpath(found["executable"]) \
                else f"{found['executable']}, "
            STATE.python = (f"{' '.join(command)} ({runs}Python {version}"
                            f"{'' if found['ensurepip'] else ', without ensurepip'}; pip from the add-on's wheel)")
            self.log.write(f"using {STATE.python}\n")
            self.phase = "venv"
        return False

    # 2. the venv (reused when a previous run left a working one)
    def _step_venv(self) -> bool:
        self.status = "making the environment"
        choice = self.root / "face_normals_setup.json"
        if self.process is None:
            if environment.python(self.root).exists() and pip_version(self.root) > (0,) and \
                    choice.is_file() and choice.read_text() == self._choice():
                self.log.write("reusing the environment a previous set-up made with the same choices\n")
                self.phase = "pip"
                return False
            if self.root.exists():              # another Python or PyTorch build, or no pip yet: a new one
                discard(self.root)
            assert self.base is not None
            self.process = Process([*self.base, "-m", "venv", "--without-pip", str(self.root)], log=self.log)
        code = self.process.finished()
        if code is None:
            self.process.lines()
            return False
        output, self.process = self.process.output, None
        if code != 0 or not environment.python(self.root).exists():
            if any("No space left" in line for line in output):
                self._fail(explain_pip_failure(output, offline="", index=""), tail=output)
            self._fail(f"Could not make the environment with {' '.join(self.base or [])}: choose another "
                       "Python in Set-Up Python", tail=output)
        choice.write_text(self._choice())
        self.phase = "bootstrap"
        return False

    # 2b. pip into the new environment, from the wheel the zip carries (pip runs from its own wheel)
    def _step_bootstrap(self) -> bool:
        self.status = "installing pip into the environment"
        if self.process is None:
            assert self.pip_wheel is not None
            self.process = Process([str(environment.python(self.root)), str(self.pip_wheel / "pip"), "install",
                                    "--no-index", "--disable-pip-version-check", "--no-input", str(self.pip_wheel)],
                                   log=self.log)
        code = self.process.finished()
        if code is None:
            self.process.lines()
            return False
        output, self.process = self.process.output, None
        if code != 0 or pip_version(self.root) == (0,):
            self._fail(f"Could not install pip into the environment with {' '.join(self.base or [])}: choose "
                       f"another Python in Set-Up Python", tail=output)
        self.phase = "pip"
        return False

    def _choice(self) -> str:
        """What makes an environment: a previous one is reused (pip then only completes it) when equal."""
        return json.dumps({"python": os.path.realpath((self.base or ["?"])[0]), "torch": self.prefs.torch_build})

    # 3. pip install the wheel and its dependencies
    def _step_pip(self) -> bool:
        if self.process is None:
            options, env = pip_options(self.prefs)
            progress = ["--progress-bar", "raw"] if pip_version(self.root) >= (24, 1) else ["--progress-bar", "off"]
            import shlex
            command = [str(environment.python(self.root)), "-m", "pip", "install", "--disable-pip-version-check",
                       "--no-input", *progress, *options, str(self.wheel), *shlex.split(self.prefs.pip_args)]
            self.process = Process(command, log=self.log, env=env)
            self.pip_started = time.time() - 1          # file times may be coarse
        process = self.process
        for line in process.lines():
            self.pip.feed(line)
            if self.prefs.torch_build == "CPU" and not self.prefs.wheel_folder and cpu_index_gone(line):
                process.terminate()
                self.process = None
                host = certificate_failure(process.output)
                self._fail(explain_certificate(host, self.prefs.ca_bundle) if host is not None else
                           f"Could not reach PyTorch's CPU index ({CPU_INDEX}): check the network connection "
                           f"(or the proxy in pip's configuration) and press Set Up Backend again, or choose "
                           f"PyTorch: As the Index Serves (on Linux and Windows the index's PyTorch is the "
                           f"several-GB CUDA build)", tail=[t for t in process.output if t.strip()])
        if self.pip.total:
            self.pip.done = min(self.pip.total, installed_since(self.root, self.pip_started))
        self.status, self.done, self.total = self.pip.status, self.pip.done, self.pip.total
        code = process.finished()
        if code is None:
            return False
        for line in process.lines():
            self.pip.feed(line)
        output, self.process = process.output, None
        if code != 0:
            offline = bpy_abspath(self.prefs.wheel_folder) if self.prefs.wheel_folder else ""
            self._fail(explain_pip_failure(output, offline=offline, index=self.prefs.index_url,
                                           cert=self.prefs.ca_bundle),
                       tail=[line for line in output if line.strip() and not line.startswith(("Progress ", "INFO:"))])
        self.done = self.total = 0
        self.phase = "start"
        return False

    # 4. the backend from the new environment answers `info`
    def _step_start(self) -> bool:
        self.status = "starting the backend (loading the model)"
        if LINK.process is not None and self.server is None:   # one this add-on started before: replaced
            self._replacing = self._replacing or LINK.stopping()
            if not self._replacing.step():
                return False
        if self.server is None:
            log = environment.user_folder() / "backend.log"
            self.server = launch(self.prefs, str(environment.python(self.root)), log)
            self.server_started = time.monotonic()
            self.log.write(f"\n[{time.strftime('%H:%M:%S')}] $ {' '.join(self.server.command)}\n")
        try:
            info = self.server.ready()
        except ServerError as error:
            tail = Path(self.server.log_path or "").read_text(errors="replace").splitlines() \
                if self.server.log_path else []
            self.server = None
            self._fail(f"The backend was installed but does not start: {error}. If another backend already "
                       f"runs at {self.prefs.address}, stop it or change Backend Address", tail=tail)
            return False
        if info is None:
            if time.monotonic() - self.server_started > START_SECONDS:
                self._fail(f"The backend was installed but did not answer within {START_SECONDS:.0f} s")
            return False
        # 5. ready: the marker, written last
        LINK.configure(self.prefs.address, self.prefs.timeout)      # first: a new address forgets old answers
        LINK.adopt(self.server, info)
        self.info = info
        environment.write_marker({"python": str(environment.python(self.root)), "base_python": self.base,
                                  "chosen_python": STATE.python,
                                  "torch_build": self.prefs.torch_build,
                                  "source": self.prefs.wheel_folder or self.prefs.index_url or "default index",
                                  "device": info.get("device"), "model": info.get("model", {}).get("version"),
                                  "downloaded_mb": round(self.pip.downloaded_mb, 1),
                                  "seconds": round(time.monotonic() - self.started, 1),
                                  "date": time.strftime("%Y-%m-%d %H:%M:%S")}, self.root)
        self.log.write(f"\n[{time.strftime('%H:%M:%S')}] READY in {time.monotonic() - self.started:.0f} s, "
                       f"{self.pip.downloaded_mb:.0f} MB downloaded\n")
        self.log.close()
        STATE.running = False
        return True

    def cancel(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        STATE.error, STATE.running = "Set-up cancelled: the backend is not set up (press Set Up Backend again)", False
        if not self.log.closed:
            self.log.write("\nCANCELLED\n")
            self.log.close()


class RemoveJob(Job):
    """Stop the backend if it runs from the environment, then delete the environment: the marker
    first (so nothing uses it meanwhile), the folder renamed, then deleted by a subprocess."""

    title = "Removing the backend"

    def __init__(self):
        super().__init__()
        if STATE.running:
            raise ValueError("A backend set-up is running: cancel it (Esc) before removing the backend")
        self.root = environment.folder()
        self.process: subprocess.Popen | None = None
        self.trash: Path | None = None
        environment.marker(self.root).unlink(missing_ok=True)
        STATE.error, STATE.log_tail = "", []
        from_here = LINK.process is not None and str(self.root) in " ".join(LINK.process.command)
        self._stopping = LINK.stopping() if from_here else None

    def step(self) -> bool:
        if self._stopping is not None:
            self.status = "stopping the backend"
            if not self._stopping.step():
                return False
            self._stopping = None
        if self.process is None:
            if not self.root.exists():
                return True
            self.status = "deleting the environment"
            try:
                self.process, self.trash = discard(self.root)
            except OSError as error:
                raise JobFailed(f"Could not remove {self.root}: {error.strerror or error}") from None
        code = self.process.poll()
        if code is None:
            return False
        if code != 0 and self.trash is not None and self.trash.exists():
            reason = (self.process.stderr.read().decode(errors="replace").strip().splitlines() or ["?"])[-1] \
                if self.process.stderr else "?"
            raise JobFailed(f"Could not delete {self.trash}: {reason}")
        return True
