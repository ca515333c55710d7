"""Runs inside a real Blender window (`blender --python control.py -- COMMAND_FOLDER`): the test's
hands in Blender's main thread.

Contract with tests/window/window.py:
- the test writes `<n>.py` (Python source, atomically: written as `<n>.tmp` and renamed) into
  COMMAND_FOLDER; a timer runs each in order, in Blender's main thread, with `bpy`, `C` (the
  context), `ui(area_type)` (a temp_override for that area's main region) and `log` in its
  namespace, and writes `<n>.json`: {"ok": true, "result": <the value of `result`>} or
  {"ok": false, "error": <traceback>}.
- the timer ticks every 20 ms; `log["max_gap"]` is the longest time between the end of one tick and
  the start of the next (a main-thread stall) since the last `log["max_gap"] = 0`; the time spent
  running the test's own commands is not counted.
- `watch_addon()` wraps the add-on's `Job.progress_text` (what JobOperator puts in the status bar),
  `JobOperator._end` and `JobOperator.modal`, so `log["progress"]` lists (seconds, text) as the
  status bar showed it, `log["ended"]` counts jobs that ended (finished, failed or cancelled) and
  `log["slowest_step"]` is (seconds, job, phase, event) of the longest modal call.
- `ready` is written into COMMAND_FOLDER once the window is up.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback

import bpy

FOLDER = sys.argv[sys.argv.index("--") + 1]
TICK = 0.02
log: dict = {"max_gap": 0.0, "progress": [], "ended": 0, "started": time.monotonic()}
_state = {"last": None, "next": 0}


def ui(area_type: str, region_type: str = "WINDOW"):
    """A context override for the first area of that type (its region of that type)."""
    window = bpy.context.window_manager.windows[0]
    for area in window.screen.areas:
        if area.type == area_type:
            region = next(r for r in area.regions if r.type == region_type)
            return bpy.context.temp_override(window=window, screen=window.screen, area=area, region=region)
    raise LookupError(f"no {area_type} area")


def area_of(area_type: str):
    window = bpy.context.window_manager.windows[0]
    return next(a for a in window.screen.areas if a.type == area_type)


def screen_xy(area_type: str, fx: float, fy: float, region_type: str = "WINDOW") -> tuple[int, int]:
    """X screen coordinates (top-left origin) of the point (fx, fy) in 0..1 of a region
    (bottom-left origin, as Blender's regions)."""
    window = bpy.context.window_manager.windows[0]
    area = area_of(area_type)
    region = next(r for r in area.regions if r.type == region_type)
    x = region.x + fx * region.width
    y = region.y + fy * region.height
    return int(window.x + x), int(window.height - y)


def region_box(area_type: str, region_type: str = "WINDOW") -> tuple[int, int, int, int]:
    """(left, top, width, height) of a region in X screen coordinates, for cropping screenshots."""
    window = bpy.context.window_manager.windows[0]
    area = area_of(area_type)
    region = next(r for r in area.regions if r.type == region_type)
    return region.x, window.height - region.y - region.height, region.width, region.height


def reports() -> list[str]:
    """Every report of this session, as the Info editor lists them (read through its copy
    operator: the Info log is the window's own record of what the user was told)."""
    bpy.context.window_manager.clipboard = ""
    with ui("INFO"):        # the timeline, turned into an Info editor by the test
        bpy.ops.info.select_all(action="SELECT")
        bpy.ops.info.report_copy()
        bpy.ops.info.select_all(action="DESELECT")
    return [line for line in bpy.context.window_manager.clipboard.splitlines() if line.strip()]


def watch_addon() -> None:
    from bl_ext.user_default.face_normals import jobs
    if getattr(jobs.Job, "_watched", False):
        return
    progress_text, end, modal = jobs.Job.progress_text, jobs.JobOperator._end, jobs.JobOperator.modal

    def recorded_progress(self):
        text = progress_text(self)
        if not log["progress"] or log["progress"][-1][1] != text:
            log["progress"].append((round(time.monotonic() - log["started"], 3), text))
        return text

    def recorded_end(self, context):
        log["ended"] += 1
        return end(self, context)

    def timed_modal(self, context, event):
        started = time.monotonic()
        try:
            return modal(self, context, event)
        finally:
            took = time.monotonic() - started
            if took > log["slowest_step"][0]:
                job = self._job
                log["slowest_step"] = (took, type(job).__name__, getattr(job, "status", ""), event.type)

    log["slowest_step"] = (0.0, "", "", "")
    jobs.Job.progress_text = recorded_progress
    jobs.JobOperator.modal = timed_modal
    jobs.JobOperator._end = recorded_end
    jobs.Job._watched = True


_namespace = {"bpy": bpy, "ui": ui, "log": log, "screen_xy": screen_xy, "region_box": region_box,
              "reports": reports, "watch_addon": watch_addon, "area_of": area_of}


def _run(name: str) -> None:
    path = os.path.join(FOLDER, name)
    with open(path) as handle:
        source = handle.read()
    namespace = dict(_namespace, C=bpy.context, result=None)
    try:
        exec(compile(source, path, "exec"), namespace)
        answer = {"ok": True, "result": namespace["result"]}
    except Exception:
        answer = {"ok": False, "error": traceback.format_exc()}
    try:
        text = json.dumps(answer)
    except TypeError:
        text = json.dumps({"ok": True, "result": repr(answer["result"])})
    with open(path[:-3] + ".tmp-answer", "w") as handle:
        handle.write(text)
    os.replace(path[:-3] + ".tmp-answer", path[:-3] + ".json")


def _tick():
    now = time.monotonic()
    if _state["last"] is not None:
        log["max_gap"] = max(log["max_gap"], now - _state["last"])
    name = f"{_state['next']}.py"
    if os.path.exists(os.path.join(FOLDER, name)):
        _state["next"] += 1
        _run(name)
    _state["last"] = time.monotonic()
    return TICK


def _start():
    with open(os.path.join(FOLDER, "ready"), "w") as handle:
        handle.write("ready")
    bpy.app.timers.register(_tick, first_interval=TICK, persistent=True)


bpy.app.timers.register(_start, first_interval=1.0, persistent=True)
