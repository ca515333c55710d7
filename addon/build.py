"""Build the installable extension: `make addon` (python addon/build.py) -> one zip per Python:
dist/face_normals-<version>.zip for Blender's Python 3.11 (Blender 4.2 LTS to 5.0) and
dist/face_normals-<version>-python3.13.zip for Python 3.13 (Blender 5.1 and later, and the
Blender of Linux distributions such as Debian trixie's 4.3).

Why two: the add-on needs pyzmq, a compiled wheel per Python.  Blender reads an extension's
Python versions from its wheels' tags and refuses it on any other Python, and Blender before 5.0
unpacks every wheel of a package whatever its tag (keeping the last by file name), so one zip
cannot carry the 3.11 and 3.13 wheels side by side.  pyzmq 27 ships one abi3 wheel for 3.12+,
which Blender would also offer to 3.11 (where it does not load), so the 3.13 zip takes pyzmq
26.4, the last release with cp313 wheels.

Each zip stages the add-on's modules, the pure packages it shares with the backend
(addon/client, addon/core and addon/shaders: links to backend/client, backend/core and shaders/,
written once, shipped as folders), the manifest
(version from backend/__init__.py, the wheels of that Python) and the backend as a wheel (a data
file that Set Up Backend installs, built once for both) beside pip's wheel (the backend's
environment gets its pip from it), fetches the pyzmq and pip wheels (from PyPI, once, into
.cache/wheels), then validates and builds with Blender's own extension tool
(bl_pkg's blender_ext.py, which the bpy wheel ships).  This file is not part of the zip."""
from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / "build" / "extension"
WHEEL_CACHE = ROOT / ".cache" / "wheels"
# Blender's platforms -> the wheel platform tag pip is asked for
PLATFORM_TAGS = {"linux-x64": "manylinux_2_28_x86_64", "windows-x64": "win_amd64",
                 "macos": "macosx_10_15_universal2"}


@dataclasses.dataclass(frozen=True)
class PythonBuild:
    python: str          # "3.11"
    pyzmq: str           # the pyzmq release whose wheels carry this Python's tag
    suffix: str          # of the zip's name

    @property
    def tag(self) -> str:
        return "cp" + self.python.replace(".", "")


BUILDS = (PythonBuild("3.11", "27.1.0", ""), PythonBuild("3.13", "26.4.0", "-python3.13"))
SHARED = ("client", "core", "shaders")     # addon/<name>: links to the backend's packages
PIP = "26.3"


def blender_ext() -> Path:
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("error: the bpy module is needed to build the extension (pip install bpy)")
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        sys.exit("error: bl_pkg's blender_ext.py is not inside this bpy install")
    return found[-1]


def cached_wheel(pattern: str, requirement: str, *options: str) -> Path:
    """A wheel unmodified from PyPI, downloaded once into .cache/wheels."""
    found = sorted(WHEEL_CACHE.glob(pattern))
    if not found:
        WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        *options, requirement, "-d", str(WHEEL_CACHE)], check=True)
        found = sorted(WHEEL_CACHE.glob(pattern))
    if not found:
        sys.exit(f"error: PyPI gave no wheel for {requirement} {' '.join(options)}")
    return found[-1]


def fetch_wheel(build: PythonBuild, platform_tag: str) -> Path:
    """pyzmq's wheel for one Python and platform."""
    return cached_wheel(f"pyzmq-{build.pyzmq}-{build.tag}-{build.tag}-*{platform_tag}*.whl",
                        f"pyzmq=={build.pyzmq}", "--python-version", build.python, "--platform", platform_tag)


def fetch_pip() -> Path:
    """pip's wheel (pure Python, any platform): Set Up Backend makes the backend's environment
    without pip and installs this one into it, so a Python without ensurepip (Debian's and
    Ubuntu's without python3-venv) works, and every environment gets a pip that uses the system's
    certificate store (truststore, on since pip 24.2)."""
    return cached_wheel(f"pip-{PIP}-py3-none-any.whl", f"pip=={PIP}")


