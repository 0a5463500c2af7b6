"""Atomic file output: write to a temporary file of the writer's own beside `path` (`<path>.<pid>-<random>.part`),
then rename, so readers never see a half-written file and two writers of one path (Ray workers, a retry) never
share a temporary; output paths checked before work starts; OS errors while writing (disk full, permissions)
become one OutputError."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile

from .errors import OutputError


PART_SUFFIX = ".part"


def _reserve_temporary(path: str) -> str:
    """Create (exclusively, with the mode a plain `open` would give under the umask) and return an empty file
    named after `path` that no other writer holds."""
    for _ in range(100):
        tmp = f"{path}.{os.getpid()}-{secrets.token_hex(4)}{PART_SUFFIX}"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


@contextlib.contextmanager
def atomic_path(path: str):
    """Yields a temporary path of this writer's own to write; on success it replaces `path`, on failure it is
    removed."""
    tmp = None
    try:
        tmp = _reserve_temporary(path)
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)
        if isinstance(exc, OSError):  # disk full, no permission, a vanished folder: what was written before stays
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
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


def output_dir(path: str, what: str = "output folder") -> str:
    """Make sure `path` is a folder this process can write into, creating it (and missing parents); else OutputError.
    Called before any work starts, so that a bad --out fails at once."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"{what} {path} is a file; expected a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {what} {path}: {exc.strerror or exc}") from exc
    _probe(path, f"{what} {path}")
    return path


def output_file(path: str, what: str = "output file") -> str:
    """Make sure `path` can be written as a file: not a folder, its folder created and writable; else OutputError."""
    if os.path.isdir(path):
        raise OutputError(f"{what} {path} is a folder; expected a file name")
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise OutputError(f"{what} {path}: {parent} is a file; expected a folder")
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder of {what} {path}: {exc.strerror or exc}") from exc
    _probe(parent, f"the folder {parent} of {what} {path}")
    return path


def _probe(folder: str, label: str) -> None:
    """Create and remove a file in `folder`: the one test of writability that holds on every file system."""
    try:
        fd, name = tempfile.mkstemp(prefix=".gifstream-probe-", dir=folder)
        os.close(fd)
        os.remove(name)
    except OSError as exc:
        raise OutputError(f"{label} is not writable: {exc.strerror or exc}") from exc
