"""The throughput benchmark's own path (backend/benchmarks/batch.py) at a tiny size: generated
photos through the batch command, one worker and all cores, a summary per set-up."""
from __future__ import annotations

import cv2

from backend.benchmarks import batch as benchmark


def test_the_generated_photos_are_distinct_portraits(tmp_path):
    paths = benchmark.make_photos(tmp_path, 3, 96)
    images = [cv2.imread(str(path)) for path in paths]
    assert all(image.shape == (96, 96, 3) for image in images)
    assert not (images[0] == images[1]).all() and not (images[1] == images[2]).all()


def test_the_local_set_ups_report_every_photo_done(untrained_weights):
    report = benchmark.measure(2, 128, weights=str(untrained_weights), ray=False)
    assert len(report["setups"]) == 2
    for row in report["setups"].values():
        assert row["done"] == 2 and row["failed"] == 0 and row["photos_per_second"] > 0
