"""Operator glue shared by the engine jobs the add-on starts (decode, compositing layer): run one, cancel one.

With a user at the UI, a timer polls the job and the operator returns at once; in background mode (a farm, a
test) there is no event loop to run a timer, so the operator waits for the job in the foreground.
"""

from __future__ import annotations

import bpy

POLL_SECONDS = 0.5


def run_job(operator, job, finish, poll, started: str) -> set[str]:
    """Wait for `job` and report `finish()`'s message (background mode), or register `poll` and report `started`."""
    if bpy.app.background:
        job.wait()
        message = finish()
        operator.report({"INFO"} if job.status == "finished" else {"ERROR"}, message)
        return {"FINISHED"} if job.status == "finished" else {"CANCELLED"}
    if not bpy.app.timers.is_registered(poll):
        bpy.app.timers.register(poll, first_interval=POLL_SECONDS)
    operator.report({"INFO"}, started)
    return {"FINISHED"}


def cancel_job(operator, job, nothing_running: str) -> set[str]:
    """Cancel `job` if it runs; else warn with `nothing_running`."""
    if job is None or job.status != "running":
        operator.report({"WARNING"}, nothing_running)
        return {"CANCELLED"}
    job.cancel()
    operator.report({"INFO"}, job.status_line())
    return {"FINISHED"}