def build_backend_wheel() -> Path:
    """The face-normals package (backend + shaders + the shipped weights, pyproject's package-data)
    as a wheel: a data file of each zip that Set Up Backend installs into the backend's own
    environment (not in the manifest's `wheels`, which Blender installs into its own Python).
    Checked to hold the weights."""
    import zipfile
    out = ROOT / "build" / "backend_wheel"
    if out.exists():
        shutil.rmtree(out)
    egg_info = ROOT / "face_normals.egg-info"
    # An editable install's egg-info lists every file, and setuptools takes a listed file into the
    # wheel even where pyproject excludes it (the previous model): build with a fresh one, and put
    # the developer's back afterwards.
    aside = ROOT / "build" / "face_normals.egg-info.aside"
    shutil.rmtree(aside, ignore_errors=True)
    if egg_info.exists():
        aside.parent.mkdir(parents=True, exist_ok=True)
        egg_info.rename(aside)
    shutil.rmtree(ROOT / "build" / "lib", ignore_errors=True)     # setuptools' copy: no stale modules
    # setuptools of this environment when it has one (fast, offline); else pip's isolated build
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    try:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *isolation,
                        "--disable-pip-version-check", "-w", str(out), str(ROOT)], check=True)
    finally:
        shutil.rmtree(egg_info, ignore_errors=True)
        if aside.exists():
            aside.rename(egg_info)
    wheel = next(out.glob("face_normals-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("backend/weights/face_normals.safetensors", "backend/weights/face_normals.json",
                   "backend/__main__.py", "shaders/relight.frag.glsl"):
        if needed not in names:
            sys.exit(f"error: the backend wheel lacks {needed} (pyproject's package-data?)")
    return wheel


def version() -> str:
    found = re.search(r'^__version__ = "([^"]+)"', (ROOT / "backend" / "__init__.py").read_text(), re.M)
    if found is None:
        sys.exit("error: backend/__init__.py holds no __version__")
    return found.group(1)


def stage(build: PythonBuild, backend_wheel: Path) -> None:
    if STAGE.exists():
        shutil.rmtree(STAGE)
    STAGE.mkdir(parents=True)
    for module in (ROOT / "addon").glob("*.py"):
        if module.name != "build.py":
            shutil.copy2(module, STAGE / module.name)
    for package in SHARED:      # pure code, shipped as it is (copytree follows the links)
        source = ROOT / "addon" / package
        if not (source / "__init__.py").is_file():
            sys.exit(f"error: addon/{package} is not the link to the backend's package (a checkout without "
                     f"symbolic links? git config core.symlinks true, then check out again)")
        shutil.copytree(source, STAGE / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (STAGE / "wheels").mkdir()
    wheels = [fetch_wheel(build, tag) for tag in PLATFORM_TAGS.values()]
    for wheel in wheels:
        shutil.copy2(wheel, STAGE / "wheels" / wheel.name)
    listed = "".join(f'  "./wheels/{wheel.name}",\n' for wheel in wheels)
    manifest = (ROOT / "blender_manifest.toml").read_text().replace(
        'id = "face_normals"\n', f'id = "face_normals"\nversion = "{version()}"\n', 1)
    manifest = manifest.replace("[permissions]", f"wheels = [\n{listed}]\n\n[permissions]", 1)
    (STAGE / "blender_manifest.toml").write_text(manifest)
    (STAGE / "backend_wheel").mkdir()
    for wheel in (backend_wheel, fetch_pip()):
        shutil.copy2(wheel, STAGE / "backend_wheel" / wheel.name)


def main() -> list[Path]:
    tool = blender_ext()
    (ROOT / "dist").mkdir(exist_ok=True)
    built = []
    backend_wheel = build_backend_wheel()
    for build in BUILDS:
        stage(build, backend_wheel)
        subprocess.run([sys.executable, str(tool), "validate", str(STAGE)], check=True)
        name = f"face_normals-{version()}{build.suffix}.zip"
        subprocess.run([sys.executable, str(tool), "build", "--source-dir", str(STAGE),
                        "--output-filepath", str(ROOT / "dist" / name)], check=True)
        print(f"built dist/{name} (Python {build.python}, pyzmq {build.pyzmq})")
        built.append(ROOT / "dist" / name)
    return built


if __name__ == "__main__":
    main()
