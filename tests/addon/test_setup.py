"""Set Up Backend / Remove Backend through the add-on's own operators, in real Blender (the bpy
module), into the session's throw-away user folder: the failures first (an index that cannot be
reached, a wheel folder without PyTorch), then a set-up against the package index these machines
reach (pip's own configuration here serves the CPU torch 2.13.0 from disk; -c constraints.txt
pins the tested versions so pip takes what its cache holds), an estimate through the backend it
made, and its removal."""
import os
import socket
import subprocess
import time
import zipfile
from collections import namedtuple

import pytest
from hostile_hosts import python_without_ensurepip, untrusted_https_index

from .conftest import ROOT, save_photo

pytestmark = pytest.mark.slow   # Blender (the bpy module), a venv, pip, the shipped model

SETTINGS = ("backend_source", "setup_python", "torch_build", "index_url", "ca_bundle", "wheel_folder", "pip_args",
            "address", "auto_start", "timeout")


@pytest.fixture
def prefs(addon):
    from backend.client.launcher import free_loopback_address
    from bl_ext.user_default.face_normals.link import LINK
    prefs = addon.preferences.get()
    saved = {name: getattr(prefs, name) for name in SETTINGS}
    LINK.stop_server()
    prefs.backend_source, prefs.torch_build = "ADDON", "INDEX"
    prefs.address, prefs.timeout = free_loopback_address(), 5.0      # where a set-up starts its backend
    yield prefs
    LINK.stop_server()
    for name, value in saved.items():
        setattr(prefs, name, value)


def setup_modules():
    from bl_ext.user_default.face_normals import backend_setup, environment
    return backend_setup, environment


def test_the_zip_carries_the_backend_wheel_with_its_weights(extension_zip):
    with zipfile.ZipFile(extension_zip) as archive:
        [wheel] = [n for n in archive.namelist() if n.startswith("backend_wheel/face_normals-")]
        path = ROOT / "build" / "test_wheel.whl"
        path.write_bytes(archive.read(wheel))
    names = zipfile.ZipFile(path).namelist()
    assert {"backend/weights/face_normals.safetensors", "backend/weights/face_normals.json",
            "backend/server/__init__.py"} <= set(names)
    # the model the shipped one replaced stays in the source tree, for `evaluate` only
    assert [name for name in names if "previous" in name] == []
    manifest = zipfile.ZipFile(extension_zip).read("blender_manifest.toml").decode()
    assert "backend_wheel" not in manifest and "face_normals-" not in manifest   # not for Blender's Python


def test_the_environment_goes_into_the_isolated_user_folder(addon):
    _, environment = setup_modules()
    assert str(environment.folder()).startswith(os.environ["BLENDER_USER_RESOURCES"])


def test_not_set_up_says_what_to_do(clean_file, prefs, astronaut, tmp_path):
    bpy = clean_file
    _, environment = setup_modules()
    assert environment.ready_info() is None
    prefs.auto_start = True
    photo = bpy.data.images.load(str(save_photo(astronaut, tmp_path / "a.png")))
    with pytest.raises(RuntimeError, match="not set up yet: press Set Up Backend"):
        bpy.ops.face_normals.estimate(image_name=photo.name)


def test_an_unreachable_pytorch_cpu_index_is_not_silently_the_cuda_build(clean_file, prefs, monkeypatch,
                                                                          closed_port):
    """PyTorch: CPU (the default) adds PyTorch's CPU index; when pip cannot reach it, it would take
    the package index's torch (the CUDA build on Linux) without a word: the set-up stops instead."""
    bpy = clean_file
    backend_setup, environment = setup_modules()
    monkeypatch.setattr(backend_setup, "CPU_INDEX", f"http://127.0.0.1:{closed_port}/whl/cpu")
    prefs.torch_build, prefs.pip_args = "CPU", "--retries 1 --timeout 5"
    with pytest.raises(RuntimeError, match="Could not reach PyTorch's CPU index"):
        bpy.ops.face_normals.setup_backend()
    assert "As the Index Serves" in backend_setup.STATE.error and environment.ready_info() is None


def test_an_unreachable_index_is_a_clear_error_and_nothing_is_ready(clean_file, prefs, monkeypatch, closed_port):
    bpy = clean_file
    backend_setup, environment = setup_modules()
    # this machine's pip configuration adds local wheel folders and indexes: leave them out here
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    prefs.index_url, prefs.pip_args = f"http://127.0.0.1:{closed_port}/simple", "--retries 1 --timeout 5"
    with pytest.raises(RuntimeError, match=f"Could not reach http://127.0.0.1:{closed_port}/simple"):
        bpy.ops.face_normals.setup_backend()
    assert "check the network connection" in backend_setup.STATE.error
    assert backend_setup.STATE.log_tail and not backend_setup.STATE.running
    assert environment.ready_info() is None and not environment.marker().exists()
    assert "FAILED" in environment.log_path().read_text()


