"""Memory and survival of the service under load: `python -m backend.benchmarks.soak`.

Starts a real server process on loopback and prints
- its peak resident memory (VmHWM) after each of the largest requests the limits allow;
- over N mixed requests (default 10,000: malformed messages of every class in malformed.py,
  info, ping, small estimates, estimates abandoned mid-way): messages tried, crashes (the process
  gone), dead workers, replies by kind and error code, requests never answered, and the resident
  memory every tenth of the way (flat means nothing leaks).
"""
from __future__ import annotations

import argparse
import collections
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import zmq
from PIL import Image

from ..client import Client, ServerError
from ..client.launcher import ServerProcess, free_loopback_address
from ..client.protocol import Limits
from . import malformed


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of a process, in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def largest_requests(portrait: np.ndarray) -> list[tuple[str, list, dict]]:
    """(what, images, options) at the limits' edge: one image of max_pixels, raw and encoded,
    and the most images per request sharing max_request_pixels."""
    limits = Limits()
    side = int(limits.max_pixels ** 0.5)
    big = np.asarray(Image.fromarray(portrait).resize((side, side), Image.Resampling.BICUBIC))
    jpeg = io.BytesIO()
    Image.fromarray(big).save(jpeg, format="JPEG", quality=90)
    small_side = int((limits.max_request_pixels / limits.max_images) ** 0.5)
    small = np.asarray(Image.fromarray(portrait).resize((small_side, small_side)))
    return [
        (f"{side}x{side} raw uint8, no detection", [big], {"detect": False}),
        (f"{side}x{side} JPEG, detection", [jpeg.getvalue()], {}),
        (f"{side}x{side} raw float32, detection, uint16 normals",
         [big.astype(np.float32) / 255], {"normals_dtype": "uint16"}),
        (f"{limits.max_images} x {small_side}x{small_side} raw uint8, no detection",
         [small] * limits.max_images, {"detect": False}),
    ]


def soak(address: str, pid: int, requests: int, portrait: np.ndarray) -> dict:
    rng = np.random.default_rng(0)
    raw: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(address)
    replies: collections.Counter[str] = collections.Counter()
    unanswered, samples = 0, []
    small = np.asarray(Image.fromarray(portrait).resize((96, 96)))
    face = np.asarray(Image.fromarray(portrait).resize((256, 256)))
    with Client(address, timeout=30) as client:
        for i in range(requests):
            if i % max(1, requests // 10) == 0:
                samples.append((i, memory_mb(pid)[0]))
            roll = rng.random()
            if roll < 0.45:
                frames, _ = malformed.CLASSES[i % len(malformed.CLASSES)](rng)
                raw.send_multipart(frames)
                header = malformed.reply_to(raw, timeout_ms=30_000)
                if header is None:
                    unanswered += 1
                else:
                    replies[str(header.get("code") or header.get("kind"))] += 1
                continue
            if roll < 0.55:     # an estimate given up on mid-way, as Esc does
                request = client.submit("estimate", {"detect": False}, [face] * 4)
                client.step()
                client.abandon(request)
                replies["abandoned"] += 1
                continue
            kind, images, options = (("info", [], {}) if roll < 0.75 else ("ping", [], {}) if roll < 0.88
                                     else ("estimate", [small], {"detect": False}) if roll < 0.97
                                     else ("estimate", [face], {}))
            try:
                reply = client.wait(client.submit(kind, options, images), timeout=120)
                codes = {r["code"] for r in reply.header.get("results", []) if not r["ok"]}
                replies[reply.kind if not codes else "/".join(sorted(codes))] += 1
            except ServerError as error:
                if error.code == "unavailable":
                    unanswered += 1
                replies[error.code] += 1
        samples.append((requests, memory_mb(pid)[0]))
        info = client.info(timeout=30)
    raw.close()
    return {"replies": replies, "unanswered": unanswered, "samples": samples,
            "worker_deaths": info["worker_deaths"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="weights file (default: the shipped model)")
    parser.add_argument("--address", help="where the server binds (default: a free loopback port)")
    parser.add_argument("--requests", type=int, default=10_000)
    args = parser.parse_args()
    args.address = args.address or free_loopback_address()

    from skimage import data
    portrait = data.astronaut()
    extra = ("--weights", args.weights) if args.weights else ()
    server = ServerProcess(address=args.address, extra_args=extra,
                           log_path=Path(tempfile.mkdtemp()) / "server.log")
    server.start()
    try:
        pid = server.wait_ready(120)["pid"]
        print(f"server pid {pid}: resident {memory_mb(pid)[0]:.0f} MB after start\n")
        print(f"{'largest requests within the limits':<52}{'answer':>10}{'peak RSS MB':>13}")
        with Client(args.address, timeout=60) as client:
            client.estimate([portrait], timeout=120)       # warm up: the model's first pass
            for what, images, options in largest_requests(portrait):
                try:
                    reply = client.wait(client.submit("estimate", options, images), timeout=600)
                    answer = "ok" if all(r["ok"] for r in reply.header["results"]) else "error"
                except ServerError as error:
                    answer = error.code
                print(f"{what:<52}{answer:>10}{memory_mb(pid)[1]:>13.0f}")
        report = soak(args.address, pid, args.requests, portrait)
        alive = server.running
        print(f"\n{args.requests} mixed requests: crashes {0 if alive else 1}, dead workers "
              f"{report['worker_deaths']}, unanswered {report['unanswered']}")
        print("replies: " + ", ".join(f"{k} {v}" for k, v in sorted(report["replies"].items())))
        print("resident MB: " + ", ".join(f"{n}: {mb:.0f}" for n, mb in report["samples"]))
        print(f"peak resident over the whole run: {memory_mb(pid)[1]:.0f} MB")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
