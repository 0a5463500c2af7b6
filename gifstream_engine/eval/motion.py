"""What moves in a camera's footage, and how well a render keeps it.

Moving pixels of frame t: pixels where the frame differs from the per-pixel temporal median of the footage by
more than `threshold` in some channel, dilated by `dilate` pixels. `dynamic_psnr` pools the squared error of
every moving pixel of every frame; the frozen-background baseline shows the temporal-median frame itself on the
same pixels (what a codec that drops all motion would score there).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch

# the definition of a departing pixel lives with the footage it is computed from (capture/footage.py)
from ..capture.footage import DILATE_PX, THRESHOLD, departs_from_median, dilate_max, temporal_median  # noqa: F401

CHUNK_FRAMES = 8  # frames converted to float at a time: memory of a few frames, not of the footage


def moving_pixels(frames: np.ndarray, threshold: float = THRESHOLD, dilate: int = DILATE_PX,
                  which: Sequence[int] | None = None, median: np.ndarray | None = None) -> np.ndarray:
    """(T, H, W) bool: where each frame of `frames` (T, H, W, 3) uint8 departs from the footage's temporal median
    (`median`, computed when not given), then dilated; only for the frames `which` (in that order) when given."""
    median_t = torch.from_numpy(temporal_median(frames) if median is None else median)
    index = list(range(len(frames))) if which is None else [int(t) for t in which]
    out = np.zeros((len(index), *frames.shape[1:3]), bool)
    for lo in range(0, len(index), CHUNK_FRAMES):
        footage = torch.from_numpy(frames[index[lo:lo + CHUNK_FRAMES]]).float() / 255.0
        out[lo:lo + CHUNK_FRAMES] = moving_mask(footage, median_t, threshold, dilate).numpy()
    return out


def moving_mask(frames: torch.Tensor, median: torch.Tensor, threshold: float = THRESHOLD,
                dilate: int = DILATE_PX) -> torch.Tensor:
    """(..., H, W) bool, on the frames' device: the moving pixels of frames (..., H, W, 3) in [0, 1] against their
    median (H, W, 3), dilated by `dilate` pixels."""
    return dilate_max(departs_from_median(frames, median, threshold).float(), dilate).bool()


@dataclasses.dataclass
class SplitError:
    """Squared error summed separately over moving and static pixels (per channel value)."""

    moving_sse: float = 0.0
    moving_count: int = 0
    static_sse: float = 0.0
    static_count: int = 0

    def add(self, pred: torch.Tensor, target: torch.Tensor, moving: torch.Tensor) -> None:
        """pred, target (H, W, 3) in [0, 1]; moving (H, W) bool."""
        err = ((pred.float() - target.float()) ** 2).sum(-1).double()
        self.moving_sse += float(err[moving].sum())
        self.static_sse += float(err[~moving].sum())
        n = int(moving.sum())
        self.moving_count += 3 * n
        self.static_count += 3 * (moving.numel() - n)

    @staticmethod
    def pooled(errors) -> "SplitError":
        total = SplitError()
        for e in errors:
            total.moving_sse += e.moving_sse
            total.moving_count += e.moving_count
            total.static_sse += e.static_sse
            total.static_count += e.static_count
        return total

    @staticmethod
    def _psnr(sse: float, count: int) -> float | None:
        if count == 0:
            return None
        mse = sse / count
        return float("inf") if mse == 0 else float(-10.0 * np.log10(mse))

    @property
    def moving_psnr(self) -> float | None:
        return self._psnr(self.moving_sse, self.moving_count)

    @property
    def static_psnr(self) -> float | None:
        return self._psnr(self.static_sse, self.static_count)


class BlockMotion:
    """One camera's footage over a block of frames (a GOP), walked frame by frame on a device: the block's temporal
    median, and per frame the frame in [0, 1] and its moving pixels; `frozen` pools what the median frame scores on
    the moving pixels of the frames walked so far. Memory: the block's uint8 frames and one frame's floats."""

    def __init__(self, footage: np.ndarray, device: torch.device | str = "cpu"):
        self.footage = footage  # (T, H, W, 3) uint8
        self.median = torch.from_numpy(temporal_median(footage)).to(device)  # (H, W, 3) float32
        self.frozen = SplitError()

    def frame(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(frame (H, W, 3) float32 in [0, 1], moving (H, W) bool) of the block's frame t, on the median's device."""
        frame = torch.from_numpy(self.footage[t]).to(self.median.device).float() / 255.0
        moving = moving_mask(frame, self.median)
        self.frozen.add(self.median, frame, moving)
        return frame, moving


@dataclasses.dataclass
class CameraMotion:
    """A camera's whole footage at once (small footage): every frame's moving pixels and the frozen baseline."""

    masks: np.ndarray  # (T, H, W) bool
    median: np.ndarray  # (H, W, 3) float32
    frozen: SplitError

    @staticmethod
    def of(frames: np.ndarray) -> "CameraMotion":
        block = BlockMotion(frames)
        masks = np.stack([block.frame(t)[1].numpy() for t in range(len(frames))])
        return CameraMotion(masks, block.median.numpy(), block.frozen)
