"""Capture: the engine's one in-memory view of a multi-view video capture (cameras, timing, lazily decoded
frames), and the helpers the format readers share. Cameras follow the convention of `camera.py`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections import OrderedDict
from typing import Protocol, Sequence

import numpy as np

from .. import validate
from ..errors import CaptureError
from ..fileio import read_input
from ..frames import check_range
from .camera import Camera, Rig
from .footage import CameraFootage


class FrameSource(Protocol):
    """Decodes the frames of one camera. Frame indices are absolute in the source."""

    footage: str  # the file a viewer opens to show this camera's footage (a video, or the first image)

    def num_frames(self) -> int: ...

    def read(self, start: int, stop: int, width: int, height: int) -> np.ndarray:
        """uint8 frames (stop-start, height, width, 3) in RGB."""
        ...


def default_cache_bytes(fraction: float = 0.5) -> int:
    """`fraction` of the machine's physical memory: a GOP's frames of every camera stay decoded while it trains."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * fraction)
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): a GOP of an ordinary capture
        return 8 << 30


class FrameCache:
    """Least-recently-used cache of decoded camera footage (`CameraFootage`, one block of frames each), bounded
    in bytes (default: half the machine's memory)."""

    def __init__(self, max_bytes: int | None = None):
        self.max_bytes = default_cache_bytes() if max_bytes is None else max_bytes
        self._blocks: OrderedDict[tuple, CameraFootage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # cameras of a GOP load in threads

    def __getstate__(self) -> dict:  # a copy or a pickled capture starts with an empty cache of the same size
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_bytes"])

    def get(self, key: tuple) -> CameraFootage | None:
        with self._lock:
            block = self._blocks.get(key)
            if block is not None:
                self._blocks.move_to_end(key)
            return block

    def put(self, key: tuple, block: CameraFootage) -> None:
        with self._lock:
            self._drop(key)
            self._blocks[key] = block
            self._bytes += block.nbytes
            while self._bytes > self.max_bytes and len(self._blocks) > 1:
                _, old = self._blocks.popitem(last=False)
                self._bytes -= old.nbytes

    def _drop(self, key: tuple) -> None:
        old = self._blocks.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes

    def keep_only(self, keep) -> None:
        """Drop every block whose key `keep(key)` refuses."""
        with self._lock:
            for key in [k for k in self._blocks if not keep(k)]:
                self._drop(key)


@dataclasses.dataclass
class Capture:
    """A synchronised multi-view capture: cameras, timing and lazily decoded frames.

    `frame_offset`/`num_frames` select a window of the sources (a GOP or a user range);
    frame index 0 of the capture is source frame `frame_offset`.
    """

    format: str
    root: str
    cameras: list[Camera]
    fps: float
    num_frames: int
    sources: list[FrameSource]
    scene_bounds: np.ndarray  # (2, 3): min and max corner in world units
    points: np.ndarray | None = None  # (N, 3) sparse points shipped with the capture (SfM / dataset init)
    point_colors: np.ndarray | None = None  # (N, 3) uint8
    frame_offset: int = 0
    cache: FrameCache = dataclasses.field(default_factory=FrameCache)

    def __post_init__(self) -> None:
        if len(self.sources) != len(self.cameras):
            raise CaptureError(
                f"{self.root}: {len(self.cameras)} cameras but {len(self.sources)} frame sources"
            )
        if not self.cameras:
            raise CaptureError(f"{self.root}: the capture has no cameras")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise CaptureError(f"{self.root}: camera names are not unique: {names}")
        self.fps = validate.number(self.fps, f"{self.root}: fps", CaptureError, above=0.0, maximum=1000.0)
        self.scene_bounds = np.asarray(self.scene_bounds, dtype=np.float64).reshape(2, 3)

    # --- selection -------------------------------------------------------------------------
    def camera_index(self, name: str) -> int:
        for i, cam in enumerate(self.cameras):
            if cam.name == name:
                return i
        raise CaptureError(f"{self.root}: no camera named {name!r}; cameras are {[c.name for c in self.cameras]}")

    def split_indices(self, split: str) -> list[int]:
        return [i for i, c in enumerate(self.cameras) if c.split == split]

    def slice(self, start: int, stop: int) -> "Capture":
        """Frames [start, stop) of this capture as a new capture sharing the decoder cache."""
        check_range((start, stop), self.num_frames, "the capture's", self.root)
        return dataclasses.replace(self, num_frames=stop - start, frame_offset=self.frame_offset + start)

    def gops(self, gop_length: int) -> list["Capture"]:
        """Consecutive groups of pictures of at most `gop_length` frames."""
        if gop_length <= 0:
            raise CaptureError(f"GOP length must be positive, got {gop_length}")
        return [self.slice(s, min(s + gop_length, self.num_frames)) for s in range(0, self.num_frames, gop_length)]

    # --- frames ----------------------------------------------------------------------------
    def _block_key(self, cam_index: int) -> tuple:
        cam = self.cameras[cam_index]
        return (id(self.sources[cam_index]), self.frame_offset, self.num_frames, cam.width, cam.height)

    def footage(self, cam_index: int, into: np.ndarray | None = None) -> CameraFootage:
        """One camera's frames in this window (decoded once, then from the cache) and their motion.

        into: a (T, H, W, 3) uint8 array (e.g. a slot of a GOP's stack of cameras) that holds the frames from now
        on, so the cache keeps no second copy."""
        key = self._block_key(cam_index)
        footage = self.cache.get(key)
        if footage is None:
            footage = CameraFootage(self._decode(cam_index))
        if into is not None and footage.frames is not into:
            into[...] = footage.frames
            footage.frames = into
        self.cache.put(key, footage)
        return footage

    def _decode(self, cam_index: int) -> np.ndarray:
        cam = self.cameras[cam_index]
        block = self.sources[cam_index].read(self.frame_offset, self.frame_offset + self.num_frames, cam.width, cam.height)
        expected = (self.num_frames, cam.height, cam.width, 3)
        if block.shape != expected:
            raise CaptureError(f"{self.root}: camera {cam.name!r} decoded to shape {block.shape}, expected {expected}")
        return block

    def frames(self, cam_index: int) -> np.ndarray:
        """All frames of one camera in this window, uint8 (T, H, W, 3)."""
        return self.footage(cam_index).frames

    def release_other_cameras(self, keep: Sequence[int]) -> None:
        """Drop the decoded frames of this window's cameras other than `keep` (e.g. the test cameras, once seeding
        has read them)."""
        kept = {self._block_key(i) for i in keep}
        window = (self.frame_offset, self.num_frames)
        self.cache.keep_only(lambda key: key[1:3] != window or key in kept)

    def release_other_windows(self) -> None:
        """Drop the decoded frames of every other window (another GOP) from the shared cache."""
        window = (self.frame_offset, self.num_frames)
        self.cache.keep_only(lambda key: key[1:3] == window)

    def source_identity(self, cam_index: int, t: int) -> dict | None:
        """What names frame t of a camera on disk without decoding it (its file, size, modification time and frame
        index), or None when its source cannot say (then only its pixels identify it)."""
        identity = getattr(self.sources[cam_index], "identity", None)
        return None if identity is None else identity(self.frame_offset + t)

    def frame(self, cam_index: int, t: int) -> np.ndarray:
        """Frame t of one camera as float32 RGB in [0, 1], (H, W, 3)."""
        if not 0 <= t < self.num_frames:
            raise CaptureError(f"{self.root}: frame {t} is outside 0:{self.num_frames}")
        return self.frames(cam_index)[t].astype(np.float32) / 255.0

    def check_matches(self, cameras: Sequence[Camera], num_frames: int, what: str) -> None:
        """Refuse to compare `what` (a stream or run with these cameras and frames) with this capture unless the
        rigs agree: the same camera names, sizes, intrinsics and poses (to float32 precision) and frame count."""
        ours = {c.name: c for c in self.cameras}
        theirs = {c.name: c for c in cameras}
        if set(ours) != set(theirs):
            only_capture, only_other = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
            raise CaptureError(f"{self.root} does not match {what}: cameras only in the capture {only_capture}, "
                               f"only in {what} {only_other}")
        for name, cam in theirs.items():
            mine = ours[name]
            for field, a, b in (("size", (mine.width, mine.height), (cam.width, cam.height)), ("K", mine.K, cam.K),
                                ("w2c", mine.w2c, cam.w2c)):
                if np.shape(a) != np.shape(b) or not np.allclose(a, b, rtol=1e-4, atol=1e-4):
                    raise CaptureError(f"{self.root} does not match {what}: camera {name!r} has {field} "
                                       f"{np.asarray(a).tolist()} in the capture but {np.asarray(b).tolist()} in {what}")
        if self.num_frames != num_frames:
            raise CaptureError(f"{self.root} does not match {what}: the capture has {self.num_frames} frames, "
                               f"{what} {num_frames}")

    # --- description -----------------------------------------------------------------------
    def rig(self) -> Rig:
        """Frame rate, scene bounds and (downscaled) cameras: what a run and its bitstream keep of the capture."""
        return Rig(float(self.fps), self.scene_bounds, list(self.cameras))

    def info(self) -> dict:
        """The rig description printed by `gifstream capture info --json`: the rig, plus the layout, frame
        count, point count and each camera's footage."""
        rig = self.rig().to_json()
        return {
            "format": self.format,
            "root": self.root,
            "fps": rig["fps"],
            "num_frames": int(self.num_frames),
            "scene_bounds": rig["scene_bounds"],
            "num_points": 0 if self.points is None else int(len(self.points)),
            "cameras": [{**cam, "footage": getattr(src, "footage", None)} for cam, src in zip(rig["cameras"], self.sources)],
        }


MAX_JSON_BYTES = 256 << 20  # a capture's JSON (transforms.json, train_meta.json)


def read_json_object(path: str, what: str) -> dict:
    """A JSON object from `path`, or a CaptureError naming the file and what it should have been."""
    raw = read_input(path, what, CaptureError, MAX_JSON_BYTES)  # a regular file, bounded
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaptureError(f"unreadable {what} {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CaptureError(f"{path}: expected a JSON object ({what}), got {type(data).__name__}")
    return data


def bounds_from_points(points: np.ndarray, pad: float = 0.1, quantile: float = 0.01) -> np.ndarray:
    """Robust axis-aligned bounds (2, 3) of a point cloud, padded by `pad` of its extent."""
    lo = np.quantile(points, quantile, axis=0)
    hi = np.quantile(points, 1.0 - quantile, axis=0)
    extent = np.maximum(hi - lo, 1e-6)
    return np.stack([lo - pad * extent, hi + pad * extent])


def bounds_from_frusta(cameras: Sequence[Camera], near: float, far: float) -> np.ndarray:
    """Bounds (2, 3) of the volume between depths near and far seen by all cameras (frustum corners)."""
    corners = []
    for cam in cameras:
        pix = np.array([[0, 0, 1], [cam.width, 0, 1], [0, cam.height, 1], [cam.width, cam.height, 1]], float)
        rays = pix @ np.linalg.inv(cam.K).T
        c2w = cam.c2w
        for depth in (near, far):
            pts = rays * depth
            corners.append(pts @ c2w[:3, :3].T + c2w[:3, 3])
    corners = np.concatenate(corners)
    return np.stack([corners.min(0), corners.max(0)])


def invert_pose(c2w: np.ndarray, what: str) -> np.ndarray:
    """The 4x4 inverse of a camera-to-world pose, after checking that its rotation is orthonormal."""
    rot = c2w[:3, :3]
    if np.abs(rot @ rot.T - np.eye(3)).max() > 1e-3 or abs(np.linalg.det(rot) - 1.0) > 1e-3:
        raise CaptureError(f"{what}: the rotation is not orthonormal (det={np.linalg.det(rot):.4f})")
    return np.linalg.inv(c2w)
