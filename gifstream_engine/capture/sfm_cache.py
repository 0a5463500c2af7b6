"""On-disk cache of one frame's SfM points, keyed by what the triangulation reads.

Triangulating a frame (SIFT, exhaustive matching, COLMAP's triangulator) costs seconds per frame and the
preview seeds from every frame of the GOP, so a second run on the same capture (another preset, a `--set`,
a test) would redo minutes of identical work. The key hashes, for every camera, what names that frame on disk (its
file's path, size and modification time and the frame's index: nothing is decoded to build a key; a source that
cannot name its files is keyed by the frame's pixels), its intrinsics, pose, size and split, and the
triangulation's options, so a changed capture never hits a stale entry.
Entries are written atomically (`fileio.atomic_open`: a temporary file of the writer's own, renamed); an unreadable one is recomputed and replaced. The folder is
`$GIFSTREAM_CACHE/sfm` (default `$XDG_CACHE_HOME/gifstream/sfm`, else `~/.cache/gifstream/sfm`);
`GIFSTREAM_CACHE=off` turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import numpy as np

from ..fileio import atomic_open
from .types import Capture

FORMAT = "gifstream-sfm-cache-2"  # bump when the triangulation or this file's layout changes what a key means


def cache_folder() -> str | None:
    """Where entries live, or None when the cache is off."""
    root = os.environ.get("GIFSTREAM_CACHE")
    if root is not None and root.strip().lower() in ("off", "0", "none", ""):
        return None
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "gifstream")
    return os.path.join(root, "sfm")


def frame_key(capture: Capture, frame: int, options: dict) -> str:
    """Hex digest of everything triangulating `frame` depends on."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "frame_options": options}, sort_keys=True).encode())
    for i, cam in enumerate(capture.cameras):
        h.update(json.dumps([cam.name, cam.width, cam.height, cam.split]).encode())
        for array in (cam.K, cam.w2c, cam.distortion if cam.distortion is not None else np.zeros(0)):
            h.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        identity = capture.source_identity(i, frame)
        if identity is not None:
            h.update(json.dumps(identity, sort_keys=True).encode())
        else:
            h.update(np.ascontiguousarray(capture.frames(i)[frame]).tobytes())
    return h.hexdigest()


def read_entry(key: str) -> dict | None:
    """The arrays ({name: np.ndarray}) of the entry for `key`, or None when there is none, it is unreadable (it is
    then recomputed and replaced), or the cache is off."""
    folder = cache_folder()
    path = os.path.join(folder, f"{key}.npz") if folder is not None else None
    if path is None or not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as entry:
            return {name: entry[name] for name in entry.files}
    except Exception as exc:  # truncated or damaged (a bad zip, a missing array): recompute and replace it
        warnings.warn(f"SfM cache entry {path} is unreadable ({exc}); triangulating again")
        return None


def write_entry(key: str, arrays: dict) -> None:
    """Store `arrays` as the entry for `key` (nothing when the cache is off); a cache that cannot be written is a
    warning, never the failure of the run that computed the points."""
    folder = cache_folder()
    if folder is None:
        return
    path = os.path.join(folder, f"{key}.npz")
    try:
        os.makedirs(folder, exist_ok=True)
        with atomic_open(path) as f:  # runs on the same capture (Ray workers, a retry) may write one key at once
            np.savez(f, **arrays)
    except Exception as exc:  # a read-only or full cache folder must not fail the run that computed the points
        warnings.warn(f"cannot write the SfM cache entry {path} ({exc}); continuing without caching it")
