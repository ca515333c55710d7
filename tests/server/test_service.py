"""The service over real sockets: a `python -m backend serve` process and the pure-Python client."""
import io
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from backend.client import Client, ServerError, ServerUnavailable, protocol
from backend.core.frames import face_turn, focal_pixels
from backend.estimator import Estimator


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_info_describes_server_model_and_limits(server):
    with server.client() as client:
        info = client.info(timeout=10)
    assert info["kind"] == "info" and info["protocol"] == protocol.PROTOCOL_VERSION
    assert info["device"] == "cpu" and info["model"]["parameters"] > 1_000_000
    assert info["limits"]["max_pixels"] > 0 and info["address"] == server.address


def test_every_output_through_the_service_matches_the_in_process_fit(server, astronaut, untrained_weights):
    """albedo, height and light as the service sends them: what the estimator makes in process,
    and `info` announces them (the add-on asks for them only then)."""
    from backend.core.options import EstimateOptions
    from backend.estimator.pipeline import Photo
    with server.client() as client:
        assert client.info(timeout=10)["outputs"] == ["normal", "mask", "albedo", "height", "light"]
        [remote] = client.estimate([png_bytes(astronaut)], outputs=["albedo", "height", "light"], timeout=60)
    options = EstimateOptions(outputs=("albedo", "height", "light"))
    [local] = Estimator(untrained_weights, device="cpu").estimate([Photo(png_bytes(astronaut), options)])
    assert remote["normals"] is None and remote["mask"] is None            # only what was asked
    assert remote["albedo"].shape == (512, 512, 3) and remote["albedo"].dtype == np.float16
    assert remote["height"].shape == (512, 512) and remote["height"].dtype == np.float32
    assert np.abs(remote["albedo"].astype(np.float32) - local.albedo.astype(np.float32)).max() < 0.02
    assert np.abs(remote["height"] - local.height).max() < 0.05 * float(np.ptp(local.height))
    assert remote["light"]["source"] == "fitted" and np.asarray(remote["light"]["sh"]).shape == (9, 3)
    assert remote["height_range"]["min"] == pytest.approx(float(remote["height"].min()), abs=1e-2)


def test_estimate_round_trip_matches_the_in_process_estimator(server, astronaut, untrained_weights):
    local = Estimator(untrained_weights, device="cpu").normal_map(astronaut.astype(np.float32) / 255)
    with server.client() as client:
        encoded, raw = client.estimate([png_bytes(astronaut), astronaut], timeout=60)
    for remote in (encoded, raw):
        assert remote["normals"].shape == (512, 512, 3) and remote["mask"].shape == (512, 512)
        # float16 on the wire (2.4e-4 at most) plus the landmarks' float rounding in another
        # process (1e-4 px, with another thread count): OpenCV's warps sample on a 1/32-px grid,
        # so a hair's shift can step a crop's pixels, its person mask and so the blend by a little
        difference = np.abs(remote["normals"] - local.normals)
        assert difference.max() < 5e-3 and difference.mean() < 1e-4
        # uint8 on the wire, and the same hair's shift at the feathered mask edges
        assert np.abs(remote["mask"] - local.mask).max() < 0.1
        assert np.abs(remote["mask"] - local.mask).mean() < 1e-3
        assert len(remote["faces"]) == 1 and set(remote["timings"]) >= {"detect", "network", "paste"}


def test_directx_and_uint16_options(server, astronaut):
    with server.client() as client:
        [gl] = client.estimate([astronaut], normals_dtype="uint16", timeout=60)
        [dx] = client.estimate([astronaut], convention="directx", mask=False, timeout=60)
    assert dx["mask"] is None
    assert np.abs(dx["normals"][..., 1] + gl["normals"][..., 1]).max() < 2e-3


