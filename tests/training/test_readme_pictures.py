"""backend.tools.readme_pictures on a folder made here (files named like held-out portraits)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from backend.core.colour import linear_to_srgb
from backend.estimator import Estimator
from backend.tools import readme_pictures
from backend.training.portraits import evaluation_names, training_names

pytestmark = pytest.mark.slow      # the shipped model


def test_it_writes_the_astronaut_and_two_held_out_portraits(astronaut, tmp_path, capsys):
    head = Image.fromarray(astronaut[0:330, 90:360]).resize((225, 275), Image.Resampling.LANCZOS)
    names = evaluation_names()[5:7]
    for name in names:
        head.save(tmp_path / name)
    out = tmp_path / "pictures"
    assert readme_pictures.main(["--portraits", str(tmp_path), "--output", str(out), *names]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(["astronaut.png", *(n.replace(".jpg", ".png") for n in names)])
    assert np.asarray(Image.open(out / "astronaut.png")).shape == (512, 6 * 512, 3)
    picture = np.asarray(Image.open(out / names[0].replace(".jpg", ".png"))).astype(int)
    assert picture.shape == (275, 6 * 225, 3)
    photo, albedo, normals, height, left, right = np.split(picture, 6, axis=1)
    face = (slice(90, 200), slice(60, 165))
    assert np.abs(left[face] - photo[face]).mean() > 3 and np.abs(left[face] - right[face]).mean() > 3
    assert height[face].std() > 5 and height[-5:].max() <= height[face].max()        # relief on the person


def test_without_a_portrait_folder_only_the_astronaut_is_drawn(tmp_path, capsys):
    out = tmp_path / "pictures"
    assert readme_pictures.main(["--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.png"]


def test_only_held_out_portraits_are_shown(tmp_path, capsys):
    trained_on = training_names()[0]
    (tmp_path / trained_on).write_bytes(b"")
    assert readme_pictures.main(["--portraits", str(tmp_path), trained_on, evaluation_names()[0]]) == 1
    assert f"{trained_on}: not a held-out portrait" in capsys.readouterr().err
    assert readme_pictures.main(["--portraits", str(tmp_path), evaluation_names()[0]]) == 1
    assert "give two portrait names" in capsys.readouterr().err


def test_a_v3_models_pictures_show_its_own_albedo(v3_weights, astronaut, tmp_path, capsys):
    """With a v3 model the albedo tile is the model's (here the tests' tiny model's), not the photo
    divided by a fitted light."""
    out = tmp_path / "pictures"
    assert readme_pictures.main(["--model", "fast", "--weights", str(v3_weights), "--output", str(out)]) == 0
    albedo_tile = np.asarray(Image.open(out / "astronaut.png")).astype(int)[:, 512:1024]
    found = Estimator(v3_weights, model="fast").normal_map(astronaut.astype(np.float32) / 255)
    expected = np.round(np.clip(linear_to_srgb(found.albedo), 0, 1) * 255)
    assert found.light.source == "model" and np.abs(albedo_tile - expected).mean() < 1
