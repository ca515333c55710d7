"""Speed and memory of the ZeroMQ service: `python -m backend.benchmarks.service`.

Starts a real server process on loopback and prints: the round trip of `info`; `estimate` round
trips for 256^2, 1024^2 and 2048^2 portraits split into transport, decode/encode, detection and
network (+ paste) time, and the transport + encoding share; throughput with 1, 4 and 8 concurrent
clients; the server's resident memory after start and after 1,000 mixed requests.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from ..client import Client
from ..client.launcher import ServerProcess, free_loopback_address


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def median_round_trip(client: Client, submit, repeats: int) -> tuple[float, dict]:
    times, server_parts = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        reply = client.wait(submit(), timeout=120)
        times.append(time.perf_counter() - start)
        if reply.kind == "result":
            server_parts.append(reply.header["results"][0]["timings"])
    parts = {k: statistics.median(p[k] for p in server_parts) for k in server_parts[0]} if server_parts else {}
    return statistics.median(times), parts


def throughput(address: str, clients: int, requests: int, image: np.ndarray) -> float:
    def run():
        with Client(address, timeout=60) as client:
            for _ in range(requests):
                client.estimate([image], timeout=120)
    threads = [threading.Thread(target=run) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return clients * requests / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="weights file (default: the shipped model)")
    parser.add_argument("--address", help="where the server binds (default: a free loopback port)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--mixed", type=int, default=1000, help="requests for the memory check")
    args = parser.parse_args()
    args.address = args.address or free_loopback_address()

    from skimage import data
    portrait = data.astronaut()
    extra = ("--weights", args.weights) if args.weights else ()
    log = Path(tempfile.mkdtemp()) / "server.log"
    server = ServerProcess(address=args.address, extra_args=extra, log_path=log)
    server.start()
    try:
        info = server.wait_ready(120)
        pid = info["pid"]
        print(f"server pid {pid} on {args.address}, device {info['device']}, "
              f"resident memory after start: {resident_mb(pid):.0f} MB")
        with Client(args.address, timeout=60) as client:
            seconds, _ = median_round_trip(client, lambda: client.submit("info"), 50)
            print(f"\ninfo round trip: {seconds * 1000:.2f} ms")
            print(f"\n{'estimate (raw uint8)':<22}{'total':>8}{'transport':>10}{'dec/enc':>9}"
                  f"{'detect':>8}{'network':>9}{'paste':>7}{'transport+coding share':>24}")
            for side in (256, 1024, 2048):
                image = cv2.resize(portrait, (side, side), interpolation=cv2.INTER_CUBIC)
                total, parts = median_round_trip(
                    client, lambda image=image: client.submit("estimate", {}, [image]), args.repeats)
                server_side = sum(parts.values())
                coding = parts.get("decode", 0) + parts.get("encode", 0)
                transport = max(total - server_side, 0.0)
                print(f"{f'{side}x{side}':<22}{total * 1000:>8.1f}{transport * 1000:>10.1f}"
                      f"{coding * 1000:>9.1f}{parts['detect'] * 1000:>8.1f}{parts['network'] * 1000:>9.1f}"
                      f"{parts['paste'] * 1000:>7.1f}{(transport + coding) / total * 100:>23.1f}%")
        face = cv2.resize(portrait, (512, 512))
        print("\nthroughput, 512x512 portrait with detection:")
        for clients in (1, 4, 8):
            rate = throughput(args.address, clients, max(2, 16 // clients), face)
            print(f"  {clients} client{'s' * (clients > 1)}: {rate:5.1f} photos/s")
        with Client(args.address, timeout=60) as client:
            small = np.random.default_rng(0).integers(0, 255, (96, 96, 3), np.uint8)
            before = resident_mb(pid)
            for i in range(args.mixed):
                kind = ("info", "ping", "estimate")[i % 3]
                estimate = kind == "estimate"
                client.wait(client.submit(kind, {"detect": False} if estimate else {}, [small] if estimate else []),
                            timeout=60)
            print(f"\nresident memory: {before:.0f} MB before, {resident_mb(pid):.0f} MB after "
                  f"{args.mixed} mixed requests (info, ping, 96x96 estimate)")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