def test_with_a_focal_length_the_normals_come_back_in_camera_space(server, astronaut):
    with server.client() as client:
        [view] = client.estimate([astronaut], timeout=60)
        [camera] = client.estimate([astronaut], focal_35mm=50, timeout=60)
    assert not view["camera_space"] and camera["camera_space"]
    [centre] = camera["centres"]
    assert centre == view["centres"][0] and 150 < centre[0] < 350 and 100 < centre[1] < 300
    turn = face_turn(centre, focal_pixels(50, 512, 512), (256, 256))
    face = camera["mask"] > 0.999
    assert face.sum() > 5000
    assert np.abs(camera["normals"][face] - view["normals"][face] @ turn.T).max() < 5e-3


def test_an_image_without_a_person_is_answered_with_a_warning(server, astronaut):
    """Detection off: every image gets a map, but one with nobody in it says so."""
    with server.client() as client:
        wall, face = client.estimate([np.full((64, 64, 3), 128, np.uint8), astronaut[:300, 100:400]],
                                     detect=False, timeout=60)
    assert wall["normals"].shape == (64, 64, 3) and "no person in this image" in wall["warnings"][0]
    assert face["warnings"] == []


def test_one_bad_image_in_a_batch_fails_alone(server, astronaut):
    with server.client() as client:
        good, no_face, broken = client.estimate(
            [astronaut, np.full((64, 64, 3), 128, np.uint8), b"\x89PNG not really"], timeout=60)
    assert good["normals"].shape == (512, 512, 3)
    assert no_face["error"].code == "no_face" and broken["error"].code == "bad_image"


