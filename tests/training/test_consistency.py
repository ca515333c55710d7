"""Consistency on real portraits, end to end on a tiny portrait folder made from the astronaut
(no ../shared): the real model, estimators made to be exactly consistent or deliberately not,
the contact sheet and `python -m backend evaluate --portraits`."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from backend import cli
from backend.estimator.pipeline import Estimator
from backend.training import portraits
from backend.training.consistency import TRANSFORMS, consistency, format_portrait_table, shift_offsets

pytestmark = pytest.mark.slow      # the shipped model

PHOTOS = ("a_face.jpg", "b_whole.jpg", "c_face_mirrored.jpg", "d_blank.jpg")


@pytest.fixture(scope="module")
def portrait_folder(astronaut, tmp_path_factory):
    """Four 'portraits': the astronaut's head cut and resized like the real ones (225x275), the
    whole photo at 256x256, the head mirrored, and a grey photo with no face."""
    folder = tmp_path_factory.mktemp("portraits")
    head = Image.fromarray(astronaut[0:330, 90:360]).resize((225, 275), Image.Resampling.LANCZOS)
    head.save(folder / PHOTOS[0], quality=92)
    Image.fromarray(astronaut).resize((256, 256), Image.Resampling.LANCZOS).save(folder / PHOTOS[1], quality=92)
    head.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / PHOTOS[2], quality=92)
    Image.new("RGB", (225, 275), (128, 128, 128)).save(folder / PHOTOS[3], quality=92)
    return folder


@pytest.fixture(scope="module")
def shipped():
    return Estimator(device="cpu")


def _paths(folder):
    return [folder / name for name in PHOTOS]


def _gradient_map(image, strength=4.0):
    """Unit normals from the brightness's central differences, pixel by pixel: exactly what
    a mirror image or a shifted crop gives back (x negated on mirroring), away from the borders."""
    grey = image.mean(-1)
    dx, dy = np.zeros_like(grey), np.zeros_like(grey)
    dx[:, 1:-1] = grey[:, 2:] - grey[:, :-2]
    dy[1:-1] = grey[2:] - grey[:-2]
    normals = np.stack([strength * dx, -strength * dy, np.ones_like(grey)], -1)
    return normals / np.linalg.norm(normals, axis=-1, keepdims=True)


class Equivariant:
    """Consistent by construction under mirror and shift (the back-mapping is what is tested)."""

    def normal_map(self, image):
        return SimpleNamespace(normals=_gradient_map(image), mask=np.ones(image.shape[:2], np.float32))


class PositionBound(Equivariant):
    """Deliberately inconsistent: a tilt pattern fixed to the frame's pixels (it does not move,
    mirror or scale with the face) plus the unblurred brightness gradient (JPEG noise moves it)."""

    def normal_map(self, image):
        rows, cols = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(np.float32)
        normals = _gradient_map(image, strength=20.0)
        normals[..., 0] += 0.5 * np.cos(2 * np.pi * cols / 23) + 0.3
        normals[..., 1] += 0.5 * np.sin(2 * np.pi * rows / 29)
        normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
        return SimpleNamespace(normals=normals, mask=np.ones(image.shape[:2], np.float32))


@pytest.fixture(scope="module")
def report(shipped, portrait_folder):
    return consistency({"shipped": shipped, "position": PositionBound(), "equivariant": Equivariant()},
                       _paths(portrait_folder))


def _row(report, model, transform):
    [row] = [r for r in report.rows if r["model"] == model and r["transform"] == transform]
    return row


def test_rows_per_model_and_copy_with_the_photos_that_had_a_face(report):
    assert [(r["model"], r["transform"]) for r in report.rows] == [
        (model, transform) for model in ("shipped", "position", "equivariant") for transform in TRANSFORMS]
    assert report.photos == 4
    assert report.models["shipped"]["no_face"] == ["d_blank.jpg"]      # counted and listed, not a crash
    assert report.models["position"]["no_face"] == []
    for transform in TRANSFORMS:
        row = _row(report, "shipped", transform)
        assert row["photos"] + len(row["no_face"]) == 3 and row["photo_no_face"] == 1
        assert set(row) >= {"mean", "median", "worst", "no_face"}
        worst = [w["degrees"] for w in row["worst"]]
        assert len(worst) == row["photos"] and worst == sorted(worst, reverse=True)
        assert math.isfinite(row["mean"]) and math.isfinite(row["median"])
        assert min(worst) <= row["median"] <= max(worst)
    assert set(report.per_photo["shipped"]) == set(PHOTOS[:3])
    text = json.dumps(report.to_json(), allow_nan=False)
    assert json.loads(text)["rows"][0]["transform"] == "mirror"
    table = format_portrait_table(report)
    assert "d_blank.jpg" in table and all(t in table for t in TRANSFORMS)


def test_the_real_model_is_mirror_consistent_on_the_astronaut(report):
    mirror = _row(report, "shipped", "mirror")
    assert mirror["photos"] == 3 and no_nan(mirror) and mirror["mean"] < 20.0
    # the head and its mirror image are the same test from both sides
    scores = report.per_photo["shipped"]
    assert abs(scores["a_face.jpg"]["mirror"] - scores["c_face_mirrored.jpg"]["mirror"]) < 3.0


def no_nan(row):
    return all(math.isfinite(w["degrees"]) for w in row["worst"])


def test_the_copies_are_taken_back_into_the_photos_pixels_exactly(report):
    """An estimator that is equivariant by construction scores (almost) 0 on mirror and shift: any
    mistake in flipping back, negating x or placing the shifted map back would show here."""
    assert _row(report, "equivariant", "mirror")["mean"] < 0.05      # float32 rounding in arccos
    assert _row(report, "equivariant", "shift12")["mean"] < 0.3      # only the crop's new border rows differ
    assert _row(report, "equivariant", "jpeg40")["mean"] > 1.0       # it does see JPEG noise


def test_a_map_bound_to_the_frame_scores_worse_than_the_real_model(report):
    for transform in TRANSFORMS:
        real, bound = _row(report, "shipped", transform)["mean"], _row(report, "position", transform)["mean"]
        assert bound > real + 2.0, (transform, real, bound)


def test_shift_crops_12_percent_off_the_top_and_left():
    assert shift_offsets(275, 225) == (33, 27)
    image = np.random.default_rng(0).random((275, 225, 3)).astype(np.float32)
    copy, back = TRANSFORMS["shift12"](image)
    assert copy.shape == (242, 198, 3) and np.array_equal(copy[0, 0], image[33, 27])
    normals, _, covered = back(np.ones((242, 198, 3), np.float32), np.ones((242, 198), np.float32))
    assert covered.sum() == 242 * 198 and covered[33:, 27:].all() and not covered[:33].any()


def test_the_contact_sheet_has_a_row_per_photo(shipped, portrait_folder, tmp_path):
    sheet = tmp_path / "sheet.png"
    done = consistency({"shipped": shipped}, _paths(portrait_folder)[:2], sheet=sheet, sheet_photos=2)
    pixels = np.asarray(Image.open(sheet))
    assert done.sheet == str(sheet) and pixels.shape[0] == 2 * 275
    photo, normals, left, right = np.split(pixels[:275, :4 * 225].astype(int), 4, axis=1)
    face = (slice(90, 200), slice(60, 165))
    assert np.abs(normals[face] - [128, 128, 255]).sum(-1).mean() > 20      # not flat on the face
    assert np.abs(left[face] - photo[face]).mean() > 3 and np.abs(left[face] - right[face]).mean() > 3
    background = shipped.normal_map(photo.astype(np.float32) / 255).mask == 0
    assert background.mean() > 0.1 and (left[background] == photo[background]).all()   # outside: the photo


@pytest.fixture
def split_of_the_folder(portrait_folder, monkeypatch, tmp_path):
    """The committed split's lists replaced by ones naming the tiny folder's photos."""
    (tmp_path / "training.txt").write_text("")
    (tmp_path / "evaluation.txt").write_text("".join(f"{name}\n" for name in PHOTOS))
    monkeypatch.setattr(portraits, "TRAINING_LIST", tmp_path / "training.txt")
    monkeypatch.setattr(portraits, "EVALUATION_LIST", tmp_path / "evaluation.txt")
    return portrait_folder


def test_evaluate_portraits_alone_prints_the_rows_as_json(split_of_the_folder, untrained_weights, tmp_path, capsys):
    sheet = tmp_path / "out" / "portraits.png"
    code = cli.main(["evaluate", "--portraits", str(split_of_the_folder), "--portrait-sheet", str(sheet),
                     "--previous", str(untrained_weights), "--json"])
    assert code == 0
    found = json.loads(capsys.readouterr().out)
    assert set(found) == {"portraits"}                       # no --data: no synthetic rows
    rows = found["portraits"]["rows"]
    assert [(r["model"], r["transform"]) for r in rows] == [
        (model, transform) for model in ("shipped", "previous") for transform in TRANSFORMS]
    assert found["portraits"]["models"]["previous"]["weights"] == str(untrained_weights)
    assert found["portraits"]["models"]["shipped"]["no_face"] == ["d_blank.jpg"]
    assert sheet.is_file() and found["portraits"]["sheet"] == str(sheet)


def test_evaluate_portraits_scores_v3_models_in_the_same_run(split_of_the_folder, untrained_weights, v3_weights,
                                                             tmp_path, monkeypatch, capsys):
    """--models with --portraits: a v3 weights file's rows beside the shipped model's, named by
    the file, its maps through the v3 pipeline; a size whose weights do not ship is refused."""
    sheet = str(tmp_path / "sheet.png")
    code = cli.main(["evaluate", "--portraits", str(split_of_the_folder), "--previous", str(untrained_weights),
                     "--models", str(v3_weights), "--portrait-sheet", sheet, "--json"])
    assert code == 0
    found = json.loads(capsys.readouterr().out)["portraits"]
    v3 = v3_weights.stem
    assert [(r["model"], r["transform"]) for r in found["rows"]] == [
        (model, transform) for model in ("shipped", "previous", v3) for transform in TRANSFORMS]
    assert found["models"][v3]["weights"] == str(v3_weights)
    shipped, tiny = ({r["transform"]: r for r in found["rows"] if r["model"] == name} for name in ("shipped", v3))
    assert all(tiny[t]["photos"] == shipped[t]["photos"] > 0 and tiny[t]["mean"] != shipped[t]["mean"]
               for t in TRANSFORMS)

    from backend.estimator import models
    monkeypatch.setattr(models, "WEIGHTS_FOLDER", tmp_path)      # no v3 weights here
    assert cli.main(["evaluate", "--portraits", str(split_of_the_folder), "--models", "quality",
                     "--portrait-sheet", sheet]) == 1
    assert "face_intrinsics_quality.safetensors" in capsys.readouterr().err


def test_evaluate_portraits_prints_a_table(split_of_the_folder, tmp_path, capsys):
    code = cli.main(["evaluate", "--portraits", str(split_of_the_folder),
                     "--portrait-sheet", str(tmp_path / "sheet.png")])
    out = capsys.readouterr().out
    assert code == 0 and "4 held-out real portraits" in out
    # without --previous, the model the shipped one replaced (it ships beside it) is scored too
    assert all(f"{model:<12}{t}" in out for model in ("shipped", "previous") for t in TRANSFORMS)
    assert "face_normals_previous.safetensors" in out and f"portrait sheet: {tmp_path / 'sheet.png'}" in out


def test_evaluate_needs_data_or_portraits_and_names_missing_photos(tmp_path, capsys):
    assert cli.main(["evaluate"]) == 1
    assert "give --data" in capsys.readouterr().err
    assert cli.main(["evaluate", "--portraits", str(tmp_path)]) == 1
    assert "are missing from" in capsys.readouterr().err
