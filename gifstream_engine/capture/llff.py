"""Neural 3D Video / LLFF layout: `camXX.mp4` videos + `poses_bounds.npy`.

poses_bounds.npy holds one row of 17 numbers per camera (cameras in sorted video-name order):
a 3x5 matrix [c2w rotation columns (down, right, backwards) | translation | (H, W, focal)] then near, far.
cam00 is the held-out test view by convention.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from .. import validate
from ..errors import CaptureError
from ..fileio import npy_array, read_input
from .camera import Camera
from .types import Capture, bounds_from_frusta
from .video import VideoSource, check_equal_fps, check_equal_lengths

# LLFF columns (down, right, back) <-> OpenCV columns (right, down, forward)
_LLFF_TO_CV = np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1]], dtype=np.float64)


def llff_to_w2c(row: np.ndarray) -> tuple[np.ndarray, tuple[int, int, float]]:
    """OpenCV w2c (4, 4) and (H, W, focal) of one poses_bounds row."""
    mat = row[:15].reshape(3, 5)
    c2w = np.eye(4)
    c2w[:3, :3] = mat[:, :3] @ _LLFF_TO_CV
    c2w[:3, 3] = mat[:, 3]
    h, w, f = mat[:, 4]
    return np.linalg.inv(c2w), (int(round(h)), int(round(w)), float(f))


def w2c_to_llff(w2c: np.ndarray, height: int, width: int, focal: float, near: float, far: float) -> np.ndarray:
    """One poses_bounds row (17,) for an OpenCV camera (the inverse of `llff_to_w2c`)."""
    c2w = np.linalg.inv(w2c)
    mat = np.zeros((3, 5))
    mat[:, :3] = c2w[:3, :3] @ _LLFF_TO_CV.T
    mat[:, 3] = c2w[:3, 3]
    mat[:, 4] = [height, width, focal]
    return np.concatenate([mat.ravel(), [near, far]])


MAX_POSES_BYTES = 16 << 20  # poses_bounds.npy: 136 bytes per camera


def is_llff(root: str) -> bool:
    return os.path.isfile(os.path.join(root, "poses_bounds.npy"))


def read_llff(root: str, downscale: float = 1.0, test_cameras: tuple[str, ...] = ("cam00",), fps: float | None = None) -> Capture:
    poses_path = os.path.join(root, "poses_bounds.npy")
    videos = sorted(glob.glob(os.path.join(root, "cam*.mp4")))
    if not videos:
        raise CaptureError(f"{root}: no camXX.mp4 videos found beside poses_bounds.npy")
    raw = read_input(poses_path, "poses file", CaptureError, MAX_POSES_BYTES)  # a regular file, bounded
    try:
        poses = npy_array(raw)
    except (OSError, ValueError, EOFError) as exc:
        raise CaptureError(f"unreadable poses {poses_path}: {exc or type(exc).__name__}; expected a .npy array (N, 17)") from exc
    if not isinstance(poses, np.ndarray):
        raise CaptureError(f"{poses_path}: expected a .npy array of LLFF poses and bounds (N, 17), got an archive")
    poses = validate.array(poses, f"{poses_path}: poses", CaptureError, (None, 17))
    if len(poses) != len(videos):
        raise CaptureError(
            f"{poses_path}: holds {len(poses)} camera poses but {root} has {len(videos)} camXX.mp4 videos"
        )

    names = [os.path.splitext(os.path.basename(v))[0] for v in videos]
    sources = [VideoSource(v) for v in videos]
    num_frames = check_equal_lengths(sources, names, root)
    fps = fps or check_equal_fps(sources, names, root)
    cameras = []
    for name, row, source in zip(names, poses, sources):
        check_row(row, f"{poses_path}: row of {name}")
        w2c, (h, w, focal) = llff_to_w2c(row)
        check_aspect(source, w, h, f"{poses_path}: row of {name}")
        # poses_bounds stores H, W, focal at capture resolution; the video may be downsampled already
        scale = source.width / w
        K = np.array([[focal * scale, 0, source.width / 2], [0, focal * scale, source.height / 2], [0, 0, 1]])
        cam = Camera(name, source.width, source.height, K, w2c, split="test" if name in test_cameras else "train")
        cameras.append(cam.scaled(downscale) if downscale != 1 else cam)
    near, far = float(poses[:, 15].min()), float(poses[:, 16].max())
    bounds = bounds_from_frusta(cameras, near, far)
    return Capture("n3dv", root, cameras, fps or 30.0, num_frames, sources, bounds)


def check_row(row: np.ndarray, what: str) -> None:
    """One poses_bounds row: positive image size and focal, an orthonormal rotation, 0 < near < far."""
    mat = row[:15].reshape(3, 5)
    h, w, focal = mat[:, 4]
    validate.number(h, f"{what}: image height (column 4)", CaptureError, minimum=1)
    validate.number(w, f"{what}: image width (column 9)", CaptureError, minimum=1)
    validate.number(focal, f"{what}: focal length (column 14)", CaptureError, above=0.0)
    rot = mat[:, :3]
    if np.abs(rot @ rot.T - np.eye(3)).max() > 1e-3:
        raise CaptureError(f"{what}: the rotation columns 0-2 are not orthonormal")
    near, far = row[15], row[16]
    if not 0 < near < far:
        raise CaptureError(f"{what}: expected bounds 0 < near < far, got near={near:g}, far={far:g}")


def check_aspect(source, width: int, height: int, what: str, tolerance: float = 0.01) -> None:
    """The footage may be downsampled from the calibrated size, never stretched."""
    calibrated, footage = width / height, source.width / source.height
    if abs(footage / calibrated - 1) > tolerance:
        raise CaptureError(f"{what}: calibrated for {width}x{height} (aspect {calibrated:.3f}) but the video "
                           f"{source.path} is {source.width}x{source.height} (aspect {footage:.3f})")
