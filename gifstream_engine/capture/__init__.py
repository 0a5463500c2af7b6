"""Capture I/O: the Camera/Capture types, one reader per on-disk layout, and `load_capture`."""

from __future__ import annotations

import os
import stat

import numpy as np

from .. import validate
from ..errors import CaptureError
from ..fileio import kind_of
from .colmap import is_colmap, read_colmap
from .llff import is_llff, read_llff
from .nerfstudio import is_nerfstudio, read_nerfstudio
from .panoptic import is_panoptic, read_panoptic
from ..frames import FrameRange, check_range, parse_frame_range
from .camera import Camera, Rig
from .types import Capture

# Checked in order: the first layout whose marker file exists reads the capture.
READERS = (
    ("n3dv", is_llff, read_llff),
    ("panoptic", is_panoptic, read_panoptic),
    ("nerfstudio", is_nerfstudio, read_nerfstudio),
    ("colmap", is_colmap, read_colmap),
)
LAYOUT_MARKERS = "poses_bounds.npy (N3DV/LLFF), train_meta.json (Panoptic), transforms.json (nerfstudio/D-NeRF) or sparse/0/cameras.bin|txt (COLMAP)"


def detect_format(root: str) -> str:
    if not os.path.isdir(root):
        if os.path.exists(root):
            mode = os.stat(root).st_mode
            kind = "a file" if stat.S_ISREG(mode) else kind_of(mode)
            raise CaptureError(f"{root} is {kind}, not a capture folder; give the folder holding {LAYOUT_MARKERS}")
        raise CaptureError(f"capture folder {root} does not exist")
    for name, detect, _ in READERS:
        if detect(root):
            return name
    raise CaptureError(f"{root}: unknown capture layout; expected one of {LAYOUT_MARKERS}")


def load_capture(root: str, downscale: float = 1.0, frames: FrameRange | None = None) -> Capture:
    """Read a capture in any supported layout; `frames=(start, stop)` selects a frame range (stop None: to the end)."""
    downscale = validate.number(downscale, "downscale factor", CaptureError, minimum=1.0)
    fmt = detect_format(root)
    reader = next(r for name, _, r in READERS if name == fmt)
    capture = reader(root, downscale=downscale)
    if frames is not None:
        capture = capture.slice(*check_range(frames, capture.num_frames, "the capture's", root))
    return capture


def spread_frames(num_frames: int, count: int) -> list[int]:
    """`count` frames spread evenly over 0..num_frames-1, the first and (when count > 1) the last included."""
    count = max(1, min(count, num_frames))
    return sorted({int(round(x)) for x in np.linspace(0, num_frames - 1, count)})


def rig_table(info: dict) -> str:
    """A capture's rig description (`Capture.info()`) as the table `gifstream capture info` prints."""
    lines = [f"{info['format']} capture: {len(info['cameras'])} cameras, {info['num_frames']} frames at {info['fps']:g} fps",
             f"{'camera':<10}{'split':<7}{'size':>11}{'fx':>9}{'fy':>9}{'centre (world)':>28}"]
    for cam in info["cameras"]:
        centre = -np.asarray(cam["w2c"])[:3, :3].T @ np.asarray(cam["w2c"])[:3, 3]
        size = f"{cam['width']}x{cam['height']}"
        lines.append(f"{cam['name']:<10}{cam['split']:<7}{size:>11}{cam['K'][0][0]:9.1f}{cam['K'][1][1]:9.1f}"
                     f"   ({centre[0]:7.2f}, {centre[1]:7.2f}, {centre[2]:7.2f})")
    lo, hi = info["scene_bounds"]
    lines.append(f"scene bounds: ({lo[0]:.2f}, {lo[1]:.2f}, {lo[2]:.2f}) .. ({hi[0]:.2f}, {hi[1]:.2f}, {hi[2]:.2f})")
    return "\n".join(lines)


__all__ = ["Camera", "Capture", "CaptureError", "Rig", "detect_format", "load_capture", "parse_frame_range", "rig_table"]
