"""backend.tools.readme_pictures on a folder made here (files named like held-out portraits)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

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
    assert np.asarray(Image.open(out / "astronaut.png")).shape == (512, 3 * 512, 3)
    picture = np.asarray(Image.open(out / names[0].replace(".jpg", ".png"))).astype(int)
    assert picture.shape == (275, 3 * 225, 3)
    photo, normals, relit = np.split(picture, 3, axis=1)
    assert np.abs(relit[90:200, 60:165] - photo[90:200, 60:165]).mean() > 3


def test_only_held_out_portraits_are_shown(tmp_path, capsys):
    trained_on = training_names()[0]
    (tmp_path / trained_on).write_bytes(b"")
    assert readme_pictures.main(["--portraits", str(tmp_path), trained_on, evaluation_names()[0]]) == 1
    assert f"{trained_on}: not a held-out portrait" in capsys.readouterr().err
    assert readme_pictures.main(["--portraits", str(tmp_path), evaluation_names()[0]]) == 1
    assert "give two portrait names" in capsys.readouterr().err
