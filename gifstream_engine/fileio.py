"""Files in and out, by one rule each.

Output: write to a temporary file of the writer's own beside `path` (`<path>.<pid>-<random>.part`), fsync, then
rename, so readers never see a half-written file and two writers of one path (Ray workers, a retry) never share a
temporary; output paths checked before work starts; OS errors while writing (disk full, I/O error, permissions; at
write, fsync or close) become one OutputError naming the path, and nothing is renamed into place. What an output
never replaces: a device, FIFO or socket (refused: `output_target`), a symbolic link (written through: its target is
replaced atomically, the link stays), one of the command's own inputs (refused: `Input`). A multi-file output
(`staged_dir`) is written into a folder of its own, `<folder>.<pid>-<random>.part`, put in place only when whole.

Input: what a command reads is a regular file (or the folder it expects), of at most the size its format allows,
checked before reading (`input_file`, `read_input`): a device, FIFO or socket is refused, never read (it could
block or never end)."""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import json
import os
import secrets
import shutil
import stat
import tempfile

from .conventions import PART_SUFFIX
from .errors import GIFStreamError, OutputError


def kind_of(mode: int) -> str:
    """What a stat mode is, in words: "a regular file", "a folder", "a character device", ..."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


# --- output ----------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Input:
    """Something a command reads, so that none of its outputs replaces it: a file (`owns` None), or a folder and what
    in it belongs to it: `owns` = glob patterns of its top-level entries (a run: config.json, gop_XXX, ...; everything
    below a matching folder), or ("",) = every file already in it (a capture)."""

    path: str
    what: str  # "the run folder", "the bitstream", ...: how the message names it
    owns: tuple[str, ...] | None = None

    EXISTING = ("",)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_inputs(path: str, what: str, inputs=(), folder: bool = False) -> None:
    """OutputError when writing `path` (a file, or with `folder` a folder to write files into) would replace one of
    the command's `inputs` or a file a folder among them owns."""
    real = os.path.realpath(path)
    via = f" (a link to {real})" if os.path.islink(path) else ""
    for given in inputs:
        if given.owns is None:
            if _same_file(path, given.path) or real == os.path.realpath(given.path):
                raise OutputError(f"{what} {path}{via} is {given.what} {given.path}, which this command reads; "
                                  f"write the output elsewhere")
            continue
        base = os.path.realpath(given.path)
        relative = os.path.relpath(real, base)
        if relative == os.curdir or relative.split(os.sep)[0] == os.pardir:
            continue  # the folder itself (new files go beside its own) or outside it
        if given.owns == Input.EXISTING:
            owned = not folder and os.path.isfile(real)
        else:
            owned = any(fnmatch.fnmatchcase(relative.split(os.sep)[0], pattern) for pattern in given.owns)
        if owned:
            raise OutputError(f"{what} {path}{via} is {'inside' if folder else 'a file of'} {given.what} "
                              f"{given.path}, which this command reads: writing there would replace its own files; "
                              f"write the output elsewhere")


def output_target(path: str, what: str = "output file") -> str:
    """The file that writing `path` replaces: `path`, or where the symbolic link at `path` leads (a link is written
    through: its target is replaced, the link stays). OutputError when that is a device, FIFO or socket (never
    replaced, never written into) or cannot be examined (a link loop)."""
    target = os.path.realpath(path) if os.path.islink(path) else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise OutputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        via = f" (a link to {target})" if target != path else ""
        raise OutputError(f"{what} {path}{via} is {kind_of(mode)}, not a regular file; it is never replaced or "
                          f"written into: give a file name")
    return target


def _create_empty_file(path: str) -> None:
    """Exclusively, with the mode a plain `open` would give under the umask; FileExistsError if it exists."""
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))


def _reserve_temporary(path: str, create=_create_empty_file) -> str:
    """Create with `create` (an empty file, or `os.mkdir` for a folder) and return a temporary named after `path`,
    `<path>.<pid>-<random>.part`, that no other writer holds."""
    for _ in range(100):
        tmp = f"{path}.{os.getpid()}-{secrets.token_hex(4)}{PART_SUFFIX}"
        try:
            create(tmp)
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _require_folder(path: str, what: str) -> None:
    """OutputError when something other than a folder exists at `path` (saying what it is)."""
    if os.path.exists(path) and not os.path.isdir(path):
        mode = os.stat(path).st_mode
        raise OutputError(f"{what} {path} is {'a file' if stat.S_ISREG(mode) else kind_of(mode)}; expected a folder")


def _fsync(path: str) -> None:
    """The file at `path` on disk (a writer that closed it itself may not have synced it); errors raised."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str):
    """Yields a temporary path of this writer's own to write; on success it is synced to disk and replaces `path`
    (or, when `path` is a symbolic link, the file the link leads to), on failure it is removed and `path` left as it
    was. A device, FIFO or socket at `path` is refused (`output_target`)."""
    target = output_target(path)
    tmp = None
    try:
        tmp = _reserve_temporary(target)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)
        if isinstance(exc, OSError):  # disk full, I/O error, no permission, a vanished folder: what was there stays
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "wb"):
    """An open file that is flushed to disk (fsync) and renamed over `path` when the block succeeds; an error at
    write, fsync or close leaves `path` as it was."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:  # atomic_path syncs the file once it is closed
        yield f