def test_eight_clients_ten_requests_each_get_their_own_replies(server):
    """Every client sends crops of a size of its own and checks each reply's shape and id."""
    failures = []

    def run(worker: int) -> None:
        with server.client(timeout=30) as client:
            requests = []
            for i in range(10):
                if i % 3 == 0:
                    requests.append((client.submit("info"), None))
                    continue
                shape = (40 + worker, 48 + i)
                image = np.random.default_rng(worker * 100 + i).integers(0, 255, (*shape, 3), np.uint8)
                requests.append((client.submit("estimate", {"detect": False}, [image]), shape))
            for request, shape in requests:
                reply = client.wait(request, timeout=120)
                if reply.id != request.id:
                    failures.append(f"{worker}: id {reply.id} for {request.id}")
                elif shape is not None and reply.payloads[0].shape[:2] != shape:
                    failures.append(f"{worker}: shape {reply.payloads[0].shape} for {shape}")
                elif shape is None and reply.kind != "info":
                    failures.append(f"{worker}: {reply.kind} for info")

    threads = [threading.Thread(target=run, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not failures


def test_a_long_batch_does_not_starve_a_ping(server):
    images = [np.random.default_rng(i).integers(0, 255, (384, 384, 3), np.uint8) for i in range(12)]
    with server.client(timeout=30) as client:
        batch = client.submit("estimate", {"detect": False}, images)
        client.submit("ping")
        order = []
        while not batch.finished:
            order += [r.kind for r in client.step()]
            time.sleep(0.005)
        order += [r.kind for r in client.step()]
    assert order.index("ping") < order.index("estimate")
    assert batch.state == "done" and batch.total == 12 and batch.done == 12  # progress was reported


def test_cancel_turns_the_reply_into_a_cancelled_error(server):
    images = [np.random.default_rng(i).integers(0, 255, (384, 384, 3), np.uint8) for i in range(8)]
    with server.client(timeout=30) as client:
        long = client.submit("estimate", {"detect": False}, images)
        cancel = client.cancel(long)
        assert client.wait(cancel, timeout=30).header["found"] is True
        with pytest.raises(ServerError) as caught:
            client.wait(long, timeout=60)
    assert caught.value.code == "cancelled"


def _raw_exchange(address: str, frames: list[bytes], timeout_ms: int = 10000) -> dict:
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    try:
        socket.send_multipart(frames)
        assert socket.poll(timeout_ms), "no reply"
        return protocol.decode(socket.recv_multipart()).header
    finally:
        socket.close()


def _header(**fields) -> bytes:
    import json
    return json.dumps({"protocol": 1, "id": "raw-1", **fields}).encode()


BAD_REQUESTS = {
    "not json": ([b"\xff\xfe garbage"], "bad_message"),
    "json but not an object": ([b"[1, 2, 3]"], "bad_message"),
    "wrong version": ([b'{"protocol": 99, "id": "x", "kind": "info", "frames": []}'], "bad_version"),
    "no id": ([b'{"protocol": 1, "kind": "info", "frames": []}'], "bad_message"),
    "unknown kind": ([_header(kind="teleport", frames=[])], "unknown_kind"),
    "frame count mismatch": ([_header(kind="estimate", frames=[{"encoding": "image"}] * 2), b"x"], "bad_message"),
    "truncated pixels": ([_header(kind="estimate", frames=[{"dtype": "uint8", "shape": [8, 8, 3]}]),
                          bytes(100)], "bad_message"),
    "wrong dtype": ([_header(kind="estimate", frames=[{"dtype": "int64", "shape": [2, 2]}]), bytes(32)],
                    "bad_message"),
    "bad shape": ([_header(kind="estimate", frames=[{"dtype": "uint8", "shape": [0, -3]}]), b""],
                  "bad_message"),
    "oversize image": ([_header(kind="estimate", frames=[{"dtype": "uint8", "shape": [90000, 90000, 3]}]),
                        bytes(10)], "too_large"),
    "estimate without images": ([_header(kind="estimate", frames=[])], "bad_message"),
    "bad option": ([_header(kind="estimate", options={"convention": "sideways"},
                            frames=[{"dtype": "uint8", "shape": [4, 4, 3]}]), bytes(48)], "bad_message"),
    "options not an object": ([_header(kind="info", options=[1], frames=[])], "bad_message"),
    "focal length not a number": ([_header(kind="estimate", options={"focal_35mm": "50mm"},
                                           frames=[{"dtype": "uint8", "shape": [4, 4, 3]}]), bytes(48)],
                                  "bad_message"),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_every_bad_request_gets_an_error_and_the_server_goes_on(server, name):
    frames, code = BAD_REQUESTS[name]
    reply = _raw_exchange(server.address, frames)
    assert reply["kind"] == "error" and reply["code"] == code and reply["message"]
    with server.client() as client:
        assert client.info(timeout=10)["kind"] == "info"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.binary(max_size=64),
                          st.dictionaries(st.sampled_from(["protocol", "id", "kind", "frames", "options"]),
                                          st.one_of(st.integers(), st.text(max_size=8), st.none(),
                                                    st.lists(st.integers(), max_size=3)),
                                          max_size=5).map(lambda d: __import__("json").dumps(d).encode())),
                min_size=1, max_size=4))
def test_random_frames_never_break_the_server(server, frames):
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(server.address)
    socket.send_multipart(frames)
    if socket.poll(5000):   # a reply, if any, must be a well-formed protocol message
        reply = protocol.decode(socket.recv_multipart())
        assert reply.kind in ("error", "info", "pong", "cancelled", "result")
    socket.close()
    assert server.process.poll() is None


def test_server_still_answers_after_the_fuzzing(server):
    with server.client() as client:
        assert client.info(timeout=10)["kind"] == "info"


def test_killed_server_is_reported_in_time_and_a_restart_is_picked_up(start_server):
    first = start_server()
    address = first.address
    client = Client(address, timeout=2.0)
    images = [np.random.default_rng(i).integers(0, 255, (512, 512, 3), np.uint8) for i in range(16)]
    request = client.submit("estimate", {"detect": False}, images)
    time.sleep(0.3)
    first.kill()
    # reported by the client's own timeout (2 s of silence: "not running"), not by the minute
    # this test waits at most ("no result ... within")
    with pytest.raises(ServerUnavailable, match="not running"):
        client.wait(request, timeout=60)
    start_server(bind=address)                          # back on the same address
    assert client.info(timeout=30)["kind"] == "info"    # same client, rebuilt socket
    client.close()


