"""Panoptic Sports as released by Dynamic 3D Gaussians.

`train_meta.json` / `test_meta.json`: w, h, and per time step lists over cameras of k (3x3),
w2c (4x4, OpenCV), fn (image path under `ims/`) and cam_id. `init_pt_cld.npz` holds `data`
(N, 7): xyz, rgb in [0, 1], segmentation. The dataset is 30 fps.
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np

from .. import validate
from ..errors import CaptureError
from ..fileio import npy_array, read_input
from .camera import Camera
from .types import Capture, bounds_from_frusta, bounds_from_points, read_json_object
from .video import ImageSequenceSource, check_equal_lengths

PANOPTIC_FPS = 30.0
MAX_POINTS_BYTES = 1 << 30  # init_pt_cld.npz, and its 'data' array once expanded
_META_KEYS = ("w", "h", "k", "w2c", "fn", "cam_id")


def is_panoptic(root: str) -> bool:
    return os.path.isfile(os.path.join(root, "train_meta.json"))


def _load_meta(path: str) -> dict:
    meta = read_json_object(path, "Panoptic metadata")
    missing = [k for k in _META_KEYS if k not in meta]
    if missing:
        raise CaptureError(f"{path}: missing keys {missing}; expected {list(_META_KEYS)}")
    for key in ("fn", "k", "w2c", "cam_id"):  # per time step, a list over cameras
        steps = validate.sequence(meta[key], f"{path}: '{key}' (one entry per time step)", CaptureError, min_length=1)
        for t, entry in enumerate(steps):
            validate.sequence(entry, f"{path}: '{key}' at time step {t} (one entry per camera)", CaptureError, min_length=1)
    steps = len(meta["fn"])
    for key in ("k", "w2c", "cam_id"):
        if len(meta[key]) != steps:
            raise CaptureError(f"{path}: '{key}' has {len(meta[key])} time steps but 'fn' has {steps}")
    for key in ("w", "h"):
        validate.number(meta[key], f"{path}: '{key}'", CaptureError, integer=True, minimum=1)
    return meta


def _cameras_of(meta: dict, path: str, split: str, root: str, downscale: float):
    width, height = int(meta["w"]), int(meta["h"])
    cameras, sources = [], []
    for c, cam_id in enumerate(meta["cam_id"][0]):
        cam_id = validate.number(cam_id, f"{path}: 'cam_id' entry {c} at time step 0", CaptureError, integer=True, minimum=0)
        name = f"cam{cam_id:02d}"
        try:
            K = validate.array(meta["k"][0][c], f"{path}: 'k' of camera {cam_id} at time step 0", CaptureError, (3, 3))
            w2c = validate.array(meta["w2c"][0][c], f"{path}: 'w2c' of camera {cam_id} at time step 0", CaptureError, (4, 4))
        except IndexError as exc:
            raise CaptureError(f"{path}: camera {cam_id} has no k/w2c entry at time 0") from exc
        images = []
        for t, fns in enumerate(meta["fn"]):
            if c >= len(fns):
                raise CaptureError(f"{path}: time step {t} lists {len(fns)} images, expected {len(meta['cam_id'][0])}")
            images.append(os.path.join(root, "ims", validate.text(fns[c], f"{path}: 'fn' entry {c} at time step {t}",
                                                                  CaptureError)))
        cam = Camera(name, width, height, K, w2c, split=split)
        cameras.append(cam.scaled(downscale) if downscale != 1 else cam)
        sources.append(ImageSequenceSource(images, f"{root} camera {name}"))
    return cameras, sources


def read_panoptic(root: str, downscale: float = 1.0) -> Capture:
    cameras, sources = [], []
    for split, filename in (("train", "train_meta.json"), ("test", "test_meta.json")):
        path = os.path.join(root, filename)
        if split == "test" and not os.path.isfile(path):
            continue
        cams, srcs = _cameras_of(_load_meta(path), path, split, root, downscale)
        cameras += cams
        sources += srcs
    num_frames = check_equal_lengths(sources, [c.name for c in cameras], root)
    points = colors = None
    init_path = os.path.join(root, "init_pt_cld.npz")
    if os.path.isfile(init_path):
        raw = read_input(init_path, "point file", CaptureError, MAX_POINTS_BYTES)  # a regular file, bounded
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                member = archive.getinfo("data.npy")
                if member.file_size > MAX_POINTS_BYTES:  # what the archive says it expands to, checked before
                    raise ValueError(f"'data' expands to {member.file_size} bytes, at most {MAX_POINTS_BYTES} are read")
                data = npy_array(archive.read(member))
        except (OSError, KeyError, ValueError, EOFError, AttributeError, TypeError, zipfile.BadZipFile) as exc:
            raise CaptureError(f"{init_path}: expected an npz with a 'data' array (N, 7): {exc or type(exc).__name__}") from exc
        data = validate.array(data, f"{init_path}: 'data'", CaptureError, (None, None))
        if data.shape[1] < 6:
            raise CaptureError(f"{init_path}: 'data' must be (N, >=6) xyz+rgb, got shape {data.shape}")
        points = data[:, :3].astype(np.float64)
        colors = np.clip(data[:, 3:6] * 255.0, 0, 255).astype(np.uint8)
    bounds = bounds_from_points(points) if points is not None and len(points) >= 8 else bounds_from_frusta(cameras, 0.5, 10.0)
    return Capture("panoptic", root, cameras, PANOPTIC_FPS, num_frames, sources, bounds, points, colors)
