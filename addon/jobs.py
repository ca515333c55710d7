"""Running a Job (job.py: work cut into non-blocking steps) in Blender.  `JobOperator`
runs one: in the UI on a modal timer - the runner owns the timer, the status-bar text, the
progress bar and Esc, and removes all of them however the operator ends (finished, failed,
Esc, or cancelled by Blender, e.g. when a file is loaded) - and in background Blender or the
bpy module, where timers never fire, by calling the same step in a loop.
"""
from __future__ import annotations

import textwrap

import bpy

from .job import Job, JobFailed

POPUP_WIDTH = 100        # characters per line of an error pop-up (a long line runs off the window)


def popup_text(message: str) -> str:
    """A report's message wrapped into lines for Blender's pop-up (it shows each line; one long
    line is cut off at the window's edge; the status bar drops the line breaks, so each keeps its
    space).  Unchanged in background mode, which has no pop-up."""
    if bpy.app.background:
        return message
    return " \n".join(textwrap.wrap(message, POPUP_WIDTH)) or message


def show_status(context, text: str | None) -> None:
    """The status-bar text in every window: a job started from the Preferences (a window without
    a status bar of its own) shows in the main window's, which is redrawn."""
    for window in context.window_manager.windows:
        with context.temp_override(window=window):
            window.workspace.status_text_set(text)


def main_window(context):
    """The window that stays: not a temporary one such as the Preferences (closing that would
    cancel a job whose handler lives in it)."""
    return next((w for w in context.window_manager.windows if not w.screen.is_temporary), context.window)


class JobOperator:
    """Mixin for operators whose work is a Job: implement `make_job(context)` (raise ValueError
    with a message when the inputs are wrong) and `finish(context, job)` (apply the result in
    Blender, report, return the operator's result set)."""

    _job: Job | None = None
    _timer = None
    _modal_after_select = False   # set by an invoke that opened the file browser first

    def make_job(self, context) -> Job:
        raise NotImplementedError

    def finish(self, context, job: Job) -> set:
        raise NotImplementedError

    def execute(self, context):
        if self._modal_after_select and not bpy.app.background:
            return self._start_modal(context)
        try:
            job = self.make_job(context)
            job.run_blocking()
        except (ValueError, JobFailed) as error:
            self.report({"ERROR"}, popup_text(str(error)))
            return {"CANCELLED"}
        return self.finish(context, job)

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        return self._start_modal(context)

    def _start_modal(self, context):
        try:
            self._job = self.make_job(context)
        except ValueError as error:
            self.report({"ERROR"}, popup_text(str(error)))
            return {"CANCELLED"}
        wm = context.window_manager
        window = main_window(context)
        self._timer = wm.event_timer_add(0.05, window=window)
        if window == context.window:
            wm.modal_handler_add(self)
        else:                       # started in the Preferences: runs on when they are closed
            with context.temp_override(window=window, area=None, region=None):
                wm.modal_handler_add(self)
        wm.progress_begin(0, 100)
        show_status(context, self._job.progress_text())
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC":
            job.cancel()
            self._end(context)
            self.report({"WARNING"}, f"{job.title}: cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            finished = job.step()
        except JobFailed as error:
            self._end(context)
            self.report({"ERROR"}, popup_text(str(error)))
            return {"CANCELLED"}
        if not finished:
            context.window_manager.progress_update(int(100 * job.done / job.total) if job.total else 0)
            show_status(context, job.progress_text())
            return {"RUNNING_MODAL"}
        self._end(context)
        return self.finish(context, job)

    def cancel(self, context):
        """Blender ends the operator itself (a file is loaded, the window closes)."""
        if self._job is not None:
            self._job.cancel()
        self._end(context)

    def _end(self, context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
            wm.progress_end()
        show_status(context, None)