def test_no_server_at_all_is_reported(closed_port):
    with Client(f"tcp://127.0.0.1:{closed_port}", timeout=1.0) as client:
        # the client's 1 s of silence says how to start a server; the minute here is a cap
        with pytest.raises(ServerUnavailable, match="python -m backend serve"):
            client.info(timeout=60)


def serve(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "backend", "serve", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_non_loopback_bind_without_keys_is_refused(untrained_weights):
    done = serve("--weights", untrained_weights, "--bind", "tcp://0.0.0.0:*")
    assert done.returncode == 1 and "refusing to bind tcp://0.0.0.0:*" in done.stderr
    assert "python -m backend keys" in done.stderr and "Traceback" not in done.stderr


def test_a_taken_port_is_a_clear_error(server, untrained_weights):
    done = serve("--weights", untrained_weights, "--bind", server.address)
    assert done.returncode == 1 and "already in use" in done.stderr


def test_idle_timeout_stops_the_server(start_server):
    idle = start_server("--idle-timeout", "1")
    idle.process.wait(30)
    assert idle.process.returncode == 0
    assert not idle.state.exists()      # the state file goes with the server


def test_sigterm_answers_what_is_in_flight(start_server):
    running = start_server()
    client = running.client(timeout=10)
    images = [np.random.default_rng(i).integers(0, 255, (256, 256, 3), np.uint8) for i in range(4)]
    request = client.submit("estimate", {"detect": False}, images)
    time.sleep(0.2)
    assert running.stop() == 0
    while not request.finished:
        client.step()
        time.sleep(0.02)
    # finished properly, or told it was not started: either way answered, not dropped
    assert request.state == "done" or request.error.code in ("shutting_down", "cancelled")
    client.close()


def test_curve_admits_the_right_key_only(start_server, tmp_path):
    from backend.server.security import make_keys
    server_public, server_secret = make_keys(tmp_path / "server", "server")
    allowed = tmp_path / "allowed"
    client_public, client_secret = make_keys(tmp_path / "client", "client")
    allowed.mkdir()
    (allowed / "client.key").write_bytes(client_public.read_bytes())
    _, stranger_secret = make_keys(tmp_path / "stranger", "stranger")
    secured = start_server("--curve-secret", server_secret, "--curve-clients", allowed)
    with secured.client(server_public_key=server_public, client_keys=client_secret) as client:
        assert client.info(timeout=15)["kind"] == "info"
    with secured.client(timeout=2, server_public_key=server_public, client_keys=stranger_secret) as client:
        with pytest.raises(ServerUnavailable):
            client.info()
    with secured.client(timeout=2) as client:           # no keys at all
        with pytest.raises(ServerUnavailable):
            client.info()


def test_predict_through_the_server_writes_the_same_files(server, astronaut_path, untrained_weights, tmp_path):
    import cv2
    for where, extra in (("local", ["--weights", untrained_weights]), ("remote", ["--server", server.address])):
        done = subprocess.run([sys.executable, "-m", "backend", "predict", astronaut_path, "-o",
                               tmp_path / where, *map(str, extra)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    for name in ("astronaut_normal.png", "astronaut_mask.png"):
        local = cv2.imread(str(tmp_path / "local" / name), cv2.IMREAD_UNCHANGED).astype(int)
        remote = cv2.imread(str(tmp_path / "remote" / name), cv2.IMREAD_UNCHANGED).astype(int)
        assert np.abs(local - remote).max() <= 1


def test_info_through_the_cli(server, closed_port):
    done = subprocess.run([sys.executable, "-m", "backend", "info", "--server", server.address, "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and '"device": "cpu"' in done.stdout
    done = subprocess.run([sys.executable, "-m", "backend", "info", "--server", f"tcp://127.0.0.1:{closed_port}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.startswith("error: no answer")


def test_the_client_package_needs_neither_torch_nor_the_estimator():
    code = ("import sys, backend.client, backend.client.launcher; "
            "bad = [m for m in ('torch', 'cv2', 'backend.estimator') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
