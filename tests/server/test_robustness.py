"""What keeps the service alive and honest: limits and `busy`, cancelling abandoned work,
supervision of the worker, state files, key files, and the CLI's one-line errors."""
import json
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from backend.benchmarks.malformed import png_declaring
from backend.client import Client, ServerError, ServerUnavailable
from backend.client.protocol import Limits


def noise(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 255, shape, np.uint8)


def test_limits_are_announced_and_enforced(start_server):
    running = start_server("--limit", "max_images=3", "--limit", "max_request_pixels=100000")
    with running.client(timeout=10) as client:
        limits = client.info(timeout=10)["limits"]
        assert limits["max_images"] == 3 and limits["max_request_pixels"] == 100_000
        assert set(Limits().to_dict()) <= set(limits)
        with pytest.raises(ServerError, match="4 images in one request") as caught:
            client.estimate([noise((32, 32, 3))] * 4, detect=False, timeout=30)
        assert caught.value.code == "too_large"
        # an 87-byte file that declares 7000x7000: refused from its header, nothing decoded
        with pytest.raises(ServerError, match="megapixels") as caught:
            client.estimate([png_declaring(7000, 7000)], timeout=30)
        assert caught.value.code == "too_large"
        [ok] = client.estimate([noise((200, 300, 3))], detect=False, timeout=60)
        assert ok["normals"].shape == (200, 300, 3)


def test_a_full_queue_answers_busy_and_the_rest_is_served(start_server):
    running = start_server("--limit", "max_queued=2")
    with running.client(timeout=30) as client:
        first = client.submit("estimate", {"detect": False}, [noise((256, 256, 3), i) for i in range(6)])
        second = client.submit("estimate", {"detect": False}, [noise((64, 64, 3))])
        third = client.submit("estimate", {"detect": False}, [noise((64, 64, 3))])
        for request in (first, second, third):
            try:
                client.wait(request, timeout=120)
            except ServerError:
                pass
    assert first.state == "done" and second.state == "done"
    assert third.state == "failed" and third.error.code == "busy" and "try again" in str(third.error)


def test_abandoned_work_is_dropped_and_does_not_delay_the_next_request(start_server):
    running = start_server("--max-batch", "2")
    with running.client(timeout=30) as client:
        long = client.submit("estimate", {"detect": False}, [noise((256, 256, 3), i) for i in range(24)])
        queued = client.submit("estimate", {"detect": False}, [noise((256, 256, 3), 99)])
        time.sleep(0.3)
        client.abandon(long)                 # what Esc in Blender does
        client.abandon(queued)
        assert long.error.code == "cancelled" and queued.error.code == "cancelled"
        [result] = client.estimate([noise((64, 64, 3))], detect=False, timeout=60)
        assert result["normals"].shape == (64, 64, 3)
        info = client.info(timeout=10)
    assert info["outstanding"] == 0
    assert info["dropped_crops"] > 10        # most of the 24 never went through the network


