"""Out-of-process decoding of a `.gifs` into a cache folder of per-frame PLYs (`gifstream decode --format ply`).

The engine writes into `<cache>.part` (each file atomically; the engine stages them in a folder of its own,
`<cache>.part.<pid>-<random>.part`, renamed to `<cache>.part` when whole); progress is the count of frame files in
either; only a complete decode is renamed to `<cache>`, so a cancelled or failed job leaves no half-filled cache.
"""

from __future__ import annotations

import os
import re

from .engine_job import FolderJob
from .sequence_files import ENGINE_DIGITS, ENGINE_PREFIX, SequencePattern, engine_pattern

_FRAME_FILE = re.compile(rf"^{re.escape(ENGINE_PREFIX)}\d{{{ENGINE_DIGITS}}}\.ply$")


class DecodeJob(FolderJob):
    events = False  # `gifstream decode` prints no events: progress is the frame files written
    label = "decode "

    def __init__(self, python: str, stream: str, cache_dir: str, num_frames: int):
        self.stream = stream
        part_dir = self._start_folder(cache_dir)
        super().__init__(python, ["decode", stream, "--format", "ply", "--out", part_dir], num_frames)

    @property
    def cache_dir(self) -> str:
        return self.folder

    @property
    def pattern(self) -> SequencePattern:
        return engine_pattern(self.folder, self.total)

    def _progress(self) -> None:
        done = 0
        for folder in [self.part_dir, *self.staging_dirs()]:
            try:
                done += sum(1 for name in os.listdir(folder) if _FRAME_FILE.match(name))
            except OSError:  # renamed or removed meanwhile
                continue
        self.done = min(done, self.total)

    def _progress_text(self) -> str:
        return f"decoding {os.path.basename(self.stream)} {self.done}/{self.total} frames"
