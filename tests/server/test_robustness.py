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


class InProcessServer:
    """A real Server on loopback in a thread of this process, so a test can reach its estimator."""

    def __init__(self, weights, folder, **options):
        from backend.estimator import Estimator
        from backend.server import Server
        self.server = Server(Estimator(weights, device="cpu"), "tcp://127.0.0.1:*",
                             state_file=folder / "state.json", **options)
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


class NetworkGate:
    """Holds the estimator's network pass (`Estimator.predict_crops`) until the test sets
    `released`, and records how many crops each pass took: what a cancel finds in the worker is
    decided by the test, not by the machine's speed."""

    def __init__(self, estimator):
        self.entered, self.released = threading.Event(), threading.Event()
        self.passes: list[int] = []
        network = estimator.predict_crops

        def predict_crops(crops):
            self.entered.set()
            self.released.wait()
            self.passes.append(len(crops))
            return network(crops)
        estimator.predict_crops = predict_crops


@pytest.fixture
def held(untrained_weights, tmp_path):
    """held(**Server options) -> (server, gate): an in-process server whose network pass waits
    for `gate.released`."""
    started = []

    def start(**options):
        running = InProcessServer(untrained_weights, tmp_path, **options)
        started.append((running, NetworkGate(running.server.estimator)))
        return running.server, started[-1][1]
    yield start
    for running, gate in started:
        gate.released.set()
        running.stop()


def test_a_full_queue_answers_busy_and_the_rest_is_served(held):
    server, gate = held(limits=Limits(max_queued=2))
    with Client(server.address, timeout=30) as client:
        first = client.submit("estimate", {"detect": False}, [noise((256, 256, 3), i) for i in range(6)])
        second = client.submit("estimate", {"detect": False}, [noise((64, 64, 3))])
        third = client.submit("estimate", {"detect": False}, [noise((64, 64, 3))])
        with pytest.raises(ServerError, match="try again") as caught:
            client.wait(third, timeout=60)
        assert caught.value.code == "busy"
        gate.released.set()
        client.wait(first, timeout=120)
        client.wait(second, timeout=120)
    assert first.state == "done" and second.state == "done"


SUBMITTED = 24      # images of one crop each (detect=False): 12 passes of two, if nothing is dropped


def _long_request(client):
    return client.submit("estimate", {"detect": False}, [noise((256, 256, 3), i) for i in range(SUBMITTED)])


def _info_once(client, settled, what: str) -> dict:
    """The server's info as soon as `settled(info)` holds (waits at most a minute)."""
    deadline = time.monotonic() + 60
    while not settled(info := client.info(timeout=10)):
        assert time.monotonic() < deadline, f"never {what}: {info}"
        time.sleep(0.05)
    return info


def test_abandoned_work_is_dropped_and_does_not_delay_the_next_request(held):
    server, gate = held(max_batch=2)
    with Client(server.address, timeout=30) as client:
        long = _long_request(client)
        queued = client.submit("estimate", {"detect": False}, [noise((256, 256, 3), 99)])
        assert gate.entered.wait(60), "the worker never reached the network"
        client.abandon(long)                 # what Esc in Blender does
        client.abandon(queued)
        assert long.error.code == "cancelled" and queued.error.code == "cancelled"
        _info_once(client, lambda info: info["cancelled_requests"] == 2, "saw both cancels")
        gate.released.set()
        [result] = client.estimate([noise((64, 64, 3))], detect=False, timeout=60)
        assert result["normals"].shape == (64, 64, 3)
        info = _info_once(client, lambda info: info["outstanding"] == 0, "answered everything")
    held_pass, *after = gate.passes
    assert after == [1]                      # only the next request's crop: nothing more of the long one
    assert info["dropped_crops"] == SUBMITTED - held_pass


def test_a_client_that_times_out_cancels_its_request(held):
    server, gate = held(max_batch=2)
    with Client(server.address, timeout=30) as client:
        request = _long_request(client)
        assert gate.entered.wait(60), "the worker never reached the network"
        with pytest.raises(ServerUnavailable, match="within"):
            client.wait(request, timeout=0.5)
        _info_once(client, lambda info: info["cancelled_requests"] == 1, "saw the cancel")
        gate.released.set()
        info = _info_once(client, lambda info: info["outstanding"] == 0, "answered the request")
    assert len(gate.passes) == 1 and info["dropped_crops"] == SUBMITTED - sum(gate.passes)


