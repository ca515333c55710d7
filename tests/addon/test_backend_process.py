"""The add-on's process helper (addon/backend_process.py), without Blender, on real processes:
the serve command built from the preferences, and the non-blocking stop - SIGTERM, SIGKILL
only for a process that outlives the grace period.  The processes stand in for a server (a
Python that runs a few lines instead of `-m backend serve`, whose arguments it then receives),
so no model is loaded."""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from . import source  # noqa: F401  (the add-on's source as `face_normals`)
from face_normals.backend_process import Stopping, launch  # noqa: E402

# Prints its arguments, says it is listening (after installing its SIGTERM handling), then waits.
STAND_IN = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.{handler})\n"
            "print(' '.join(sys.argv[1:]), flush=True)\n"
            "print('listening', flush=True)\n"
            "time.sleep(600)\n")


def prefs(**changes) -> SimpleNamespace:
    """The add-on preferences launch() reads (a stand-in for Blender's AddonPreferences)."""
    return SimpleNamespace(**{"address": "tcp://127.0.0.1:0", "backend_args": "--device cpu",
                              "idle_timeout": 0, "model": "AUTO", **changes})


def started(tmp_path: Path, handler: str = "SIG_DFL", **changes):
    log = tmp_path / "backend.log"
    process = launch(prefs(**changes), [sys.executable, "-c", STAND_IN.format(handler=handler)], log)
    for _ in range(6000):          # until its SIGTERM handling is in place (a bound, not a timing)
        if "listening" in log.read_text():
            return process, log
        assert process.running, log.read_text()
        time.sleep(0.01)
    pytest.fail("the stand-in never started")


def stop(process, grace: float) -> int:
    stopping = Stopping(process, grace)
    while not stopping.step():
        time.sleep(0.01)
    return process.process.returncode


def test_launch_passes_the_preferences_to_serve(tmp_path):
    process, log = started(tmp_path, idle_timeout=300)
    assert log.read_text().splitlines()[0] == \
        "-m backend serve --bind tcp://127.0.0.1:0 --device cpu --idle-timeout 300"
    stop(process, grace=60)


def test_launch_passes_the_chosen_model(tmp_path):
    process, log = started(tmp_path, model="QUALITY")
    assert log.read_text().splitlines()[0] == \
        "-m backend serve --bind tcp://127.0.0.1:0 --model quality --device cpu"
    stop(process, grace=60)


def test_no_idle_timeout_is_passed_when_it_is_off(tmp_path):
    process, log = started(tmp_path)
    assert "--idle-timeout" not in log.read_text()
    stop(process, grace=60)


def test_a_process_that_exits_on_sigterm_is_not_killed(tmp_path):
    process, _ = started(tmp_path)
    assert stop(process, grace=600) == -signal.SIGTERM


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    process, _ = started(tmp_path, handler="SIG_IGN")
    assert stop(process, grace=0.2) == -signal.SIGKILL


def test_what_follows_the_stop_runs_once_when_the_process_has_exited(tmp_path):
    process, _ = started(tmp_path)
    followed = []
    stopping = Stopping(process, grace=600, then=lambda: followed.append(process.exited()))
    while not stopping.step():
        assert followed == []
        time.sleep(0.01)
    assert stopping.step() and followed == [True]


def test_nothing_to_stop_is_stopped_at_once():
    assert Stopping(None).step()
