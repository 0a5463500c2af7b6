"""nerfstudio / D-NeRF style `transforms.json` with a per-frame `time`.

Intrinsics come from the top level (fl_x, fl_y, cx, cy, w, h or camera_angle_x) and may be overridden per
frame; `transform_matrix` is an OpenGL camera-to-world (x right, y up, z backwards). Frames are grouped into
cameras by `camera` / `camera_id` when present, otherwise by identical pose; every camera must show every
time step (a synchronised capture). `transforms_train.json` / `transforms_test.json` give the split when
present; otherwise the first camera is the test view.
"""

from __future__ import annotations

import dataclasses
import os
from collections import defaultdict

import numpy as np

from .. import validate
from ..errors import CaptureError
from .camera import Camera
from .types import Capture, bounds_from_frusta, invert_pose, read_json_object
from .video import IMAGE_EXTENSIONS, ImageSequenceSource, check_equal_lengths

GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])
_SPLIT_FILES = (("train", "transforms_train.json"), ("test", "transforms_test.json"))


def is_nerfstudio(root: str) -> bool:
    return any(os.path.isfile(os.path.join(root, f)) for f in ("transforms.json", "transforms_train.json"))


def _load(path: str) -> dict:
    meta = read_json_object(path, "transforms file")
    if not isinstance(meta.get("frames"), list) or not meta["frames"]:
        raise CaptureError(f"{path}: expected a non-empty 'frames' list")
    for i, frame in enumerate(meta["frames"]):
        what = f"{path}: frame {i}"
        validate.mapping(frame, what, CaptureError)
        validate.text(validate.field(frame, "file_path", what, CaptureError), f"{what}: file_path", CaptureError)
        validate.number(validate.field(frame, "time", what + " (expected a per-frame time in [0, 1])", CaptureError),
                        f"{what}: time", CaptureError)
        if "transform_matrix" in frame:
            matrix = validate.array(frame["transform_matrix"], f"{what}: transform_matrix", CaptureError)
            if matrix.shape not in ((4, 4), (3, 4)):
                raise CaptureError(f"{what}: transform_matrix: expected a 4x4 or 3x4 array, got shape {matrix.shape}")
    for key, rule in (("fps", {"above": 0.0}), ("near", {"above": 0.0}), ("far", {"above": 0.0})):
        if meta.get(key) is not None:
            validate.number(meta[key], f"{path}: {key}", CaptureError, **rule)
    return meta


def _resolve_image(root: str, file_path: str) -> str:
    path = os.path.normpath(os.path.join(root, file_path))
    if os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS:
        return path
    for ext in IMAGE_EXTENSIONS:  # D-NeRF omits the extension
        if os.path.isfile(path + ext):
            return path + ext
    return path + ".png"


def _intrinsics(meta: dict, frame: dict, image: str, path: str) -> tuple[np.ndarray, int, int, np.ndarray | None]:
    get = lambda key: frame.get(key, meta.get(key))  # noqa: E731 - per-frame value overrides the top level
    width, height = get("w"), get("h")
    if width is None or height is None:
        source = ImageSequenceSource([image], path)
        width, height = source.width, source.height
    num = lambda key, **rule: validate.number(get(key), f"{path}: {key}", CaptureError, **rule)  # noqa: E731
    width, height = (validate.number(v, f"{path}: {k}", CaptureError, integer=True, minimum=1)
                     for k, v in (("w", width), ("h", height)))
    if get("fl_x") is not None:
        fx = num("fl_x", above=0.0)
        fy = num("fl_y", above=0.0) if get("fl_y") is not None else fx
    elif get("camera_angle_x") is not None:
        fx = fy = 0.5 * width / np.tan(0.5 * num("camera_angle_x", above=0.0, maximum=3.1))
    else:
        raise CaptureError(f"{path}: no focal length; expected 'fl_x' or 'camera_angle_x'")
    cx = num("cx") if get("cx") is not None else width / 2
    cy = num("cy") if get("cy") is not None else height / 2
    dist = [num(k) if get(k) is not None else 0.0 for k in ("k1", "k2", "p1", "p2")]
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    return K, width, height, (np.array(dist) if any(dist) else None)


def _camera_key(frame: dict, index: int, path: str):
    for key in ("camera", "camera_id", "cam_id"):
        if key in frame:
            return str(frame[key])
    if "transform_matrix" not in frame:
        raise CaptureError(f"{path}: frame {index} has no 'transform_matrix'")
    return tuple(np.round(np.asarray(frame["transform_matrix"], float).ravel(), 6))


def read_nerfstudio(root: str, downscale: float = 1.0) -> Capture:
    files = [(s, os.path.join(root, f)) for s, f in _SPLIT_FILES if os.path.isfile(os.path.join(root, f))]
    if not files:
        files = [("train", os.path.join(root, "transforms.json"))]
    groups: dict = defaultdict(dict)  # (split, camera key) -> {time: frame}
    metas, order = {}, []
    fps = None
    for split, path in files:
        meta = metas[path] = _load(path)
        fps = fps or meta.get("fps")
        for i, frame in enumerate(meta["frames"]):
            if "time" not in frame:
                raise CaptureError(f"{path}: frame {i} has no 'time'; expected a per-frame time in [0, 1]")
            key = (split, path, _camera_key(frame, i, path))
            if key not in groups:
                order.append(key)
            groups[key][float(frame["time"])] = frame
    times = sorted({t for g in groups.values() for t in g})
    if all(len(g) == 1 for g in groups.values()) and len(times) > 1:
        raise CaptureError(
            f"{root}: every pose is seen at a single time (a monocular D-NeRF sequence); GIFStream needs "
            f"synchronised multi-view footage: group views with a per-frame 'camera' field"
        )
    cameras, sources = [], []
    for n, key in enumerate(order):
        split, path, cam_key = key
        frames = groups[key]
        missing = [t for t in times if t not in frames]
        name = cam_key if isinstance(cam_key, str) else f"cam{n:02d}"
        if missing:
            raise CaptureError(f"{path}: camera {name!r} has no frame at time(s) {missing[:5]}; every camera must show every time")
        first = frames[times[0]]
        image0 = _resolve_image(root, first["file_path"])
        K, width, height, dist = _intrinsics(metas[path], first, image0, path)
        if "transform_matrix" not in first:
            raise CaptureError(f"{path}: camera {name!r} has no 'transform_matrix'")
        c2w = np.asarray(first["transform_matrix"], float)
        if c2w.shape == (3, 4):
            c2w = np.vstack([c2w, [0, 0, 0, 1]])
        w2c = invert_pose(c2w @ GL_TO_CV, f"{path}: camera {name!r} transform_matrix")
        cameras.append(Camera(name, width, height, K, w2c, dist, split))
        sources.append(ImageSequenceSource([_resolve_image(root, frames[t]["file_path"]) for t in times], f"{path} camera {name}"))
    if not any(c.split == "test" for c in cameras) and len(cameras) > 1:
        cameras[0] = dataclasses.replace(cameras[0], split="test")
    if downscale != 1:
        cameras = [c.scaled(downscale) for c in cameras]
    num_frames = check_equal_lengths(sources, [c.name for c in cameras], root)
    near = float(metas[files[0][1]].get("near", 0.1))
    far = float(metas[files[0][1]].get("far", 6.0))
    if not near < far:
        raise CaptureError(f"{files[0][1]}: expected near < far, got near={near:g}, far={far:g}")
    bounds = bounds_from_frusta(cameras, near, far)
    return Capture("nerfstudio", root, cameras, float(fps or 30.0), num_frames, sources, bounds)
