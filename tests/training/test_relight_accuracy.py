"""The relighting benchmark with ground truth (backend/benchmarks/relight_accuracy.py) on the tiny
FaceKit the tests make: its rows, its oracle, and the height against the renderer's depth."""
from __future__ import annotations

import numpy as np
import pytest

from backend.benchmarks import relight_accuracy
from backend.estimator.pipeline import NormalMap
from backend.training.facekit import FaceKit
from backend.training.synthetic import FaceRenderer


@pytest.fixture(scope="module")
def renderer(tiny_facekit):
    return FaceRenderer(FaceKit(tiny_facekit), size=96, plain_camera=True)


def _truth_as_predicted(renderer):
    """A 'prediction' that is the truth: normals of the photo under A, no faces, its person."""
    def predict(image):
        for index in range(8):
            sample = renderer.test_sample(index, "person")
            if np.array_equal(sample.image, image):
                return NormalMap(sample.normals, sample.subject, [], [], False, {})
        raise AssertionError("not a test person's photo")
    return predict


def test_the_table_has_every_row_and_the_oracle_matches_the_truth_best(renderer):
    scores = relight_accuracy.score(renderer, _truth_as_predicted(renderer), 2)
    assert set(scores.psnr) == set(relight_accuracy.ROWS)
    assert all(len(values) == 2 for values in scores.psnr.values())
    best = max(relight_accuracy.ROWS, key=lambda row: np.mean(scores.psnr[row]))
    assert best == "oracle"
    assert np.mean(scores.mae["oracle"]) < np.mean(scores.mae["unchanged photo"])
    text = relight_accuracy.table(scores)
    assert all(row in text for row in relight_accuracy.ROWS) and "true normals" in text


def test_light_b_really_differs_from_light_a(renderer):
    under_a = renderer.test_sample(0, "person")
    under_b = renderer.test_sample(0, "person", light_seed=relight_accuracy.LIGHT_SEED_OFFSET)
    assert np.array_equal(under_a.normals, under_b.normals)          # the same person and pose
    assert np.abs(under_a.light - under_b.light).max() > 0.05


def test_the_height_from_true_normals_follows_the_depth(renderer):
    """On the tiny FaceKit's sphere head the integrated relief tracks the depth (the error is
    well under the depth's own spread), and a flat field does not."""
    sample = renderer.test_sample(0, "face")
    assert sample.depth is not None and sample.depth[sample.subject > 0.5].min() > 0
    from_truth = relight_accuracy.height_error(sample.normals, sample)
    flat = np.zeros_like(sample.normals)
    flat[..., 2] = 1
    assert from_truth < 0.6 and relight_accuracy.height_error(flat, sample) == pytest.approx(1.0)