def test_a_python_without_ensurepip_and_an_index_behind_an_untrusted_certificate(clean_file, prefs, tmp_path,
                                                                               monkeypatch):
    """Debian's Python without python3-venv makes the environment (pip from the zip's wheel), and
    the panel says which Python it chose; an HTTPS index whose certificate is not trusted is named
    a certificate failure with the Certificate Bundle as the next step - which then works."""
    bpy = clean_file
    backend_setup, environment = setup_modules()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_FIND_LINKS", "PIP_CERT"):           # this machine's: pip uses the system's store
        monkeypatch.delenv(name, raising=False)
    python = python_without_ensurepip(tmp_path)
    refused = subprocess.run([str(python), "-m", "venv", str(tmp_path / "plain")], capture_output=True, text=True)
    assert refused.returncode != 0 and "ensurepip" in refused.stdout + refused.stderr   # as Debian's
    prefs.setup_python, prefs.pip_args = str(python), "--retries 0 --timeout 20"
    with untrusted_https_index(tmp_path) as (url, certificate, asked):
        prefs.index_url = url
        with pytest.raises(RuntimeError, match="could not verify the HTTPS certificate of 127.0.0.1"):
            bpy.ops.face_normals.setup_backend()
        assert "without ensurepip; pip from the add-on's wheel" in backend_setup.STATE.python
        assert str(python) in backend_setup.STATE.python
        assert "Certificate Bundle" in backend_setup.STATE.error and "PyTorch" not in backend_setup.STATE.error
        assert backend_setup.pip_version(environment.folder()) >= (24, 2)      # truststore on
        assert not asked                                   # nobody got past the handshake
        prefs.ca_bundle = str(certificate)                 # the advice: the index's CA bundle
        with pytest.raises(RuntimeError) as failed:
            bpy.ops.face_normals.setup_backend()
        assert asked and asked[0].startswith("/simple/")   # past the certificate: pip asked the index
        assert "certificate" not in backend_setup.STATE.error.lower(), backend_setup.STATE.error
        assert f"{url} gave no" in str(failed.value)       # an empty index: nothing for its packages
    assert environment.ready_info() is None


def test_certificate_failures_are_told_apart_from_other_network_failures(addon):
    """pip's own lines, as it prints them for PyPI behind an inspecting proxy, and a refused port."""
    backend_setup, _ = setup_modules()
    proxy = ["WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after "
             "connection broken by 'SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] "
             "certificate verify failed: unable to get local issuer certificate (_ssl.c:1006)'))': /simple/numpy/",
             "Could not fetch URL https://pypi.org/simple/numpy/: There was a problem confirming the ssl "
             "certificate: HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded - skipping",
             "ERROR: No matching distribution found for numpy"]
    told = backend_setup.explain_pip_failure(proxy, offline="", index="")
    assert told.startswith("pip could not verify the HTTPS certificate of pypi.org") and "Certificate Bundle" in told
    told = backend_setup.explain_pip_failure(proxy, offline="", index="", cert="/studio/ca.pem")
    assert "with the Certificate Bundle /studio/ca.pem" in told
    refused = ["WARNING: Retrying (...) after connection broken by 'NewConnectionError(...: Failed to establish a "
               "new connection: [Errno 111] Connection refused')': /simple/numpy/"]
    told = backend_setup.explain_pip_failure(refused, offline="", index="")
    assert told.startswith("Could not reach the package index (PyPI)") and "certificate" not in told


def test_a_wheel_folder_without_pytorch_is_a_clear_error(clean_file, prefs, tmp_path):
    bpy = clean_file
    backend_setup, environment = setup_modules()
    prefs.wheel_folder = str(tmp_path)          # offline: nothing in it
    with pytest.raises(RuntimeError, match="has no wheel for"):
        bpy.ops.face_normals.setup_backend()
    assert f"The wheel folder {tmp_path}" in backend_setup.STATE.error and "pip download" in backend_setup.STATE.error
    assert environment.ready_info() is None


def test_no_usable_python_says_what_to_do(clean_file, prefs, tmp_path):
    bpy = clean_file
    backend_setup, environment = setup_modules()
    prefs.setup_python = str(tmp_path / "no-such-python")
    with pytest.raises(RuntimeError, match="No usable Python for the backend"):
        bpy.ops.face_normals.setup_backend()
    assert "Install Python 3.12" in backend_setup.STATE.error and "no-such-python" in backend_setup.STATE.error
    assert environment.ready_info() is None


