"""Running a Job (job.py: work cut into non-blocking steps) in Blender.  `JobOperator`
runs one: in the UI on a modal timer - the runner owns the timer, the status-bar text, the
progress bar and Esc, and removes all of them however the operator ends (finished, failed,
Esc, or cancelled by Blender, e.g. when a file is loaded) - and in background Blender or the
bpy module, where timers never fire, by calling the same step in a loop.
"""
from __future__ import annotations

import bpy

from .job import Job, JobFailed


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
            self.report({"ERROR"}, str(error))
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
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.05, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 100)
        context.workspace.status_text_set(self._job.progress_text())
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
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if not finished:
            context.window_manager.progress_update(int(100 * job.done / job.total) if job.total else 0)
            context.workspace.status_text_set(job.progress_text())
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
        if context.workspace is not None:
            context.workspace.status_text_set(None)
