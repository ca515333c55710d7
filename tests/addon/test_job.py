"""The job base (addon/job.py) without Blender: a job's steps run to the end in a loop, its
progress text says where it is, and a failure stops the loop with the job's message."""
from __future__ import annotations

import pytest

from . import source  # noqa: F401  (the add-on's source as `face_normals`)
from face_normals.job import Job, JobFailed  # noqa: E402


class Countdown(Job):
    title = "Counting"

    def __init__(self, steps: int, fail_at: int | None = None):
        super().__init__()
        self.total, self.fail_at = steps, fail_at

    def step(self) -> bool:
        if self.done == self.fail_at:
            raise JobFailed(f"stopped at {self.done}")
        self.done += 1
        self.status = "counting"
        return self.done == self.total


def test_run_blocking_steps_until_finished():
    job = Countdown(5)
    job.run_blocking(poll_seconds=0)
    assert job.done == job.total == 5


def test_progress_text_gives_phase_and_count():
    job = Countdown(3)
    assert job.progress_text() == "Face Normals - Counting 0/3  (Esc to cancel)"
    job.step()
    assert job.progress_text() == "Face Normals - Counting: counting 1/3  (Esc to cancel)"


def test_a_failure_stops_the_loop_with_its_message():
    job = Countdown(5, fail_at=2)
    with pytest.raises(JobFailed, match="stopped at 2"):
        job.run_blocking(poll_seconds=0)
    assert job.done == 2


def test_a_job_without_steps_says_so():
    with pytest.raises(NotImplementedError):
        Job().step()
