"""Real server processes on loopback for the service tests."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.client import Client


class RunningServer:
    """`python -m backend serve` in a subprocess, on a port ZeroMQ picks (read from its state file)."""

    def __init__(self, weights: Path, folder: Path, *extra: str, bind: str = "tcp://127.0.0.1:*"):
        self.state = folder / f"state-{time.monotonic_ns()}.json"
        self.log = open(folder / "server.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend", "serve", "--weights", str(weights), "--bind", bind,
             "--state-file", str(self.state), *extra],
            stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 60
        while not self.state.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.05)
        self.address = json.loads(self.state.read_text())["address"]

    def client(self, timeout: float = 5.0, **keys) -> Client:
        return Client(self.address, timeout=timeout, **keys)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        return self.process.returncode


@pytest.fixture(scope="module")
def server(untrained_weights, tmp_path_factory):
    running = RunningServer(untrained_weights, tmp_path_factory.mktemp("server"))
    yield running
    running.stop()


@pytest.fixture
def start_server(untrained_weights, tmp_path):
    started = []

    def start(*extra, bind="tcp://127.0.0.1:*"):
        started.append(RunningServer(untrained_weights, tmp_path, *extra, bind=bind))
        return started[-1]
    yield start
    for running in started:
        running.stop()
