"""What batch reads from its inputs, and the manifest it resumes from (no model needed)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from backend.batch import InputError, read_units, shard
from backend.batch.manifest import Manifest
from backend.batch.video import frame_count


def _touch_png(path):
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))


def test_folders_lists_and_sequence_patterns(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("x.png", "y.jpg", "notes.md", "x_normal.png"):
        _touch_png(tmp_path / "a" / name) if name.endswith(("png", "jpg")) else (tmp_path / "a" / name).write_text("")
    (tmp_path / "plates").mkdir()
    for frame in (9, 10, 11):
        _touch_png(tmp_path / "plates" / f"plate.{frame:04d}.png")
    _touch_png(tmp_path / "plates" / "plate.12.png")           # not four digits: not of the pattern
    (tmp_path / "list.txt").write_text("# the shoot\n\na/x.png\n" + str(tmp_path / "a" / "y.jpg") + "\n")
    units = read_units([str(tmp_path / "list.txt"), str(tmp_path / "a"), str(tmp_path / "plates" / "plate.%04d.png")])
    photos = [unit.frames[0].stem for unit in units if unit.clip is None]
    assert photos == ["x", "y"]                                  # named twice, done once
    [clip] = [unit for unit in units if unit.clip]
    assert [f.stem for f in clip.frames] == ["plate.0009", "plate.0010", "plate.0011"] and clip.stem == "plate"
    [same] = [u for u in read_units([str(tmp_path / "plates" / "plate.####.png")]) if u.clip]
    assert same.frames == clip.frames


def test_a_video_is_one_clip_of_its_frames(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12, (64, 48))
    for i in range(7):
        writer.write(np.full((48, 64, 3), 30 * i, np.uint8))
    writer.release()
    [unit] = read_units([str(path)], frame_count=frame_count)
    assert unit.video and len(unit.frames) == 7 and unit.frames[3].stem == "clip.000003"


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.png", "no such file"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "no photos"),
    (lambda d: d / "none.%04d.png", "no files match"),
    (lambda d: (d / "notes.md").write_text("x") and d / "notes.md", "not a photo"),
])
def test_unusable_inputs_say_which_and_why(tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        read_units([str(make(tmp_path))])


def test_two_photos_that_would_write_the_same_files_are_refused(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _touch_png(tmp_path / folder / "same.png")
    with pytest.raises(InputError, match="same_normal.png"):
        read_units([str(tmp_path / "a"), str(tmp_path / "b")])


def test_shards_cover_every_unit_once(tmp_path):
    for i in range(10):
        _touch_png(tmp_path / f"p{i}.png")
    units = read_units([str(tmp_path)])
    slices = [shard(units, k, 3) for k in (1, 2, 3)]
    assert sorted(u.frames[0].key for s in slices for u in s) == sorted(u.frames[0].key for u in units)
    assert [len(s) for s in slices] == [4, 3, 3]


def test_the_manifest_survives_a_torn_last_line_and_trusts_only_whole_done_files(tmp_path):
    made = tmp_path / "a_normal.png"
    made.write_bytes(b"x")
    settings = {"convention": "opengl"}
    done = {"input": "/a.png", "status": "done", "outputs": {"normal": str(made)}, "settings": settings}
    (tmp_path / "manifest.jsonl").write_text(json.dumps(done) + "\n" + '{"input": "/b.png", "sta')
    manifest = Manifest(tmp_path)
    assert manifest.is_done("/a.png", settings, {"normal"})
    assert not manifest.is_done("/a.png", settings, {"normal", "mask"})          # asked for more now
    assert not manifest.is_done("/a.png", {"convention": "directx"}, {"normal"})  # other content
    assert not manifest.is_done("/b.png", settings, {"normal"})
    manifest.append({"input": "/b.png", "status": "failed", "outputs": {}, "error": {"code": "no_face"}})
    manifest.close()
    made.unlink()                                                # a done photo whose file went away
    again = Manifest(tmp_path)
    assert again.latest["/b.png"]["status"] == "failed" and not again.is_done("/a.png", settings, {"normal"})
