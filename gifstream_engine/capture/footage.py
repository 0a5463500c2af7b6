"""One camera's footage over a window, decoded once, with what every consumer derives from it.

A pixel departs from the footage's temporal median when some channel differs from it by more than THRESHOLD
(`departs_from_median`); the moving pixels are the departing ones dilated by DILATE_PX (`eval.motion`).
`CameraFootage(frames)` computes on first use, in one pass over the frames, the temporal median and the departing
pixels, kept packed at one bit a pixel. From those bits come the window sampler's moving pixels (undilated) and
seeding's moving pixels (dilated, as `eval.motion.moving_pixels`) for any frame, without decoding or converting the
footage again.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: SfM's worker processes import this package without it
    import torch

THRESHOLD = 0.08
DILATE_PX = 2


def temporal_median(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 footage -> (H, W, 3) float32 median frame in [0, 1]."""
    return np.median(frames, axis=0).astype(np.float32) / 255.0


def departs_from_median(frames: torch.Tensor, median: torch.Tensor, threshold: float = THRESHOLD) -> torch.Tensor:
    """(..., H, W) bool: where frames (..., H, W, 3) in [0, 1] differ from the median by more than `threshold` in some
    channel (the moving pixels before their dilation)."""
    return ((frames - median).abs() > threshold).any(-1)


def dilate_max(values: torch.Tensor, px: int) -> torch.Tensor:
    """(..., H, W) float -> the same shape, each pixel the largest value within px pixels (a square window)."""
    if px <= 0:
        return values
    import torch.nn.functional as F

    shape = values.shape
    flat = values.reshape(-1, 1, *shape[-2:])
    return F.max_pool2d(flat, 2 * px + 1, stride=1, padding=px).reshape(shape)


def still_range(threshold: float = THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """(low, high), each (511,) uint8: a channel value v departs from a median m = k / 2 (k = 0..510: the median of
    uint8 values is a whole or half value) exactly when v < low[k] or v > high[k], as `departs_from_median`
    decides it in float32 (the values that do not depart form one interval around m, since |v / 255 - m| grows
    monotonically away from it)."""
    import torch

    values = torch.arange(256, dtype=torch.uint8).float() / 255.0
    medians = torch.from_numpy((np.arange(511) / 2).astype(np.float32) / 255.0)
    departs = departs_from_median(values[None, :, None], medians[:, None, None], threshold).numpy()  # (511, 256)
    still = ~departs
    low = still.argmax(1)
    high = 255 - still[:, ::-1].argmax(1)
    assert still.any(1).all() and (still.sum(1) == high - low + 1).all(), "not one interval"
    return low.astype(np.uint8), high.astype(np.uint8)


@dataclasses.dataclass
class Motion:
    median: np.ndarray  # (H, W, 3) float32 in [0, 1]: the temporal median of the frames
    departs: np.ndarray  # (T, H, ceil(W / 8)) uint8: bits (row-major, big-endian in a byte) of departing pixels
    row_counts: np.ndarray  # (T, H) int32: departing pixels of each row

    @staticmethod
    def of(frames: np.ndarray, threshold: float = THRESHOLD) -> "Motion":
        """The median (as `temporal_median`) and the departing pixels (as `departs_from_median`),
        compared in uint8 against each channel's still range (`still_range`): no float copy of the footage."""
        twice_median = np.median(frames, axis=0) * 2  # whole numbers 0..510
        median = (twice_median / 2).astype(np.float32) / 255.0
        low, high = still_range(threshold)
        k = twice_median.astype(np.int16)
        low, high = low[k], high[k]  # (H, W, 3) each
        num, height, width = frames.shape[:3]
        departs = np.empty((num, height, (width + 7) // 8), np.uint8)
        row_counts = np.empty((num, height), np.int32)
        for t in range(num):
            channels = (frames[t] < low) | (frames[t] > high)
            bits = channels[..., 0] | channels[..., 1] | channels[..., 2]
            departs[t] = np.packbits(bits, axis=-1)
            row_counts[t] = np.count_nonzero(bits, axis=-1)
        return Motion(median, departs, row_counts)


class CameraFootage:
    """frames (T, H, W, 3) uint8 of one camera, and their `Motion`, computed once on first use."""

    def __init__(self, frames: np.ndarray):
        self.frames = frames
        self._motion: Motion | None = None

    @property
    def motion(self) -> Motion:
        if self._motion is None:
            self._motion = Motion.of(self.frames)
        return self._motion

    @property
    def median(self) -> np.ndarray:
        return self.motion.median

    @property
    def departs(self) -> np.ndarray:
        return self.motion.departs

    @property
    def row_counts(self) -> np.ndarray:
        return self.motion.row_counts

    @property
    def width(self) -> int:
        return self.frames.shape[2]

    def departing(self, t: int) -> np.ndarray:
        """(H, W) bool: the pixels of frame t that depart from the median (before dilation)."""
        return np.unpackbits(self.departs[t], axis=-1, count=self.width).astype(bool)

    def moving(self, which: Sequence[int], dilate: int = DILATE_PX) -> np.ndarray:
        """(len(which), H, W) bool: the moving pixels of frames `which` (departing, dilated by `dilate` pixels), as
        `eval.motion.moving_pixels` computes them from the footage."""
        import torch

        bits = np.stack([self.departing(int(t)) for t in which]) if len(which) else \
            np.zeros((0, *self.frames.shape[1:3]), bool)
        return dilate_max(torch.from_numpy(bits).float(), dilate).bool().numpy()

    def count(self, t: int) -> int:
        return int(self.row_counts[t].sum())

    def departing_pixel(self, t: int, k: int) -> tuple[int, int]:
        """(row, column) of the k-th departing pixel of frame t in row-major order."""
        cumulative = np.cumsum(self.row_counts[t])
        row = int(np.searchsorted(cumulative, k, side="right"))
        before = int(cumulative[row - 1]) if row > 0 else 0
        columns = np.flatnonzero(np.unpackbits(self.departs[t, row], count=self.width))
        return row, int(columns[k - before])

    @property
    def nbytes(self) -> int:
        """The frames' bytes (what a cache counts; the motion adds about 1/24 of it)."""
        return self.frames.nbytes
