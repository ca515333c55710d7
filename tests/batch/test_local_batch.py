"""`python -m backend batch` on this machine, as a user runs it: outputs, manifest, summary,
resume after kill -9 and after Ctrl-C."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from backend.estimator.image_io import read_normal_png

from .conftest import batch_command, manifest_lines, run_batch


def _wait_for_done(folder, at_least: int, process: subprocess.Popen, limit: float = 600) -> None:
    deadline = time.monotonic() + limit      # a guard against a hang, not a measurement
    while sum(line["status"] == "done" for line in manifest_lines(folder)) < at_least:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the batch never recorded a photo"
        time.sleep(0.2)


@pytest.mark.slow
def test_batch_writes_predicts_files_a_manifest_and_a_summary(tmp_path, photo_folder, untrained_weights):
    (photo_folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    done = run_batch(photo_folder, "-o", out, "--weights", untrained_weights, "--workers", "1",
                     "--outputs", "normal,mask,light", "--npy", "--json")
    assert done.returncode == 1, done.stderr            # one photo failed
    summary = json.loads(done.stdout)
    assert summary["done"] == 6 and summary["skipped"] == 0 and list(summary["failed"]) == \
        [str((photo_folder / "broken.png").resolve())]
    assert summary["failed"][str((photo_folder / "broken.png").resolve())].startswith("bad_image: ")
    lines = manifest_lines(out)
    assert sorted(line["status"] for line in lines) == ["done"] * 6 + ["failed"]
    for i in range(6):
        normals = read_normal_png(out / f"p{i}_normal.png")
        assert normals.shape == (256, 256, 3)
        assert {f"p{i}_{name}" for name in ("normal.png", "mask.png", "light.json", "normal.npy")} <= \
            {p.name for p in out.iterdir()}
    assert "photo/s" in done.stderr                     # the progress bar
    # a second run skips the done photos and retries the failed one (still broken)
    again = run_batch(photo_folder, "-o", out, "--weights", untrained_weights, "--workers", "1", "--json")
    assert again.returncode == 1
    summary = json.loads(again.stdout)
    assert summary["skipped"] == 6 and summary["done"] == 0 and len(summary["failed"]) == 1
    # asking for a file the first run did not write does those photos again
    more = run_batch(photo_folder / "p0.png", "-o", out, "--weights", untrained_weights, "--exr", "--json")
    assert more.returncode == 0 and json.loads(more.stdout)["done"] == 1
    assert (out / "p0_normal.exr").is_file()


@pytest.mark.slow
def test_batch_runs_the_model_asked_for(tmp_path, photo_folder, v3_weights):
    out = tmp_path / "out"
    done = run_batch(photo_folder / "p0.png", "-o", out, "--model", "fast", "--weights", v3_weights,
                     "--outputs", "normal,light", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "p0_light.json").read_text())["source"] == "model"    # the v3 model's own
    [line] = manifest_lines(out)
    assert line["settings"]["model"] == "fast"


@pytest.mark.slow
def test_a_batch_killed_with_sigkill_resumes_and_finishes_every_photo(tmp_path, photo_folder, untrained_weights):
    out = tmp_path / "out"
    args = (photo_folder, "-o", out, "--weights", untrained_weights, "--workers", "1", "--batch-size", "1")
    process = subprocess.Popen(batch_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    _wait_for_done(out, 2, process)
    os.killpg(process.pid, signal.SIGKILL)            # the driver and its workers, as kill -9 of the job
    process.wait()
    before = {line["input"] for line in manifest_lines(out) if line["status"] == "done"}
    assert 2 <= len(before) < 6
    for line in manifest_lines(out):                  # what the manifest says is done is whole
        for file in line["outputs"].values():
            assert os.path.getsize(file) > 0
        read_normal_png(line["outputs"]["normal"])
    done = run_batch(*args, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["skipped"] == len(before) and summary["done"] == 6 - len(before) and not summary["failed"]
    finished = [line["input"] for line in manifest_lines(out) if line["status"] == "done"]
    assert sorted(set(finished)) == sorted(str(p.resolve()) for p in photo_folder.iterdir())
    assert not set(finished[len(before):]) & before    # nothing done twice
    for i in range(6):
        read_normal_png(out / f"p{i}_normal.png")


@pytest.mark.slow
def test_ctrl_c_stops_after_the_photos_in_flight(tmp_path, photo_folder, untrained_weights):
    out = tmp_path / "out"
    args = (photo_folder, "-o", out, "--weights", untrained_weights, "--workers", "1", "--batch-size", "1")
    process = subprocess.Popen(batch_command(*args, "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    _wait_for_done(out, 1, process)
    os.killpg(process.pid, signal.SIGINT)             # Ctrl-C reaches the terminal's whole group
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 130, stderr
    summary = json.loads(stdout)
    lines = manifest_lines(out)
    assert summary["interrupted"] and summary["done"] == len(lines) and summary["left"] == 6 - len(lines)
    assert summary["left"] > 0
    for line in lines:
        read_normal_png(line["outputs"]["normal"])
    done = run_batch(*args, "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["skipped"] == len(lines)
