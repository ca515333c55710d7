"""`batch --ray ADDRESS` on a real local Ray cluster: a head and a second node, started by the test
inside a network namespace of its own, where loopback is the only interface (Ray talks over the
machine's address otherwise; docs/batch.md).  Fixed ports are safe there: nothing else lives in
that namespace.  One actor process is killed mid-run: the batch still finishes every photo, once,
and its stdout is the JSON summary alone (Ray's notice of the death goes to stderr)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from backend.benchmarks.batch import namespace_works, two_node_script
from backend.estimator.image_io import read_normal_png

from .conftest import batch_command, manifest_lines

ray = pytest.importorskip("ray", reason="Ray is the optional extra: pip install face-normals[ray]")
PHOTOS = 10


def _actor_pids(namespace: str) -> list[int]:
    """This test's actor processes: those in its cluster's network namespace (another test run on
    the machine may have a cluster, and actors, of its own)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ours = os.readlink(entry / "ns" / "net") == namespace
                if ours and b"_PhotoActor" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not namespace_works(), reason="cannot make a network namespace here (needs root and "
                                                   "unshare): Ray would talk over the machine's address")
def test_a_ray_cluster_finishes_every_photo_once_though_a_worker_dies(tmp_path, photo_folder, untrained_weights):
    for i in range(6, PHOTOS):
        shutil.copy(photo_folder / f"p{i % 6}.png", photo_folder / f"q{i}.png")
    out = tmp_path / "out"
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")      # Ray's sockets need a short path
    command = batch_command(photo_folder, "-o", out, "--workers", 2, "--threads", 1, "--batch-size", 1,
                            "--weights", untrained_weights, "--json")
    script = two_node_script(command, logs=tmp_path, temp=temp, cpus_per_node=2)
    cluster = subprocess.Popen(["unshare", "-n", "bash", "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 900        # a guard against a hang, not a measurement
        while not [line for line in manifest_lines(out) if line["status"] == "done"]:
            assert cluster.poll() is None, (tmp_path / "batch.log").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        victims = _actor_pids(os.readlink(f"/proc/{cluster.pid}/ns/net"))
        assert victims, "no actor process found to kill"
        os.kill(victims[0], signal.SIGKILL)
        cluster.wait(timeout=900)
    finally:
        if cluster.poll() is None:
            os.killpg(cluster.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
    log = (tmp_path / "batch.log").read_text()
    assert (tmp_path / "rc").read_text().strip() == "0", log[-3000:]
    # stdout is the summary alone: Ray's notice of the worker that died went to stderr
    assert "A worker died" in log, log[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["done"] == PHOTOS and not summary["failed"]
    lines = manifest_lines(out)
    inputs = [line["input"] for line in lines]
    assert sorted(inputs) == sorted(str(p.resolve()) for p in photo_folder.iterdir())   # every photo once
    assert all(line["status"] == "done" for line in lines)
    for line in lines:
        read_normal_png(line["outputs"]["normal"])
