"""The service's `batch` kind end to end: a real server process, real photo files on its disk,
progress while it runs, the summary and manifest at the end, a cancel, and paths refused."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from backend.client import ServerError
from backend.estimator.image_io import read_normal_png

SIZE = 256


@pytest.fixture(scope="module")
def photos(astronaut, tmp_path_factory) -> list[Path]:
    """Eight portraits (the astronaut shifted a little each time) and a file that is no image."""
    folder = tmp_path_factory.mktemp("batch-photos")
    small = cv2.resize(astronaut, (SIZE, SIZE), interpolation=cv2.INTER_AREA)[..., ::-1]
    paths = []
    for i in range(8):
        paths.append(folder / f"p{i}.png")
        cv2.imwrite(str(paths[-1]), np.roll(small, 3 * i, axis=1))
    broken = folder / "broken.png"
    broken.write_bytes(b"not a png at all")
    return [*paths, broken]


def _run(client, request, on_progress=None):
    """Step the client until the request finishes; each new progress (done, failed, total) seen."""
    seen = []
    while not request.finished:
        client.socket.poll(100)
        client.step()
        now = (request.done, request.failed, request.total)
        if request.total and (not seen or seen[-1] != now):
            seen.append(now)
            if on_progress:
                on_progress(request, now)
    return seen


def test_a_batch_writes_every_photo_reports_progress_and_its_summary(server, photos, tmp_path):
    out = tmp_path / "out"
    options = {"inputs": [str(p) for p in photos], "output": str(out), "estimate": {"outputs": ["normal", "mask"]}}
    with server.client(timeout=30) as client:
        request = client.submit("batch", options)
        assert client.wait(client.submit("ping"), timeout=30).kind == "pong"      # answered meanwhile
        seen = _run(client, request)
        reply = request.result().header
    assert reply["kind"] == "batch" and reply["manifest"] == str(out / "manifest.jsonl")
    summary = reply["summary"]
    assert summary["done"] == 8 and list(summary["failed"]) == [str(photos[-1])] and summary["left"] == 0
    assert seen[-1] == (9, 1, 9) and [done for done, _, _ in seen] == sorted({done for done, _, _ in seen})
    lines = [json.loads(line) for line in Path(reply["manifest"]).read_text().splitlines()]
    assert sorted(line["input"] for line in lines) == sorted(str(p) for p in photos)
    for line in lines:
        if line["status"] == "done":
            assert read_normal_png(line["outputs"]["normal"]).shape == (SIZE, SIZE, 3)
            assert Path(line["outputs"]["mask"]).is_file()


def test_a_cancelled_batch_stops_after_the_photos_in_flight_and_resumes(server, photos, tmp_path):
    out = tmp_path / "out"
    options = {"inputs": [str(p) for p in photos[:8]], "output": str(out)}

    def cancel_at_first_photo(request, progress):
        if progress[0] == 1:
            client.cancel(request)
    with server.client(timeout=30) as client:
        request = client.submit("batch", options)
        _run(client, request, cancel_at_first_photo)
        with pytest.raises(ServerError) as caught:
            request.result()
        assert caught.value.code == "cancelled" and "resumes" in str(caught.value)
        done_before = sum(1 for line in (out / "manifest.jsonl").read_text().splitlines()
                          if json.loads(line)["status"] == "done")
        assert 1 <= done_before < 8
        again = client.submit("batch", options)
        _run(client, again)
        summary = again.result().header["summary"]
    assert summary["skipped"] == done_before and summary["done"] == 8 - done_before


@pytest.mark.parametrize("field, value", [("inputs", ["photos/p0.png"]), ("output", "out")])
def test_relative_paths_are_refused_and_nothing_is_written(server, photos, tmp_path, field, value):
    options = {"inputs": [str(photos[0])], "output": str(tmp_path / "out"), field: value}
    with server.client(timeout=30) as client:
        with pytest.raises(ServerError, match="not an absolute path") as caught:
            client.wait(client.submit("batch", options), timeout=30)
    assert caught.value.code == "bad_message" and not (tmp_path / "out").exists()


def test_a_missing_input_is_an_error_before_any_work(server, tmp_path):
    options = {"inputs": [str(tmp_path / "nowhere.png")], "output": str(tmp_path / "out")}
    with server.client(timeout=30) as client:
        with pytest.raises(ServerError, match="nowhere.png") as caught:
            client.wait(client.submit("batch", options), timeout=60)
    assert caught.value.code == "bad_message" and not (tmp_path / "out" / "manifest.jsonl").exists()


def test_a_server_stopped_mid_batch_exits_and_its_manifest_holds_whole_lines(start_server, photos, tmp_path):
    server = start_server()
    out = tmp_path / "out"
    with server.client(timeout=30) as client:
        request = client.submit("batch", {"inputs": [str(p) for p in photos[:8]], "output": str(out)})
        while request.done == 0 and not request.finished:
            client.socket.poll(100)
            client.step()
        assert server.stop() == 0
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert lines and all(line["status"] == "done" for line in lines)
    for line in lines:
        assert read_normal_png(line["outputs"]["normal"]).shape == (SIZE, SIZE, 3)
    assert not [p for p in out.iterdir() if ".partial" in p.name]
