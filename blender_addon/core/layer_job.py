"""Out-of-process rendering of the compositing layer (`gifstream render-layer --events`) into a folder of EXRs.

The engine writes into `<folder>.part` (each file atomically) and reports one progress event per frame; only a
complete render replaces `<folder>`, so a cancelled or failed job leaves the previous layer as it was.
"""

from __future__ import annotations

import json
import os

from .engine_job import FolderJob

CAMERAS_FILE = "cameras.json"


class LayerJob(FolderJob):
    label = "compositing layer "

    def __init__(self, python: str, sequence: str, cameras: dict, folder: str, prefix: str):
        self.sequence, self.prefix, self.cameras = sequence, prefix, cameras
        part_dir = self._start_folder(folder)
        cameras_path = os.path.join(part_dir, CAMERAS_FILE)  # kept beside the EXRs: what they were rendered from
        with open(cameras_path, "w") as f:
            json.dump(cameras, f)
        super().__init__(python, ["render-layer", sequence, "--cameras", cameras_path, "--out", part_dir,
                                  "--prefix", prefix, "--events"], len(cameras["frames"]))

    def _complete(self) -> bool:
        return self.result is not None and super()._complete()
