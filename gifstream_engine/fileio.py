"""Atomic file output: write to `<path>.part`, then rename, so readers never see a half-written file."""

from __future__ import annotations

import contextlib
import json
import os


@contextlib.contextmanager
def atomic_path(path: str):
    """Yields a temporary path to write; on success it replaces `path`, on failure it is removed."""
    tmp = path + ".part"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "wb"):
    """An open file that is flushed to disk (fsync) and renamed over `path` when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def write_json(path: str, data, indent: int | None = 1) -> None:
    with atomic_open(path, "w") as f:
        json.dump(data, f, indent=indent)
