"""A picture a person can judge motion by: for a few frames of one camera, footage | render | error, stacked."""

from __future__ import annotations

import numpy as np
import torch

from ..capture import Capture, spread_frames
from ..render import render
from .motion import moving_pixels


def strip_frames(num_frames: int, count: int = 4) -> list[int]:
    """`count` frames spread over the sequence (first and last included)."""
    return spread_frames(num_frames, count)


@torch.no_grad()
def motion_strip(sequence, capture: Capture, cam_index: int, frames: list[int], gain: float = 4.0) -> np.ndarray:
    """(rows * H, 3 * W, 3) uint8: per frame, the footage (moving pixels outlined in yellow), the render and
    the absolute error times `gain`."""
    camera = capture.cameras[cam_index]
    footage = capture.frames(cam_index)[: sequence.num_frames]
    moving = moving_pixels(footage)
    rows = []
    for t in frames:
        truth = footage[t].astype(np.float32) / 255.0
        pred = render(sequence.gaussians(t, camera), camera, background=torch.zeros(3)).rgb.clamp(0, 1).numpy()
        error = np.clip(np.abs(pred - truth) * gain, 0, 1)
        outlined = truth.copy()
        edge = moving[t] & ~_eroded(moving[t])
        outlined[edge] = (1.0, 0.9, 0.0)
        rows.append(np.concatenate([outlined, pred, error], axis=1))
    separator = np.ones((2, rows[0].shape[1], 3), np.float32)
    image = np.concatenate([x for row in rows for x in (row, separator)][:-1], axis=0)
    return (image * 255 + 0.5).astype(np.uint8)


def _eroded(mask: np.ndarray) -> np.ndarray:
    m = torch.from_numpy(mask).float()[None, None]
    return (-torch.nn.functional.max_pool2d(-m, 3, stride=1, padding=1))[0, 0].bool().numpy()
