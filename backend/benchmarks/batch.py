"""Photos a second through `python -m backend batch`: one worker, all this machine's cores, and a
Ray cluster of two nodes on this machine, in one run on the same generated photos.

`python -m backend.benchmarks.batch [--photos 160] [--size 512] [--weights W] [--skip-ray]`: the
photos are scikit-image's astronaut, each copy shifted and scaled a little (so no two crops are the
same), written as PNG files.  Each set-up is the batch command run as a user runs it, into a fresh
output folder; its rate is the summary's photos/s, which counts the workers' start (the model
loaded once per worker) as a user's run does.  The Ray cluster (a head and a second node, each
told it has all the cores: Ray's CPUs are slots, and actors that hold every slot starve its read
tasks; one actor a core) runs inside a network namespace of its own, where loopback is the only
interface (Ray talks over the machine's address otherwise: docs/batch.md), so it needs `unshare`
and root; without them the report says why the Ray row is missing.  The machine's load (`os.getloadavg`)
is printed beside the figures: on a shared machine they are only as steady as the neighbours.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RAY_PORT = 6379          # fixed: the namespace holds nothing else


def make_photos(folder: Path, count: int, size: int, seed: int = 0) -> list[Path]:
    """`count` PNG portraits of `size` pixels: the astronaut shifted (up to 5 % of the side) and
    scaled (0.9 to 1.1) at random, the border filled by reflection."""
    from skimage import data
    image = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)[..., ::-1]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        scale = float(rng.uniform(0.9, 1.1))
        motion = np.asarray(cv2.getRotationMatrix2D((size / 2, size / 2), 0.0, scale), np.float64)
        motion[:, 2] += rng.uniform(-0.05, 0.05, 2) * size
        path = folder / f"portrait_{index:04d}.png"
        cv2.imwrite(str(path), cv2.warpAffine(image, motion, (size, size), borderMode=cv2.BORDER_REFLECT))
        paths.append(path)
    return paths


def batch_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "backend", "batch", *map(str, args)]


def namespace_works() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def two_node_script(command: list[str], *, logs: Path, temp: str, cpus_per_node: int) -> str:
    """A bash script, for `unshare -n bash -c`, that starts a Ray head and a second node on
    loopback, runs `command` (its stdout to logs/summary.json, stderr to logs/batch.log, status to
    logs/rc) against them with RAY_AUTH_MODE=token, and stops the cluster.  `temp`: Ray's
    folder, a short path (its sockets' names are limited)."""
    ray = Path(sys.executable).parent / "ray"
    run = " ".join(map(str, command))
    return f"""
set -e
ip link set lo up
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN={secrets.token_hex(32)}
{ray} start --head --node-ip-address=127.0.0.1 --port={RAY_PORT} --num-cpus={cpus_per_node} \\
    --include-dashboard=false --disable-usage-stats --temp-dir={temp} > {logs}/head.log 2>&1
{ray} start --address=127.0.0.1:{RAY_PORT} --node-ip-address=127.0.0.1 --num-cpus={cpus_per_node} \\
    --temp-dir={temp} > {logs}/node.log 2>&1
cd {ROOT}
set +e
{run} --ray 127.0.0.1:{RAY_PORT} > {logs}/summary.json 2> {logs}/batch.log
echo $? > {logs}/rc
{ray} stop --force > /dev/null 2>&1
"""


def _local(photos: Path, out: Path, common: list[object], workers: int) -> dict:
    done = subprocess.run(batch_command(photos, "-o", out, "--workers", workers, "--threads", 1, *common),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"batch --workers {workers} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _ray(photos: Path, out: Path, common: list[object], workers: int) -> dict:
    logs = out.parent / "ray-logs"
    logs.mkdir(parents=True)
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    try:
        command = batch_command(photos, "-o", out, "--workers", workers, "--threads", 1, *common)
        script = two_node_script(command, logs=logs, temp=temp, cpus_per_node=os.cpu_count() or 1)
        subprocess.run(["unshare", "-n", "bash", "-c", script], check=True)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    if (logs / "rc").read_text().strip() != "0":
        raise RuntimeError(f"batch --ray failed: {(logs / 'batch.log').read_text()[-2000:]}")
    return json.loads((logs / "summary.json").read_text())


def measure(photos: int, size: int, *, weights: str | None = None, ray: bool = True) -> dict:
    """Each set-up's summary (photos/s, seconds, done, failed) on the same `photos` portraits."""
    cores = os.cpu_count() or 1
    started = time.strftime("%Y-%m-%d %H:%M")
    common: list[object] = ["--batch-size", 1, "--json"] + (["--weights", weights] if weights else [])
    setups: dict[str, tuple] = {"1 worker": (_local, 1), f"{cores} workers (all cores)": (_local, cores)}
    if ray and namespace_works():
        setups[f"Ray, 2 nodes (head + 1), {cores} actors"] = (_ray, cores)
    with tempfile.TemporaryDirectory(prefix="batch-bench") as scratch:
        folder = Path(scratch) / "photos"
        make_photos(folder, photos, size)
        rows = {}
        for index, (name, (run, workers)) in enumerate(setups.items()):
            load = os.getloadavg()[0]
            summary = run(folder, Path(scratch) / f"run{index}" / "out", common, workers)
            rows[name] = {"photos_per_second": summary["photos_per_second"], "seconds": summary["seconds"],
                          "done": summary["done"], "failed": len(summary["failed"]),
                          "load_before": round(load, 2)}
    report = {"photos": photos, "size": size, "date": started,
              "machine": f"{platform.node()} {platform.machine()} ({cores} cores)", "setups": rows}
    if ray and not namespace_works():
        report["ray"] = "not measured: cannot make a network namespace here (needs unshare and root)"
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.benchmarks.batch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=160, help="photos per set-up (default 160)")
    parser.add_argument("--size", type=int, default=512, help="the photos' side in pixels (default 512)")
    parser.add_argument("--weights", help="weights file (default: the shipped model)")
    parser.add_argument("--skip-ray", action="store_true", help="only the local set-ups")
    args = parser.parse_args(argv)
    report = measure(args.photos, args.size, weights=args.weights, ray=not args.skip_ray)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
