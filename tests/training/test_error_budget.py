"""The error budget on the tiny stand-in head: each row withholds what it says, and no more."""
import subprocess
import sys

import numpy as np

from backend.training.error_budget import BLUR_SIGMAS, error_budget, withheld_people
from backend.training.facekit import Person


def test_rows_grow_with_what_is_withheld(tiny_facekit):
    rows = {row["name"]: row for row in error_budget(tiny_facekit, people=2)}
    blur = [rows[f"detail below sigma {sigma:g} px"]["mean"] for sigma in BLUR_SIGMAS]
    assert blur == sorted(blur) and blur[0] > 0
    assert rows["identity: the mean face"]["mean"] > 0.1      # the stand-in's modes are bulges of mm
    assert set(rows) == {*(f"detail below sigma {s:g} px" for s in BLUR_SIGMAS),
                         "identity: the mean face", "expression: neutral"}   # it has only 4 modes


def test_identity_rows_keep_the_first_modes_and_the_expression():
    person = Person(np.arange(1.0, 101.0), np.full(57, 0.5))
    variants = withheld_people(person)
    first_ten = variants["identity: first 10 of 100 modes"]
    assert np.array_equal(first_ten.identity[:10], person.identity[:10]) and not first_ten.identity[10:].any()
    assert np.array_equal(first_ten.expression, person.expression)
    neutral = variants["expression: neutral"]
    assert np.array_equal(neutral.identity, person.identity) and not neutral.expression.any()


def test_a_wrong_data_folder_is_a_clear_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "backend.training.error_budget", "--data", tmp_path],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "ict_facekit" in done.stderr.lower() and "Traceback" not in done.stderr
