"""Out-of-process rendering of the compositing layer (`gifstream render-layer --events`) into a folder of EXRs.

The engine writes into `<folder>.part` (each file atomically) and reports one progress event per frame; only a
complete render replaces `<folder>`, so a cancelled or failed job leaves the previous layer as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from . import engine_client
from .engine_process import EngineProcess

CAMERAS_FILE = "cameras.json"


class LayerJob:
    def __init__(self, python: str, sequence: str, cameras: dict, folder: str, prefix: str):
        self.sequence, self.folder, self.prefix, self.cameras = sequence, os.path.normpath(folder), prefix, cameras
        self.part_dir = self.folder + ".part"
        self.total = len(cameras["frames"])
        self.status, self.message, self.done = "running", "", 0
        self.log: list[str] = []
        self.result: dict | None = None
        shutil.rmtree(self.part_dir, ignore_errors=True)
        os.makedirs(self.part_dir)
        cameras_path = os.path.join(self.part_dir, CAMERAS_FILE)  # kept beside the EXRs: what they were rendered from
        with open(cameras_path, "w") as f:
            json.dump(cameras, f)
        self.engine = EngineProcess([python, "-m", engine_client.ENGINE_MODULE, "render-layer", sequence,
                                     "--cameras", cameras_path, "--out", self.part_dir, "--prefix", prefix, "--events"])

    def _apply(self, line: str) -> None:
        event = None
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = None
        if not isinstance(event, dict):
            if line.strip():
                self.log.append(line)
            return
        kind = event.get("type")
        if kind == "progress":
            self.done = int(event.get("step", self.done))
        elif kind == "result":
            self.result = event.get("data") or {}
        elif kind == "error":
            self.message = str(event.get("message", ""))
        elif kind == "log":
            self.log.append(str(event.get("message", "")))

    def poll(self) -> bool:
        """Apply the engine's output; returns True while it runs."""
        for _, line in self.engine.lines():
            self._apply(line)
        if self.status == "running" and self.engine.returncode is not None and self.engine.ended:
            for _, line in self.engine.lines():
                self._apply(line)
            self._finish(self.engine.returncode)
        return self.status == "running"

    def _finish(self, code: int) -> None:
        if code == 0 and self.result is not None and self.done == self.total:
            shutil.rmtree(self.folder, ignore_errors=True)
            os.replace(self.part_dir, self.folder)
            self.status, self.message = "finished", f"{self.total} frames in {self.folder}"
            return
        shutil.rmtree(self.part_dir, ignore_errors=True)
        self.status = "failed"
        if code == 0:
            self.message = f"the engine wrote {self.done} of {self.total} frames"
        elif not self.message:
            errors = [line for line in self.log if line.startswith("gifstream: ")]
            tail = errors[-1] if errors else (self.log[-1] if self.log else f"engine exited with code {code}")
            self.message = engine_client.engine_message(tail)

    def cancel(self) -> None:
        if self.status == "running":
            self.engine.stop()
            for _, line in self.engine.lines():
                self._apply(line)
            shutil.rmtree(self.part_dir, ignore_errors=True)
            self.status, self.message = "cancelled", f"stopped after {self.done} of {self.total} frames"

    def wait(self, interval: float = 0.2) -> None:
        while self.poll():
            time.sleep(interval)

    def status_line(self) -> str:
        if self.status == "running":
            return f"GIFStream: compositing layer {self.done}/{self.total} frames"
        return f"GIFStream: compositing layer {self.status}" + (f" - {self.message}" if self.message else "")
