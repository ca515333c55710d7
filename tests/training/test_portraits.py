"""The committed split of the real portraits and its loader (no ../shared: the folder is made here)."""
from __future__ import annotations

import pytest

from backend.training.portraits import (PortraitSplitError, evaluation_names, is_held_out, make_split,
                                        portrait_split, training_names)


def test_the_committed_lists_follow_the_rule_and_hold_out_at_least_100():
    training, evaluation = training_names(), evaluation_names()
    assert len(evaluation) >= 100 and len(training) > len(evaluation)
    assert not set(training) & set(evaluation)
    assert training == sorted(training) and evaluation == sorted(evaluation)
    assert make_split(training + evaluation) == (training, evaluation)
    assert all(is_held_out(name) for name in evaluation) and not any(is_held_out(n) for n in training)


def test_the_rule_depends_on_the_name_alone():
    names = [f"X{i:06d}.jpg" for i in range(2000)]
    training, evaluation = make_split(names)
    assert make_split(reversed(names)) == (training, evaluation)
    assert make_split(names[:1000])[1] == [n for n in evaluation if n in names[:1000]]
    assert 0.15 < len(evaluation) / len(names) < 0.25


@pytest.fixture
def portrait_folder(tmp_path):
    for name in training_names() + evaluation_names() + ["README.md", "extra.jpg"]:
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_the_loader_gives_both_lists_as_paths_in_the_folder(portrait_folder):
    training, evaluation = portrait_split(portrait_folder)
    assert [p.name for p in training] == training_names()
    assert [p.name for p in evaluation] == evaluation_names()
    assert all(p.parent == portrait_folder for p in training + evaluation)
    assert "extra.jpg" not in {p.name for p in training + evaluation}


def test_a_missing_photo_is_a_clear_error_naming_it(portrait_folder):
    gone = evaluation_names()[3]
    (portrait_folder / gone).unlink()
    with pytest.raises(PortraitSplitError, match=rf"1 of the \d+ portraits .* missing from .*: {gone}"):
        portrait_split(portrait_folder)
    for name in training_names()[:10]:
        (portrait_folder / name).unlink()
    with pytest.raises(PortraitSplitError, match="11 of the .* and 6 more"):
        portrait_split(portrait_folder)


def test_a_folder_that_is_not_there_is_a_clear_error(tmp_path):
    with pytest.raises(PortraitSplitError, match="does not exist or is not a folder"):
        portrait_split(tmp_path / "nowhere")