def test_closing_a_client_cancels_what_it_had_pending(held):
    server, gate = held(max_batch=2)
    closing = Client(server.address, timeout=30)
    _long_request(closing)
    assert gate.entered.wait(60), "the worker never reached the network"
    closing.close()
    with Client(server.address, timeout=30) as client:
        _info_once(client, lambda info: info["cancelled_requests"] == 1, "saw the cancel")
        gate.released.set()
        info = _info_once(client, lambda info: info["outstanding"] == 0, "answered the request")
    assert len(gate.passes) == 1 and info["dropped_crops"] == SUBMITTED - sum(gate.passes)


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


def test_a_stuck_worker_stops_the_heartbeats(held, monkeypatch):
    """Heartbeats say the work moves: with the worker stuck, the client's silence timeout (2 s)
    runs out, long before the minute the test waits at most."""
    from backend.server import app
    monkeypatch.setattr(app, "STALL_SECONDS", 0.5)
    server, gate = held()
    with Client(server.address, timeout=2) as client:
        with pytest.raises(ServerUnavailable, match="no answer from"):
            client.estimate([noise((64, 64, 3))], detect=False, timeout=60)
    assert gate.entered.is_set() and not gate.passes


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
    """The tries before the new server is ready fail (the client's timeout), and the first try
    begun once it is ready is served: the same client, its socket rebuilt, finds it."""
    first = start_server()
    client = Client(first.address, timeout=3.0)
    request = client.submit("estimate", {"detect": False}, [noise((512, 512, 3), i) for i in range(16)])
    first.kill()
    with pytest.raises(ServerUnavailable, match="not running"):
        client.wait(request, timeout=120)
    with pytest.raises(ServerUnavailable):
        client.info()                        # nobody there yet
    restarted, ready = [], threading.Event()

    def restart():
        restarted.append(start_server(bind=first.address))   # returns once its state file is written
        ready.set()
    starter = threading.Thread(target=restart)
    starter.start()
    tries = []                               # (begun once the new server was ready, served)
    while not tries or not tries[-1][1]:
        begun_ready = ready.is_set()
        assert starter.is_alive() or ready.is_set(), "the new server did not start"
        try:
            info = client.info()
            tries.append((begun_ready, True))
        except ServerUnavailable:
            tries.append((begun_ready, False))
    starter.join()
    client.close()
    assert info["pid"] == restarted[0].process.pid
    assert all(served for begun_ready, served in tries if begun_ready), tries


def run_backend(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "backend", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def test_secret_keys_are_readable_by_their_owner_only(tmp_path):
    done = run_backend("keys", tmp_path / "keys", "--name", "server")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((tmp_path / "keys" / "server.key_secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys" / "server.key").stat().st_mode) == 0o644


def test_cli_user_errors_are_one_line_and_exit_1(tmp_path, astronaut_path, untrained_weights, closed_port):
    nobody = f"tcp://127.0.0.1:{closed_port}"
    (tmp_path / "a-file").write_text("x")
    run_backend("keys", tmp_path / "keys", "--name", "client")
    cases = [
        ("predict", astronaut_path, "-o", tmp_path / "a-file", "--weights", untrained_weights),
        ("predict", astronaut_path, "-o", tmp_path / "a-file" / "below", "--weights", untrained_weights),
        ("predict", astronaut_path, "--server", nobody, "-o", tmp_path / "o",
         "--server-key", tmp_path / "keys" / "client.key", "--client-key", tmp_path / "keys" / "client.key"),
        ("info", "--server", nobody, "--server-key", tmp_path / "nope.key",
         "--client-key", tmp_path / "keys" / "client.key_secret"),
        ("predict",),
        ("predict", astronaut_path, "--convention", "sideways"),
        ("serve", "--limit", "max_images=lots"),
    ]
    for case in cases:
        done = run_backend(*case)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), (case, done.stderr)
