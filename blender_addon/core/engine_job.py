"""The base of the engine jobs the add-on starts (training, decoding, the compositing layer): one `gifstream`
command in its own process, followed from Blender's thread.

`EngineJob` starts the command, applies its output on `poll()` (with `--events` its stdout carries JSON-lines
events: progress, log, error, result; every other line is log text), cancels it and says how it ended.
`FolderJob` adds an output folder the engine writes into `<folder>.part`: only a complete run replaces `<folder>`,
so a cancelled or failed job leaves what was there. (`gifstream decode` stages its frames once more, in
`<folder>.part.<pid>-<random>.part`, renamed to `<folder>.part` when whole; a killed engine may leave that behind, and
the job removes it with `<folder>.part`.)
"""

from __future__ import annotations

import collections
import glob
import json
import os
import shutil
import time

from . import engine_client
from .conventions import PART_SUFFIX
from .engine_process import EngineProcess

LOG_LINES = 2000  # the log kept in memory (a job with a log file keeps all of it there)


def parse_event(line: str) -> dict | None:
    """The event on a line of the engine's stdout, or None for a line of plain text."""
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


class EngineJob:
    """`status` is "running", then "finished", "failed" or "cancelled", with `message` for the artist; `done` of
    `total` is the progress. Subclasses say how the job ends (`_finish`) and how it reads in the status bar."""

    events = True  # the command prints JSON-lines events on stdout (`--events`)
    label = ""  # the job's name in its status line once it ended: "GIFStream: <label><status> - <message>"

    def __init__(self, python: str, args: list[str], total: int = 0, log_path: str | None = None):
        self.command = [python, "-m", engine_client.ENGINE_MODULE, *args]
        self.status, self.message = "running", ""
        self.done, self.total = 0, total
        self.result: dict | None = None
        self.log: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self.log_path = log_path
        self._log_file = open(log_path, "a") if log_path else None
        self.engine = EngineProcess(self.command)

    @property
    def running(self) -> bool:
        return self.status == "running"

    def poll(self) -> bool:
        """Apply the output printed since the last call; returns True while the job runs."""
        self._read()
        if self.running:
            exited = self.engine.ended and self.engine.returncode is not None  # and all it printed was applied
            self._progress()
            if exited:
                self._finish(self.engine.returncode)
        return self.running

    def cancel(self, timeout: float = 60.0) -> None:
        """Stop the engine (SIGTERM: it saves what it must and exits; killed if it hangs) and apply its last output."""
        if not self.running:
            return
        self.engine.stop(timeout)
        self._read()
        self._cancelled()

    def wait(self, interval: float = 0.2) -> None:
        while self.poll():
            time.sleep(interval)

    def status_line(self) -> str:
        if self.running:
            return f"GIFStream: {self._progress_text()}"
        return f"GIFStream: {self.label}{self.status}" + (f" - {self.message}" if self.message else "")

    # -- the engine's output --------------------------------------------------------------------------------------

    def _read(self) -> None:
        for is_stdout, line in self.engine.lines():
            event = parse_event(line) if is_stdout and self.events else None
            if event is not None:
                self._apply(event)
            elif line.strip():
                self._write_log(line)

    def _apply(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "progress":
            self._on_progress(event)
        elif kind == "log":
            self._write_log(str(event.get("message", "")))
        elif kind == "error":
            self.message = str(event.get("message", ""))
        elif kind == "result":
            self.result = event.get("data") or {}

    def _on_progress(self, event: dict) -> None:
        self.done = int(event.get("step", self.done))

    def _write_log(self, text: str) -> None:
        self.log.append(text)
        if self._log_file is not None:
            self._log_file.write(text + "\n")
            self._log_file.flush()

    # -- how it ends ----------------------------------------------------------------------------------------------

    def _progress(self) -> None:
        """Progress that no event tells (e.g. files counted); called on every poll while the job runs."""

    def _progress_text(self) -> str:
        return f"{self.label}{self.done}/{self.total}"

    def _finish(self, code: int) -> None:
        """The engine exited with `code` and all its output was applied: set the outcome with `_end`."""
        raise NotImplementedError

    def _cancelled(self) -> None:
        """After `cancel()` stopped the engine; by default the engine's own last events say how it ended."""
        self._finish(self.engine.returncode)

    def _failure(self, code: int) -> str:
        """The engine's one-line report: its error event, else its last report line on stderr, else its last line."""
        if self.message:
            return engine_client.engine_message(self.message)
        lines = [line for line in self.log if line.strip()]
        reports = [line for line in lines if line.startswith(engine_client.REPORT_PREFIX)]
        tail = reports[-1] if reports else (lines[-1] if lines else f"engine exited with code {code}")
        return engine_client.engine_message(tail)

    def _end(self, status: str, message: str) -> None:
        self.status, self.message = status, message
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class FolderJob(EngineJob):
    """A job whose engine writes frame files into `part_dir` (each file atomically); `done` of `total` frames."""

    def _start_folder(self, folder: str) -> str:
        """Set `folder` and `part_dir`, and make `part_dir` an empty folder; returns it (call before __init__)."""
        self.folder = os.path.normpath(folder)
        self.part_dir = self.folder + PART_SUFFIX
        self._remove_parts()
        os.makedirs(self.part_dir)
        return self.part_dir

    def staging_dirs(self) -> list[str]:
        """The engine's own staging folders inside this job's: `<part_dir>.<pid>-<random>.part`."""
        return glob.glob(glob.escape(self.part_dir) + ".*" + PART_SUFFIX)

    def _remove_parts(self) -> None:
        for folder in [self.part_dir, *self.staging_dirs()]:
            shutil.rmtree(folder, ignore_errors=True)

    def _complete(self) -> bool:
        return self.done == self.total

    def _progress_text(self) -> str:
        return f"{self.label}{self.done}/{self.total} frames"

    def _finish(self, code: int) -> None:
        if code == 0 and self._complete():
            shutil.rmtree(self.folder, ignore_errors=True)
            os.replace(self.part_dir, self.folder)
            self._remove_parts()
            self._end("finished", f"{self.total} frames in {self.folder}")
            return
        self._remove_parts()
        self._end("failed", f"the engine wrote {self.done} of {self.total} frames" if code == 0 else self._failure(code))

    def _cancelled(self) -> None:
        self._remove_parts()
        self._end("cancelled", f"stopped after {self.done} of {self.total} frames")