@contextlib.contextmanager
def staged_dir(path: str, what: str = "output folder", inputs=()):
    """A multi-file output: yields a folder of this writer's own, `<path>.<pid>-<random>.part`, to write the files
    into; when the block succeeds they are put in place -- the folder renamed to `path` when `path` is new or empty,
    else each file moved into `path` (replacing files of the same name) -- and on failure or interruption the
    folder is removed and `path` left as it was. So a folder of frames is whole, or absent, or as it was; a
    `.part` folder is one still being written (or left by a killed writer)."""
    path = os.path.normpath(path)
    target = os.path.realpath(path) if os.path.islink(path) else path
    _require_folder(target, what)
    refuse_inputs(path, what, inputs, folder=True)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        stage = _reserve_temporary(target, os.mkdir)
    except OSError as exc:
        raise OutputError(f"cannot create {what} {path}: {exc.strerror or exc}") from exc
    try:
        yield stage
        _put_in_place(stage, target)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
        raise


def _put_in_place(stage: str, target: str) -> None:
    try:
        os.rename(stage, target)  # a new or empty folder: replaced whole, at once
        return
    except OSError:
        if not os.path.isdir(target):
            raise
    for name in sorted(os.listdir(stage)):  # a folder holding other files: each file moved in, whole
        os.replace(os.path.join(stage, name), os.path.join(target, name))
    os.rmdir(stage)


def write_json(path: str, data, indent: int | None = 1) -> None:
    with atomic_open(path, "w") as f:
        json.dump(data, f, indent=indent)


def output_dir(path: str, what: str = "output folder", inputs=()) -> str:
    """Make sure `path` is a folder this process can write into, creating it (and missing parents); else OutputError.
    Called before any work starts, so that a bad --out fails at once. `inputs`: what the command reads (`Input`),
    which the folder must not belong to."""
    _require_folder(path, what)
    refuse_inputs(path, what, inputs, folder=True)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {what} {path}: {exc.strerror or exc}") from exc
    _probe(path, f"{what} {path}")
    return path


def output_file(path: str, what: str = "output file", inputs=()) -> str:
    """Make sure `path` can be written as a file: not a folder, a device, FIFO or socket, nor one of the command's
    `inputs` (`Input`); its folder created and writable; else OutputError."""
    if os.path.isdir(path):
        raise OutputError(f"{what} {path} is a folder; expected a file name")
    target = output_target(path, what)
    refuse_inputs(path, what, inputs)
    parent = os.path.dirname(os.path.abspath(target))
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


# --- input -----------------------------------------------------------------------------------------------------

def _check_input(mode: int, size: int, path: str, what: str, error: type[GIFStreamError],
                 max_bytes: int | None) -> None:
    if stat.S_ISDIR(mode):
        raise error(f"{what} {path} is a folder; expected a file")
    if not stat.S_ISREG(mode):
        raise error(f"{what} {path} is {kind_of(mode)}, not a regular file; it is not read (it could block or "
                    f"never end)")
    if max_bytes is not None and size > max_bytes:
        raise error(f"{what} {path} is {size} bytes; at most {max_bytes} bytes ({max_bytes / 2**20:g} MiB) are "
                    f"accepted")


def input_file(path: str, what: str, error: type[GIFStreamError], max_bytes: int | None = None) -> int:
    """The size of `path` once checked to be a regular file (links followed) of at most `max_bytes`; else `error`
    naming the file and what it is. For readers that open the file themselves (a library's reader)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    _check_input(st.st_mode, st.st_size, path, what, error, max_bytes)
    return st.st_size


def read_input(path: str, what: str, error: type[GIFStreamError], max_bytes: int) -> bytes:
    """The bytes of the regular file `path`, of at most `max_bytes`, checked on the open file before reading (a FIFO
    is opened without waiting for a writer, and refused); else `error`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        _check_input(st.st_mode, st.st_size, path, what, error, max_bytes)
        os.set_blocking(fd, True)
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 24, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if total > max_bytes:  # it grew while read
        raise error(f"{what} {path} is over {max_bytes} bytes; at most {max_bytes} are accepted")
    return b"".join(chunks)


def npy_array(raw: bytes):
    """The array of a .npy file's bytes, its header checked against the bytes that follow before anything is
    allocated (a header cannot ask for more than the file holds); ValueError for anything else, Python objects
    (pickles) included."""
    import io

    import numpy as np

    f = io.BytesIO(raw)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not read")
    if dtype.hasobject:
        raise ValueError("the array holds Python objects (a pickle), which are not loaded")
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need != len(raw) - f.tell():
        raise ValueError(f"its header describes a {shape} array of {dtype} ({need} bytes) but {len(raw) - f.tell()} "
                         f"bytes follow it")
    return np.load(io.BytesIO(raw), allow_pickle=False)
