"""Windows of the training footage centred on what moves: extra looks at the moving pixels in every step.

One training image per step shows each moving object in one frame; an object's copy for frame t is then fitted
by about 1/T of the steps, while the static set is fitted by all of them. A step also renders a few windows
(a `size` fraction of the image's width and height) of other (camera, frame) pairs, each centred on a pixel
that departs from its camera's temporal median by more than the moving-pixel threshold, picked uniformly:
the moving pixels get several times the supervision for a fraction of a full image's rasterisation.
"""

from __future__ import annotations

import dataclasses

import torch

from ..capture.types import Camera
from ..eval.motion import THRESHOLD


@dataclasses.dataclass(frozen=True)
class MotionPatch:
    cam_slot: int  # index into the GOP's training cameras
    frame: int  # frame of the GOP
    view: Camera  # the full camera (anchors are culled by its view)
    camera: Camera  # the window as a camera of its own (Camera.cropped)
    target: torch.Tensor  # (h, w, 3) float32 in [0, 1]
    median: torch.Tensor  # (h, w, 3) the camera's temporal median over the same window


def patch_size(width: int, height: int, size: float) -> tuple[int, int]:
    """Window width and height for a `size` fraction of the image (at least 16 px, at most the image)."""
    return min(width, max(16, round(width * size))), min(height, max(16, round(height * size)))


def sample_motion_patch(frames: torch.Tensor, medians: torch.Tensor, cameras: list[Camera], size: float,
                        generator: torch.Generator, tries: int = 8) -> MotionPatch | None:
    """A window centred on a moving pixel of a random (camera, frame), or None when `tries` draws found none.

    frames: (C, T, H, W, 3) uint8 training footage; medians: (C, H, W, 3) float; cameras: the C training cameras."""
    num_cams, num_frames, height, width = frames.shape[:4]
    w, h = patch_size(width, height, size)
    for _ in range(tries):
        c = int(torch.randint(num_cams, (1,), generator=generator))
        t = int(torch.randint(num_frames, (1,), generator=generator))
        frame = frames[c, t].float() / 255.0
        moving = torch.nonzero(((frame - medians[c]).abs() > THRESHOLD).any(-1))
        if len(moving) == 0:
            continue
        y, x = moving[int(torch.randint(len(moving), (1,), generator=generator))].tolist()
        x0 = min(max(x - w // 2, 0), width - w)
        y0 = min(max(y - h // 2, 0), height - h)
        window = (slice(y0, y0 + h), slice(x0, x0 + w))
        return MotionPatch(c, t, cameras[c], cameras[c].cropped(x0, y0, w, h), frame[window], medians[c][window])
    return None
