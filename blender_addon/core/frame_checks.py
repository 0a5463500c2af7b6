"""Whether the frame files of a cache are whole: present, Gaussian PLYs, as long as their headers say, and (the
engine's frames) holding the vertex data whose CRC-32 their headers carry. Pure Python (no bpy).

The header checks read a file's first bytes and run where they are asked for. The body check reads the whole file
(~25 ms for 500k Gaussians), so a panel asks for it in the background (`wait=False`: one daemon thread verifies each
file once per (size, mtime), the panel shows what is known so far and how many files are left), while the farm
bundle and the compositing layer wait for every file. The proxy's node tree reads the files on its own: nothing here
runs when a frame changes or renders.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import zlib

from .sequence_files import PlyHeader, SequenceError, SequencePattern, check_gaussian_ply

CHUNK = 1 << 22  # bytes read at a time by the body check


@dataclasses.dataclass(frozen=True)
class FrameProblem:
    frame: int  # stream frame
    message: str  # names the file and what is wrong
    shows_empty: bool  # the Import PLY node reads nothing from it (else it draws the damaged values as they are)


@dataclasses.dataclass(frozen=True)
class FrameReport:
    problems: tuple[FrameProblem, ...]
    unchecked: int  # frames whose body check has not finished yet (only when not waited for)


def check_frame_file(path: str) -> PlyHeader:
    """`check_gaussian_ply`, and for a missing file or one shorter than its header says (a truncated write or
    copy) a `SequenceError` naming it: a frame the proxy would show empty."""
    if not os.path.isfile(path):
        raise SequenceError(f"{os.path.basename(path)} is missing")
    header = check_gaussian_ply(path)
    actual = os.path.getsize(path)
    if header.size is not None and actual < header.size:
        raise SequenceError(f"{path}: truncated: {actual} of the {header.size} bytes its header says")
    return header


def body_problem(path: str, header: PlyHeader) -> str:
    """'' when the vertex data matches the CRC-32 in the header (or the header carries none), else the problem."""
    if header.body_crc32 is None or header.size is None:
        return ""
    crc, left = 0, header.size - header.body_start
    try:
        with open(path, "rb") as f:
            f.seek(header.body_start)
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                crc, left = zlib.crc32(chunk, crc), left - len(chunk)
    except OSError as exc:
        return f"{path}: cannot be read ({exc.strerror})"
    if crc != header.body_crc32:
        return (f"{path}: damaged: its vertex data does not match the CRC-32 in its header ({crc:08x}, header "
                f"{header.body_crc32:08x}), changed after the engine wrote it; the proxy draws it as it is")
    return ""


class _Checks:
    """Results by (path, mtime, size), so a file is read again only when it changed; bodies checked by one daemon
    thread (started on first use) or, when waited for, by the caller."""

    def __init__(self):
        self.headers: dict[tuple, tuple[PlyHeader | None, str]] = {}
        self.bodies: dict[tuple, str] = {}
        self.queued: set[tuple] = set()
        self.lock = threading.Lock()
        self.todo: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None

    def header(self, key: tuple) -> tuple[PlyHeader | None, str]:
        if key not in self.headers:
            try:
                self.headers[key] = (check_frame_file(key[0]), "")
            except SequenceError as exc:
                self.headers[key] = (None, str(exc))
        return self.headers[key]

    def body(self, key: tuple, header: PlyHeader, wait: bool) -> str | None:
        """The body check's result; None while it is still queued (`wait=False`)."""
        with self.lock:
            if key in self.bodies:
                return self.bodies[key]
            if not wait:
                if key not in self.queued:
                    self.queued.add(key)
                    self.todo.put((key, header))
                    self._start()
                return None
        result = body_problem(key[0], header)
        with self.lock:
            self.bodies[key] = result
        return result

    def _start(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._work, name="gifstream frame checks", daemon=True)
            self.thread.start()

    def _work(self) -> None:
        while True:
            key, header = self.todo.get()
            result = body_problem(key[0], header)
            with self.lock:
                self.bodies[key] = result
                self.queued.discard(key)
            self.todo.task_done()

    def busy(self) -> bool:
        with self.lock:
            return bool(self.queued)

    def drain(self) -> None:
        """Wait until every queued body check has finished (tests)."""
        self.todo.join()


_CHECKS = _Checks()


def frame_problems(pattern: SequencePattern, wait: bool = True) -> FrameReport:
    """Every frame of the sequence that is missing or damaged (`check_frame_file`; with its header's CRC-32, a body
    that does not match it). Cheap to repeat (a panel's redraw): each file is read again only when it changed.
    `wait=False` leaves the body checks not yet done to the background and counts them as unchecked."""
    problems, unchecked = [], 0
    for t in range(pattern.count):
        path = pattern.path(t)
        try:
            stat = os.stat(path)
        except OSError:
            problems.append(FrameProblem(t, f"{pattern.filename(t)} is missing", True))
            continue
        key = (path, stat.st_mtime_ns, stat.st_size)
        header, problem = _CHECKS.header(key)
        if problem:
            problems.append(FrameProblem(t, problem, True))
            continue
        body = _CHECKS.body(key, header, wait)
        if body is None:
            unchecked += 1
        elif body:
            problems.append(FrameProblem(t, body, False))
    return FrameReport(tuple(problems), unchecked)


def checking() -> bool:
    """Whether body checks are still queued in the background."""
    return _CHECKS.busy()


def wait_for_background_checks() -> None:
    _CHECKS.drain()