def test_a_full_disk_is_said_before_anything_is_made(clean_file, prefs, monkeypatch):
    bpy = clean_file
    backend_setup, environment = setup_modules()
    monkeypatch.setattr(backend_setup.shutil, "disk_usage", lambda path: namedtuple("U", "total used free")(
        10**10, 10**10 - 10**8, 10**8))
    with pytest.raises(RuntimeError, match="The disk is full: the set-up needs about 2 GB free"):
        bpy.ops.face_normals.setup_backend()
    assert environment.ready_info() is None


def test_cancel_stops_pip_and_leaves_nothing_ready(addon, prefs, monkeypatch):
    """What Esc does in the UI (jobs.JobOperator.modal calls the job's cancel): here against an
    index that accepts the connection and never answers, so pip is caught waiting."""
    backend_setup, environment = setup_modules()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        prefs.index_url = f"http://127.0.0.1:{silent.getsockname()[1]}/simple"
        prefs.pip_args = "--retries 0 --timeout 120"
        job = backend_setup.SetupJob(prefs)
        deadline = time.monotonic() + 120
        while not (job.phase == "pip" and job.process is not None):
            assert not job.step() and time.monotonic() < deadline
            time.sleep(0.02)
        popen = job.process.popen
        slowest = 0.0
        for _ in range(50):                   # pip runs and waits on the index; the steps return
            started = time.monotonic()
            assert not job.step() and popen.poll() is None
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.02)
        # how long a step holds Blender's UI: measured, not bounded here (a loaded machine is no
        # defect); the window tests report the add-on's modal steps in a real window
        print(f"50 set-up steps while pip waits: the slowest took {slowest * 1000:.1f} ms")
        job.cancel()
        assert popen.poll() is not None
    assert "cancelled" in backend_setup.STATE.error and not backend_setup.STATE.running
    assert environment.ready_info() is None and not environment.marker().exists()


def test_set_up_then_estimate_then_remove(clean_file, prefs, astronaut, tmp_path):
    """After the failures above (a re-run in the same folder): set up, then Start/Estimate work."""
    bpy = clean_file
    backend_setup, environment = setup_modules()
    from bl_ext.user_default.face_normals.link import LINK
    prefs.pip_args = f"-c {ROOT / 'constraints.txt'}"
    prefs.auto_start = True
    started = time.monotonic()
    job, installing = backend_setup.SetupJob(prefs), []      # the operator's steps, watched
    while not job.step():
        if job.status.startswith("installing") and job.total > 1:
            installing.append((job.done, job.total))
        time.sleep(0.02)
    seconds = time.monotonic() - started
    counts = sorted({done for done, _ in installing})
    assert len(counts) > 2 and counts[-1] >= installing[-1][1] - 1, installing[::20]   # the count moves
    ready = environment.ready_info()
    assert ready is not None and ready["device"] == "cpu" and ready["python"] == str(environment.python())
    assert LINK.info is not None and not backend_setup.STATE.error
    size = sum(os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(environment.folder())
               for name in names if not os.path.islink(os.path.join(folder, name)))
    print(f"set-up took {seconds:.0f} s, pip downloaded {ready['downloaded_mb']} MB, "
          f"the environment holds {size / 1e6:.0f} MB")
    # Start and Estimate just work: stopped, the estimate starts the environment's backend again.
    assert bpy.ops.face_normals.stop_backend() == {"FINISHED"}
    photo = bpy.data.images.load(str(save_photo(astronaut, tmp_path / "astronaut.png")))
    assert bpy.ops.face_normals.estimate(image_name=photo.name, save_mode="PACK") == {"FINISHED"}
    assert "astronaut_normal" in bpy.data.images
    assert str(environment.folder()) in " ".join(LINK.process.command)
    # Set Up again on a ready environment: the same one completed (pip has nothing to do), the running
    # backend replaced by the new start, ready again.
    started = time.monotonic()
    assert bpy.ops.face_normals.setup_backend() == {"FINISHED"}, backend_setup.STATE.error
    assert "reusing the environment" in environment.log_path().read_text() and environment.ready_info()
    print(f"set-up again on the ready environment took {time.monotonic() - started:.0f} s")
    assert bpy.ops.face_normals.remove_backend() == {"FINISHED"}
    assert not environment.folder().exists() and environment.ready_info() is None and LINK.process is None
    with pytest.raises(RuntimeError, match="not set up yet"):
        bpy.ops.face_normals.start_backend()