def test_a_client_that_times_out_cancels_its_request(start_server):
    running = start_server("--max-batch", "2")
    with running.client(timeout=30) as client:
        with pytest.raises(ServerUnavailable, match="within"):
            client.estimate([noise((256, 256, 3), i) for i in range(24)], detect=False, timeout=0.5)
        deadline = time.monotonic() + 30
        while client.info(timeout=10)["outstanding"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.info(timeout=10)["dropped_crops"] > 10


def test_closing_a_client_cancels_what_it_had_pending(start_server):
    running = start_server("--max-batch", "2")
    closing = running.client(timeout=30)
    closing.submit("estimate", {"detect": False}, [noise((256, 256, 3), i) for i in range(24)])
    time.sleep(0.3)
    closing.close()
    with running.client(timeout=30) as client:
        deadline = time.monotonic() + 30
        while client.info(timeout=10)["outstanding"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.info(timeout=10)["dropped_crops"] > 10


class InProcessServer:
    """A real Server on loopback in a thread of this process, so a test can break its estimator."""

    def __init__(self, weights, folder):
        from backend.estimator import Estimator
        from backend.server import Server
        self.server = Server(Estimator(weights, device="cpu"), "tcp://127.0.0.1:*",
                             state_file=folder / "state.json")
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.stopping.set()
        self.thread.join(30)


@pytest.fixture
def in_process(untrained_weights, tmp_path):
    running = InProcessServer(untrained_weights, tmp_path)
    yield running
    running.stop()


def _fail_once(estimator, error: BaseException):
    original = estimator.predict_crops

    def predict_crops(crops):
        estimator.predict_crops = original
        raise error
    estimator.predict_crops = predict_crops


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("error", [MemoryError("out of memory"), SystemExit(3)],
                         ids=["an exception in the batch", "the worker thread dies"])
def test_a_failing_worker_answers_internal_and_the_next_request_is_served(in_process, error):
    server = in_process.server
    _fail_once(server.estimator, error)
    with Client(server.address, timeout=10) as client:
        with pytest.raises(ServerError) as caught:
            client.estimate([noise((64, 64, 3))], detect=False, timeout=60)
        assert caught.value.code == "internal"
        [result] = client.estimate([noise((64, 64, 3))], detect=False, timeout=60)
        info = client.info(timeout=10)
    assert result["normals"].shape == (64, 64, 3)
    assert info["worker_deaths"] == (1 if isinstance(error, SystemExit) else 0)


def test_a_stuck_worker_stops_the_heartbeats(in_process, monkeypatch):
    """Heartbeats say the work moves: with the worker stuck, the client's timeout runs out."""
    from backend.server import app
    monkeypatch.setattr(app, "STALL_SECONDS", 0.5)
    server = in_process.server
    release = threading.Event()
    original = server.estimator.predict_crops

    def stuck(crops):
        release.wait(30)
        return original(crops)
    server.estimator.predict_crops = stuck
    try:
        with Client(server.address, timeout=2) as client:
            started = time.monotonic()
            with pytest.raises(ServerUnavailable):
                client.estimate([noise((64, 64, 3))], detect=False)
            assert time.monotonic() - started < 10
    finally:
        release.set()


def test_a_second_server_on_a_taken_port_leaves_the_first_ones_state_file(server, untrained_weights):
    before = server.state.read_text()
    done = subprocess.run([sys.executable, "-m", "backend", "serve", "--weights", str(untrained_weights),
                           "--bind", server.address, "--state-file", str(server.state)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "already in use" in done.stderr
    assert server.state.read_text() == before
    assert json.loads(before)["pid"] == server.process.pid
    assert not list(server.state.parent.glob(".state-*"))     # written whole, no leftovers


def test_killed_server_restarted_later_serves_the_same_client_once_ready(start_server):
    """The new server takes longer to come than the client's timeout: the first tries fail, and
    the one after it is ready is served at once."""
    first = start_server()
    client = Client(first.address, timeout=2.0)
    request = client.submit("estimate", {"detect": False}, [noise((512, 512, 3), i) for i in range(16)])
    time.sleep(0.3)
    first.kill()
    while not request.finished:
        client.step()
        time.sleep(0.02)
    assert isinstance(request.error, ServerUnavailable)
    ready = []

    def restart():
        start_server(bind=first.address)    # returns once the new server has written its state
        ready.append(time.monotonic())
    starter = threading.Timer(3.0, restart)   # longer than the client's timeout
    starter.start()
    failed_tries = 0
    while True:
        try:
            client.info()
            break
        except ServerUnavailable:
            failed_tries += 1
    served = time.monotonic()
    starter.join()
    client.close()
    assert failed_tries >= 1 and served - ready[0] < 2.0


def run_backend(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "backend", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def test_secret_keys_are_readable_by_their_owner_only(tmp_path):
    done = run_backend("keys", tmp_path / "keys", "--name", "server")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((tmp_path / "keys" / "server.key_secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys" / "server.key").stat().st_mode) == 0o644


def test_cli_user_errors_are_one_line_and_exit_1(tmp_path, astronaut_path, untrained_weights):
    (tmp_path / "a-file").write_text("x")
    run_backend("keys", tmp_path / "keys", "--name", "client")
    cases = [
        ("predict", astronaut_path, "-o", tmp_path / "a-file", "--weights", untrained_weights),
        ("predict", astronaut_path, "-o", tmp_path / "a-file" / "below", "--weights", untrained_weights),
        ("predict", astronaut_path, "--server", "tcp://127.0.0.1:1", "-o", tmp_path / "o",
         "--server-key", tmp_path / "keys" / "client.key", "--client-key", tmp_path / "keys" / "client.key"),
        ("info", "--server", "tcp://127.0.0.1:1", "--server-key", tmp_path / "nope.key",
         "--client-key", tmp_path / "keys" / "client.key_secret"),
        ("predict",),
        ("predict", astronaut_path, "--convention", "sideways"),
        ("serve", "--limit", "max_images=lots"),
    ]
    for case in cases:
        done = run_backend(*case)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), (case, done.stderr)
