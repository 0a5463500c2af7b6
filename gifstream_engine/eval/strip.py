"""A picture a person can judge motion by: for a few frames of one camera, footage | render | error, stacked."""

from __future__ import annotations

import numpy as np
import torch

from ..capture import Capture, spread_frames
from ..render import render
from ..render.device import run_device
from .evaluate import footage_blocks, frame_blocks
from .motion import BlockMotion
from .placement import OnDevice


def strip_frames(num_frames: int, count: int = 4) -> list[int]:
    """`count` frames spread over the sequence (first and last included)."""
    return spread_frames(num_frames, count)


@torch.no_grad()
def motion_strip(sequence, capture: Capture, cam_index: int, frames: list[int], gain: float = 4.0) -> np.ndarray:
    """(rows * H, 3 * W, 3) uint8: per frame, the footage (moving pixels outlined in yellow: against the temporal
    median of the frame's block, as evaluation measures them), the render and the absolute error times `gain`.
    Rendered on `run_device(sequence)`; the footage is read block by block, only the blocks that hold `frames`."""
    camera = capture.cameras[cam_index]
    device = run_device(sequence)
    placed = OnDevice(sequence, device)
    background = torch.zeros(3, device=device)
    rows = {}
    num_frames = min(sequence.num_frames, capture.num_frames)
    try:
        for start, stop, block in footage_blocks(capture, frame_blocks(sequence, num_frames)):
            wanted = [t for t in frames if start <= t < stop]
            motion = BlockMotion(block.frames(cam_index)) if wanted else None
            for t in wanted:
                truth, moving = (x.numpy() for x in motion.frame(t - start))
                pred = render(placed.gaussians(t, camera), camera, background=background).rgb.clamp(0, 1).cpu().numpy()
                error = np.clip(np.abs(pred - truth) * gain, 0, 1)
                outlined = truth.copy()
                outlined[moving & ~_eroded(moving)] = (1.0, 0.9, 0.0)
                rows[t] = np.concatenate([outlined, pred, error], axis=1)
    finally:
        placed.release()
    separator = np.ones((2, rows[frames[0]].shape[1], 3), np.float32)
    image = np.concatenate([x for t in frames for x in (rows[t], separator)][:-1], axis=0)
    return (image * 255 + 0.5).astype(np.uint8)


def _eroded(mask: np.ndarray) -> np.ndarray:
    m = torch.from_numpy(mask).float()[None, None]
    return (-torch.nn.functional.max_pool2d(-m, 3, stride=1, padding=1))[0, 0].bool().numpy()
