"""`batch --ray ADDRESS` on a real local Ray cluster: a head and a second node, started by the test
inside a network namespace of its own, where loopback is the only interface (Ray talks over the
machine's address otherwise; docs/batch.md).  Fixed ports are safe there: nothing else lives in
that namespace.  One actor process is killed mid-run: the batch still finishes every photo, once."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from backend.estimator.image_io import read_normal_png

from .conftest import manifest_lines

ray = pytest.importorskip("ray", reason="Ray is the optional extra: pip install face-normals[ray]")
ROOT = Path(__file__).resolve().parents[2]
PHOTOS = 10


def _namespace_works() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def _actor_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"_PhotoActor" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not _namespace_works(), reason="cannot make a network namespace here (needs root and "
                                                   "unshare): Ray would talk over the machine's address")
def test_a_ray_cluster_finishes_every_photo_once_though_a_worker_dies(tmp_path, photo_folder, untrained_weights):
    for i in range(6, PHOTOS):
        shutil.copy(photo_folder / f"p{i % 6}.png", photo_folder / f"q{i}.png")
    out = tmp_path / "out"
    bin_dir = Path(sys.executable).parent
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")      # Ray's sockets need a short path
    script = f"""
set -e
ip link set lo up
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN={secrets.token_hex(32)}
{bin_dir}/ray start --head --node-ip-address=127.0.0.1 --port=6379 --num-cpus=2 --include-dashboard=false \\
    --disable-usage-stats --temp-dir={temp} > {tmp_path}/head.log 2>&1
{bin_dir}/ray start --address=127.0.0.1:6379 --node-ip-address=127.0.0.1 --num-cpus=2 \\
    --temp-dir={temp} > {tmp_path}/node.log 2>&1
cd {ROOT}
set +e
{sys.executable} -m backend batch {photo_folder} -o {out} --ray 127.0.0.1:6379 --workers 2 --threads 1 \\
    --batch-size 1 --weights {untrained_weights} --json > {tmp_path}/summary.json 2> {tmp_path}/batch.log
echo $? > {tmp_path}/rc
{bin_dir}/ray stop --force > /dev/null 2>&1
"""
    cluster = subprocess.Popen(["unshare", "-n", "bash", "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 900        # a guard against a hang, not a measurement
        while not [line for line in manifest_lines(out) if line["status"] == "done"]:
            assert cluster.poll() is None, (tmp_path / "batch.log").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        victims = _actor_pids()
        assert victims, "no actor process found to kill"
        os.kill(victims[0], signal.SIGKILL)
        cluster.wait(timeout=900)
    finally:
        if cluster.poll() is None:
            os.killpg(cluster.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
    log = (tmp_path / "batch.log").read_text()
    assert (tmp_path / "rc").read_text().strip() == "0", log[-3000:]
    # Ray's raylet prints its notices (the worker that died) on the driver's stdout before the summary
    text = (tmp_path / "summary.json").read_text()
    summary = json.loads(text[text.index("\n{\n") + 1:] if not text.startswith("{") else text)
    assert summary["done"] == PHOTOS and not summary["failed"]
    lines = manifest_lines(out)
    inputs = [line["input"] for line in lines]
    assert sorted(inputs) == sorted(str(p.resolve()) for p in photo_folder.iterdir())   # every photo once
    assert all(line["status"] == "done" for line in lines)
    for line in lines:
        read_normal_png(line["outputs"]["normal"])
