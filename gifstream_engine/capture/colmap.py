"""A COLMAP sparse model (one registered image per camera) plus each camera's footage.

Layout: `sparse/0/` (or `sparse/`) with cameras/images/points3D in .bin or .txt. Each image's camera
name is its file stem, or its first folder for names like `cam03/000000.png`. Footage per camera, first
match wins: `videos/<name>.mp4`, `<name>.mp4`, or an image folder `images/<name>/` or `frames/<name>/`.
Test cameras are chosen with `test_cameras` (default: the first camera, as in N3DV).
"""

from __future__ import annotations

import os

import numpy as np

from .. import validate
from ..errors import CaptureError
from .camera import Camera
from .types import Capture, bounds_from_points
from .video import ImageSequenceSource, VideoSource, check_equal_fps, check_equal_lengths

_SPARSE_DIRS = ("sparse/0", "sparse")
_MODEL_FILES = ("cameras.bin", "cameras.txt")
COLMAP_INTRINSICS = {
    # model name -> (fx, fy, cx, cy, distortion) from params
    "SIMPLE_PINHOLE": lambda p: (p[0], p[0], p[1], p[2], None),
    "PINHOLE": lambda p: (p[0], p[1], p[2], p[3], None),
    "SIMPLE_RADIAL": lambda p: (p[0], p[0], p[1], p[2], [p[3], 0.0, 0.0, 0.0]),
    "RADIAL": lambda p: (p[0], p[0], p[1], p[2], [p[3], p[4], 0.0, 0.0]),
    "OPENCV": lambda p: (p[0], p[1], p[2], p[3], list(p[4:8])),
}


def find_sparse_dir(root: str) -> str | None:
    for sub in _SPARSE_DIRS:
        path = os.path.join(root, sub)
        if any(os.path.isfile(os.path.join(path, f)) for f in _MODEL_FILES):
            return path
    return None


def is_colmap(root: str) -> bool:
    return find_sparse_dir(root) is not None


def camera_name_of(image_name: str) -> str:
    parts = image_name.replace("\\", "/").split("/")
    return parts[0] if len(parts) > 1 else os.path.splitext(parts[0])[0]


def find_footage(root: str, name: str):
    for path in (os.path.join(root, "videos", f"{name}.mp4"), os.path.join(root, f"{name}.mp4")):
        if os.path.isfile(path):
            return VideoSource(path)
    for folder in (os.path.join(root, "images", name), os.path.join(root, "frames", name)):
        if os.path.isdir(folder):
            return ImageSequenceSource.from_folder(folder)
    raise CaptureError(
        f"{root}: no footage for camera {name!r}; expected videos/{name}.mp4, {name}.mp4, "
        f"images/{name}/ or frames/{name}/"
    )


def read_colmap(root: str, downscale: float = 1.0, fps: float = 30.0, test_cameras: tuple[str, ...] | None = None) -> Capture:
    os.environ.setdefault("GLOG_minloglevel", "2")  # COLMAP's per-image INFO lines drown our progress
    import pycolmap

    sparse = find_sparse_dir(root)
    if sparse is None:
        raise CaptureError(f"{root}: no COLMAP model; expected cameras.bin or cameras.txt in sparse/0/ or sparse/")
    try:
        rec = pycolmap.Reconstruction(sparse)
    except Exception as exc:  # pycolmap raises plain RuntimeError/ValueError on malformed models
        raise CaptureError(f"unreadable COLMAP model {sparse}: {exc}") from exc
    images = sorted(rec.images.values(), key=lambda im: camera_name_of(im.name))
    if not images:
        raise CaptureError(f"{sparse}: the model has no registered images")
    names = [camera_name_of(im.name) for im in images]
    if len(set(names)) != len(names):
        raise CaptureError(f"{sparse}: several images map to the same camera name: {names}")
    test = set(test_cameras) if test_cameras is not None else {names[0]}
    cameras, sources = [], []
    for name, image in zip(names, images):
        colmap_cam = rec.cameras[image.camera_id]
        model = colmap_cam.model_name if hasattr(colmap_cam, "model_name") else str(colmap_cam.model.name)
        if model not in COLMAP_INTRINSICS:
            raise CaptureError(
                f"{sparse}: camera model {model} of image {image.name} is not supported; "
                f"expected one of {sorted(COLMAP_INTRINSICS)}"
            )
        what = f"{sparse}: camera {image.camera_id} of image {image.name}"
        if colmap_cam.width < 1 or colmap_cam.height < 1:
            raise CaptureError(f"{what}: image size must be positive, got {colmap_cam.width}x{colmap_cam.height}")
        try:
            fx, fy, cx, cy, dist = COLMAP_INTRINSICS[model](validate.array(colmap_cam.params, f"{what}: params", CaptureError))
        except IndexError as exc:
            raise CaptureError(f"{what}: {model} expects more parameters than the {len(colmap_cam.params)} given") from exc
        w2c = np.eye(4)
        w2c[:3, :4] = image.cam_from_world().matrix()
        source = find_footage(root, name)
        # The footage may be stored at another resolution than the model's intrinsics
        sx, sy = source.width / colmap_cam.width, source.height / colmap_cam.height
        K = np.array([[fx * sx, 0, cx * sx], [0, fy * sy, cy * sy], [0, 0, 1]])
        cam = Camera(name, source.width, source.height, K, w2c, dist, "test" if name in test else "train")
        cameras.append(cam.scaled(downscale) if downscale != 1 else cam)
        sources.append(source)
    num_frames = check_equal_lengths(sources, names, root)
    fps = check_equal_fps(sources, names, root) or fps
    points = colors = None
    if rec.points3D:
        pts = list(rec.points3D.values())
        points = np.array([p.xyz for p in pts], float)
        colors = np.array([p.color for p in pts], np.uint8)
    if points is not None and len(points) >= 8:
        bounds = bounds_from_points(points)
    else:
        centers = np.array([c.center for c in cameras])
        bounds = np.stack([centers.min(0) - 1.0, centers.max(0) + 1.0])
    return Capture("colmap", root, cameras, fps, num_frames, sources, bounds, points, colors)
