"""Build the installable extension: `make addon` (python addon/build.py) -> dist/face_normals-<version>.zip

Stages the add-on's modules, the client package (backend/client: the protocol is written once and
shipped here as it is), the shaders and the manifest, the backend as a wheel (add_backend_wheel:
a data file that Set Up Backend installs), fetches the pyzmq wheels the manifest names
(from PyPI, once, into .cache/wheels), then validates and builds with Blender's own extension tool
(bl_pkg's blender_ext.py, which the bpy wheel ships).  This file is not part of the zip."""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / "build" / "extension"
WHEEL_CACHE = ROOT / ".cache" / "wheels"
PLATFORM_TAGS = {"manylinux": "manylinux_2_28_x86_64", "win_amd64": "win_amd64",
                 "macosx": "macosx_10_15_universal2"}


def blender_ext() -> Path:
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("error: the bpy module is needed to build the extension (pip install bpy)")
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        sys.exit("error: bl_pkg's blender_ext.py is not inside this bpy install")
    return found[-1]


def fetch_wheel(name: str) -> Path:
    target = WHEEL_CACHE / name
    if target.exists():
        return target
    package, version = name.split("-")[:2]
    tag = next(t for key, t in PLATFORM_TAGS.items() if key in name)
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.11", "--platform", tag, f"{package}=={version}",
                    "-d", str(WHEEL_CACHE)], check=True)
    if not target.exists():
        sys.exit(f"error: PyPI gave no {name}")
    return target


def add_backend_wheel(stage: Path) -> Path:
    """The face-normals package (backend + shaders + the shipped weights, pyproject's package-data)
    as a wheel in <stage>/backend_wheel/: a data file of the zip that Set Up Backend installs into
    the backend's own environment (not in the manifest's `wheels`, which Blender installs into its
    own Python).  Checked to hold the weights."""
    import zipfile
    out = ROOT / "build" / "backend_wheel"
    if out.exists():
        shutil.rmtree(out)
    egg_info = ROOT / "face_normals.egg-info"
    had_egg_info = egg_info.exists()
    shutil.rmtree(ROOT / "build" / "lib", ignore_errors=True)     # setuptools' copy: no stale modules
    # setuptools of this environment when it has one (fast, offline); else pip's isolated build
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *isolation,
                    "--disable-pip-version-check", "-w", str(out), str(ROOT)], check=True)
    if not had_egg_info:
        shutil.rmtree(egg_info, ignore_errors=True)
    wheel = next(out.glob("face_normals-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("backend/weights/face_normals.safetensors", "backend/weights/face_normals.json",
                   "backend/__main__.py", "shaders/relight.frag.glsl"):
        if needed not in names:
            sys.exit(f"error: the backend wheel lacks {needed} (pyproject's package-data?)")
    (stage / "backend_wheel").mkdir()
    return Path(shutil.copy2(wheel, stage / "backend_wheel" / wheel.name))


def main() -> Path:
    if STAGE.exists():
        shutil.rmtree(STAGE)
    STAGE.mkdir(parents=True)
    for module in (ROOT / "addon").glob("*.py"):
        if module.name != "build.py":
            shutil.copy2(module, STAGE / module.name)
    for package in ("client", "core"):      # pure code, shipped as it is
        shutil.copytree(ROOT / "backend" / package, STAGE / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if (ROOT / "shaders").is_dir():
        shutil.copytree(ROOT / "shaders", STAGE / "shaders", ignore=shutil.ignore_patterns("__pycache__"))
    found = re.search(r'^__version__ = "([^"]+)"', (ROOT / "backend" / "__init__.py").read_text(), re.M)
    if found is None:
        sys.exit("error: backend/__init__.py holds no __version__")
    version = found.group(1)
    manifest = (ROOT / "blender_manifest.toml").read_text().replace(
        'id = "face_normals"\n', f'id = "face_normals"\nversion = "{version}"\n', 1)
    (STAGE / "blender_manifest.toml").write_text(manifest)
    (STAGE / "wheels").mkdir()
    for name in re.findall(r'"\./wheels/([^"]+\.whl)"', manifest):
        shutil.copy2(fetch_wheel(name), STAGE / "wheels" / name)

    add_backend_wheel(STAGE)

    tool = blender_ext()
    (ROOT / "dist").mkdir(exist_ok=True)
    subprocess.run([sys.executable, str(tool), "validate", str(STAGE)], check=True)
    subprocess.run([sys.executable, str(tool), "build", "--source-dir", str(STAGE),
                    "--output-dir", str(ROOT / "dist")], check=True)
    built = ROOT / "dist" / f"face_normals-{version}.zip"
    print(f"built {built.relative_to(ROOT)}")
    return built


if __name__ == "__main__":
    main()
