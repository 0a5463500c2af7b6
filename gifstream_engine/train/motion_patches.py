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

from ..capture.camera import Camera
from ..capture.footage import CameraFootage


@dataclasses.dataclass(frozen=True)
class MotionPatch:
    cam_slot: int  # index into the GOP's training cameras
    frame: int  # frame of the GOP
    view: Camera  # the full camera the window is cut from
    camera: Camera  # the window as a camera of its own (Camera.cropped)
    target: torch.Tensor  # (h, w, 3) float32 in [0, 1]
    median: torch.Tensor  # (h, w, 3) the camera's temporal median over the same window


def patch_size(width: int, height: int, size: float) -> tuple[int, int]:
    """Window width and height for a `size` fraction of the image (at least 16 px, at most the image)."""
    return min(width, max(16, round(width * size))), min(height, max(16, round(height * size)))


class MotionPatchSampler:
    """Draws windows on moving pixels from one GOP's training footage.

    frames: (C, T, H, W, 3) uint8; medians: (C, H, W, 3) float, each camera's temporal median; footage: each
    camera's departing pixels (packed bits, computed with the GOP's frames); cameras: the C training cameras.
    The (camera, frame) pairs with moving pixels are those whose bits hold any; `empty` when there are none."""

    def __init__(self, frames: torch.Tensor, medians: torch.Tensor, footage: list[CameraFootage], cameras: list[Camera],
                 size: float):
        self.frames, self.medians, self.footage, self.cameras = frames, medians, footage, cameras
        self.width, self.height = patch_size(frames.shape[3], frames.shape[2], size)
        pairs = [(c, t) for c in range(frames.shape[0]) for t in range(frames.shape[1]) if footage[c].count(t) > 0]
        self.pairs = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)

    @property
    def empty(self) -> bool:
        return len(self.pairs) == 0

    def sample(self, generator: torch.Generator) -> MotionPatch:
        """A window centred on a moving pixel, both drawn uniformly (pair, then pixel), from `generator`."""
        if self.empty:
            raise ValueError("no moving pixels in this footage: check `empty` before sampling")
        pair = int(torch.randint(len(self.pairs), (1,), generator=generator))
        c, t = self.pairs[pair].tolist()
        full_height, full_width = self.frames.shape[2:4]
        y, x = self.footage[c].departing_pixel(t, int(torch.randint(self.footage[c].count(t), (1,), generator=generator)))
        x0 = min(max(x - self.width // 2, 0), full_width - self.width)
        y0 = min(max(y - self.height // 2, 0), full_height - self.height)
        window = (slice(y0, y0 + self.height), slice(x0, x0 + self.width))
        target = self.frames[c, t][window].float() / 255.0
        camera = self.cameras[c]
        return MotionPatch(c, t, camera, camera.cropped(x0, y0, self.width, self.height), target, self.medians[c][window])
