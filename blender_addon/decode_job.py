"""Out-of-process decoding of a `.gifs` into a cache folder of per-frame PLYs (`gifstream decode --format ply`).

The engine writes into `<cache>.part` (each file atomically); progress is the count of finished frame files;
only a complete decode is renamed to `<cache>`, so a cancelled or failed job leaves no half-filled cache.
"""

from __future__ import annotations

import os
import re
import shutil
import time

from . import engine_client
from .conventions import ERROR_PREFIX
from .engine_process import EngineProcess
from .sequence_files import ENGINE_DIGITS, ENGINE_PREFIX, SequencePattern, engine_pattern

_FRAME_FILE = re.compile(rf"^{re.escape(ENGINE_PREFIX)}\d{{{ENGINE_DIGITS}}}\.ply$")


class DecodeJob:
    def __init__(self, python: str, stream: str, cache_dir: str, num_frames: int):
        self.stream, self.cache_dir, self.total = stream, os.path.normpath(cache_dir), num_frames
        self.part_dir = self.cache_dir + ".part"
        shutil.rmtree(self.part_dir, ignore_errors=True)
        os.makedirs(os.path.dirname(self.part_dir) or ".", exist_ok=True)
        self.status, self.message, self.done = "running", "", 0
        self.log: list[str] = []
        self.engine = EngineProcess([python, "-m", engine_client.ENGINE_MODULE, "decode", stream,
                                     "--format", "ply", "--out", self.part_dir])

    def poll(self) -> bool:
        """Collect output and progress; returns True while the engine runs."""
        self.log.extend(line for _, line in self.engine.lines() if line.strip())
        if self.status != "running":
            return False
        if os.path.isdir(self.part_dir):
            self.done = sum(1 for name in os.listdir(self.part_dir) if _FRAME_FILE.match(name))
        if self.engine.returncode is not None:
            self.log.extend(line for _, line in self.engine.lines() if line.strip())
            self._finish(self.engine.returncode)
        return self.status == "running"

    def _finish(self, code: int) -> None:
        if code == 0 and self.done == self.total:
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            os.replace(self.part_dir, self.cache_dir)
            self.status, self.message = "finished", f"{self.total} frames in {self.cache_dir}"
            return
        shutil.rmtree(self.part_dir, ignore_errors=True)
        if code == 0:
            self.status, self.message = "failed", f"the engine wrote {self.done} of {self.total} frames"
        else:
            self.status = "failed"
            errors = [line for line in self.log if line.startswith(ERROR_PREFIX)]
            tail = errors[-1] if errors else (self.log[-1] if self.log else f"engine exited with code {code}")
            self.message = tail.removeprefix(ERROR_PREFIX)

    def cancel(self) -> None:
        if self.status == "running":
            self.engine.stop()
            self.log.extend(line for _, line in self.engine.lines() if line.strip())
            shutil.rmtree(self.part_dir, ignore_errors=True)
            self.status, self.message = "cancelled", f"stopped after {self.done} of {self.total} frames"

    def wait(self, interval: float = 0.2) -> None:
        while self.poll():
            time.sleep(interval)

    @property
    def pattern(self) -> SequencePattern:
        return engine_pattern(self.cache_dir, self.total)

    def status_line(self) -> str:
        if self.status == "running":
            return f"GIFStream: decoding {os.path.basename(self.stream)} {self.done}/{self.total} frames"
        return f"GIFStream: decode {self.status}" + (f" - {self.message}" if self.message else "")
