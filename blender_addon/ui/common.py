"""What the operators and timers share: report an error, run a job (decode, compositing layer) or cancel one, and
follow a job from a timer with its progress in the status bar.

With a user at the UI, a timer polls the job and the operator returns at once; in background mode (a farm, a
test) there is no event loop to run a timer, so the operator waits for the job in the foreground.
"""

from __future__ import annotations

import bpy
from bpy_extras.io_utils import ImportHelper

POLL_SECONDS = 0.5


class ImportFile(ImportHelper):
    """A File > Import operator (the file browser first; undoable)."""

    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ""


class SidebarPanel:
    """A panel in the 3D view's sidebar, tab GIFStream."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "GIFStream"


class ChooseFolder:
    """An operator that asks for a folder (`directory`) in the file browser, then runs."""

    directory: bpy.props.StringProperty(subtype="DIR_PATH")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


def fail(operator, error) -> set[str]:
    """Report `error` (an exception or a text) to the artist; the operator's result."""
    operator.report({"ERROR"}, f"GIFStream: {error}")
    return {"CANCELLED"}


def is_running(job) -> bool:
    return job is not None and job.running


def run_job(operator, job, finish, poll, started: str) -> set[str]:
    """Wait for `job` and report `finish()`'s message (background mode), or register `poll` and report `started`."""
    if bpy.app.background:
        job.wait()
        message = finish()
        operator.report({"INFO"} if job.status == "finished" else {"ERROR"}, message)
        return {"FINISHED"} if job.status == "finished" else {"CANCELLED"}
    start_timer(poll)
    operator.report({"INFO"}, started)
    return {"FINISHED"}


def cancel_job(operator, job, nothing_running: str) -> set[str]:
    """Cancel `job` if it runs; else warn with `nothing_running`."""
    if not is_running(job):
        operator.report({"WARNING"}, nothing_running)
        return {"CANCELLED"}
    job.cancel()
    operator.report({"INFO"}, job.status_line())
    return {"FINISHED"}


def start_timer(poll) -> None:
    if not bpy.app.timers.is_registered(poll):
        bpy.app.timers.register(poll, first_interval=POLL_SECONDS)


def set_status_bar(text) -> None:
    """Show `text` in every window's status bar (None: Blender's own again)."""
    for window in getattr(bpy.context.window_manager, "windows", []):
        try:
            window.workspace.status_text_set(text)
        except (AttributeError, RuntimeError):
            pass


def follow_job(job, finish, undo_message: str):
    """One timer tick for a decode or compositing layer job (import time only, never while rendering): progress in
    the status bar; once it ended, `finish()` builds its result into the scene and returns the message. Returns the
    timer's next interval (None: stop)."""
    running = job.poll()
    set_status_bar(job.status_line() if running else None)
    if running:
        return POLL_SECONDS
    message = finish()
    print(message)
    if job.status == "finished":
        job.message = message
        bpy.ops.ed.undo_push(message=undo_message)
    return None
