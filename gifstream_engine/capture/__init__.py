"""Capture I/O: the Camera/Capture types, one reader per on-disk layout, and `load_capture`."""

from __future__ import annotations

import os

import numpy as np

from .. import validate
from ..errors import CaptureError
from .colmap import is_colmap, read_colmap
from .llff import is_llff, read_llff
from .nerfstudio import is_nerfstudio, read_nerfstudio
from .panoptic import is_panoptic, read_panoptic
from .types import Camera, Capture

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
        raise CaptureError(f"capture folder {root} does not exist")
    for name, detect, _ in READERS:
        if detect(root):
            return name
    raise CaptureError(f"{root}: unknown capture layout; expected one of {LAYOUT_MARKERS}")


def load_capture(root: str, downscale: float = 1.0, frames: tuple[int, int] | None = None) -> Capture:
    """Read a capture in any supported layout; `frames=(start, stop)` selects a frame range."""
    downscale = validate.number(downscale, "downscale factor", CaptureError, minimum=1.0)
    fmt = detect_format(root)
    reader = next(r for name, _, r in READERS if name == fmt)
    capture = reader(root, downscale=downscale)
    if frames is not None:
        start, stop = frames
        capture = capture.slice(start, capture.num_frames if stop is None else stop)
    return capture


def spread_frames(num_frames: int, count: int) -> list[int]:
    """`count` frames spread evenly over 0..num_frames-1, the first and (when count > 1) the last included."""
    count = max(1, min(count, num_frames))
    return sorted({int(round(x)) for x in np.linspace(0, num_frames - 1, count)})


def parse_frame_range(text: str | None) -> tuple[int, int | None] | None:
    """'a:b' -> (a, b); 'a:' -> (a, None); ':b' -> (0, b); None -> None. A lone number is refused: '2' could mean
    frame 2 alone or frames 2 to the end."""
    if text is None:
        return None
    start, colon, stop = text.partition(":")
    try:
        if not colon:
            raise ValueError("no colon")
        rng = int(start) if start.strip() else 0, (int(stop) if stop.strip() else None)
    except ValueError as exc:
        raise CaptureError(f"frame range {text!r} is not of the form START:STOP (e.g. 2:3 for frame 2 alone, "
                           f"2: for frame 2 to the end)") from exc
    if rng[0] < 0 or (rng[1] is not None and rng[1] <= rng[0]):
        raise CaptureError(f"frame range {text!r}: expected 0 <= START < STOP")
    return rng


__all__ = ["Camera", "Capture", "CaptureError", "detect_format", "load_capture", "parse_frame_range"]
