"""Speed of the synthetic pair renderer: `python -m backend.benchmarks.synthetic --data PATH`.

Prints pairs per second at 256^2 with one process and with one process per core (the way
`python -m backend train` renders its cache)."""
from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import time

from ..training.dataset import _render, _start_worker


def pairs_per_second(data: str, workers: int, count: int, size: int) -> float:
    with multiprocessing.get_context("fork").Pool(workers, _start_worker, (data, size)) as pool:
        pool.map(_render, range(workers), chunksize=1)  # warm each worker
        start = time.perf_counter()
        pool.map(_render, range(100, 100 + count), chunksize=4)
        return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the ICT-FaceKit folder")
    parser.add_argument("--count", type=int, default=60, help="pairs per measurement")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"machine: {platform.machine()}, {cores} cores; {args.size}x{args.size} pairs "
          f"(image, normals, masks, as cached for training)")
    for workers in sorted({1, cores}):
        rate = pairs_per_second(args.data, workers, args.count, args.size)
        print(f"{workers} process{'es' if workers > 1 else ''}: {rate:6.1f} pairs/s")


if __name__ == "__main__":
    main()
