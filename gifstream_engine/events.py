"""JSON-lines event protocol between the engine and its callers (the Blender add-on reads it).

Each line is one JSON object with at least `type` ("progress", "log", "result", "error") and `time`
(seconds since the epoch). Progress carries `stage`, `step`, `total`; results carry a `data` object;
errors carry `message`. Lines are flushed as written so a reader sees them at once.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO

EVENT_TYPES = ("progress", "log", "result", "error")


class EventWriter:
    """Writes events to a stream as JSON lines, or stays silent when disabled."""

    def __init__(self, stream: IO[str] | None = None, enabled: bool = True):
        self.stream = stream or sys.stdout
        self.enabled = enabled

    def emit(self, type: str, **fields) -> None:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}; expected one of {EVENT_TYPES}")
        if not self.enabled:
            return
        self.stream.write(json.dumps({"type": type, "time": time.time(), **fields}) + "\n")
        self.stream.flush()

    def progress(self, stage: str, step: int, total: int, **fields) -> None:
        self.emit("progress", stage=stage, step=step, total=total, **fields)

    def log(self, message: str) -> None:
        self.emit("log", message=message)

    def result(self, data: dict) -> None:
        self.emit("result", data=data)

    def error(self, message: str) -> None:
        self.emit("error", message=message)


def parse_event(line: str) -> dict | None:
    """One event from a line, or None for a line that is not an event (plain log output)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and event.get("type") in EVENT_TYPES else None
