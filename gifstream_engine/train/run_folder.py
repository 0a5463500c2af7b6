"""A run folder's rules: one writer at a time, a run is never replaced without --resume or --overwrite, and its
files are read safely (JSON checked field by field, tensors with `torch.load(weights_only=True)`: no code runs).

The lock is `RUN/.gifstream.lock` held with flock: the kernel drops it when its process ends in any way (a crash
or kill -9 included), so it never stays stuck; the holder removes the file when it is done.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import os
import shutil

from .. import validate
from ..capture.types import Camera
from ..errors import CaptureError, RunError

LOCK = ".gifstream.lock"
CONFIG = "config.json"
EVAL = "eval.json"
GOP_GLOB = "gop_[0-9][0-9][0-9]"


def holds_run(folder: str) -> bool:
    """Whether `folder` holds (part of) a training run."""
    return os.path.isfile(os.path.join(folder, CONFIG)) or bool(glob.glob(os.path.join(folder, GOP_GLOB)))


@contextlib.contextmanager
def locked(folder: str, purpose: str):
    """Hold the folder's lock for the block, or raise RunError naming the process that holds it."""
    path = os.path.join(folder, LOCK)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunError(f"cannot lock run folder {folder}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunError(f"{folder} is in use by another gifstream process ({holder or 'unknown'}; lock {path}); "
                               "wait for it to finish or stop it") from exc
            raise RunError(f"cannot lock run folder {folder}: {exc.strerror or exc}") from exc
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a lock file its previous holder removed while we waited to open it
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} {purpose}".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""


def claim(folder: str, resume: bool, overwrite: bool) -> None:
    """Before training into `folder` (lock held): refuse to replace a run unless asked; --overwrite removes the old
    run's own files (config, eval, GOP folders), nothing else."""
    if not holds_run(folder) or resume:
        return
    if not overwrite:
        raise RunError(f"{folder} already holds a training run ({', '.join(_run_files(folder))}); "
                       "pass --resume to continue it or --overwrite to replace it")
    for name in _run_files(folder):
        path = os.path.join(folder, name)
        try:
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except OSError as exc:
            raise RunError(f"--overwrite: cannot remove {path}: {exc.strerror or exc}") from exc


def _run_files(folder: str) -> list[str]:
    names = [n for n in (CONFIG, EVAL) if os.path.exists(os.path.join(folder, n))]
    return names + sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, GOP_GLOB)))


@contextlib.contextmanager
def training_claim(folder: str, resume: bool, overwrite: bool):
    """The lock and the overwrite rule together: what a trainer holds while it writes into `folder`."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create run folder {folder}: {exc.strerror or exc}") from exc
    with locked(folder, "training"):
        claim(folder, resume, overwrite)
        yield


def read_saved(folder: str) -> dict:
    """RUN/config.json as saved by the trainer: an object with `config` (validated later) and `capture`."""
    path = os.path.join(folder, CONFIG)
    if not os.path.isfile(path):
        raise RunError(f"{folder} is not a training run: no {CONFIG}")
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path} is damaged: {exc}; expected the JSON the trainer writes") from exc
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict) or not isinstance(saved.get("capture"), str):
        raise RunError(f"{path} is damaged: expected an object with 'config' (an object) and 'capture' (a path)")
    rig = saved.get("rig")
    if rig is not None:  # what encode and render take the cameras and frame rate from
        rig = validate.mapping(rig, f"{path}: rig", RunError)
        validate.number(validate.field(rig, "fps", f"{path}: rig", RunError), f"{path}: rig.fps", RunError, above=0.0)
        validate.array(validate.field(rig, "scene_bounds", f"{path}: rig", RunError), f"{path}: rig.scene_bounds", RunError,
                       (2, 3))
        for i, cam in enumerate(validate.sequence(validate.field(rig, "cameras", f"{path}: rig", RunError),
                                                  f"{path}: rig.cameras", RunError, min_length=1)):
            try:
                Camera.from_json(cam)
            except CaptureError as exc:
                raise RunError(f"{path}: rig.cameras[{i}]: {exc}") from exc
    return saved
