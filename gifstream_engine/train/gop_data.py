"""One GOP's training footage in memory: every training camera's frames and temporal median."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..capture import Capture
from ..errors import ConfigError
from ..eval.motion import temporal_median


@dataclasses.dataclass
class GopData:
    capture: Capture
    train_cams: list[int]
    frames: torch.Tensor  # (num_train_cams, T, H, W, 3) uint8
    medians: torch.Tensor  # (num_train_cams, H, W, 3) float32 in [0, 1]: each camera's temporal median over the GOP


def load_gop_frames(capture: Capture) -> GopData:
    train = capture.split_indices("train")
    if not train:
        raise ConfigError(f"{capture.root}: the capture has no training cameras")
    sizes = {(capture.cameras[i].width, capture.cameras[i].height) for i in train}
    if len(sizes) > 1:
        raise ConfigError(f"{capture.root}: training cameras must share one image size, got {sorted(sizes)}")
    frames = np.stack([capture.frames(i) for i in train])
    return GopData(capture, train, torch.from_numpy(frames), torch.from_numpy(np.stack([temporal_median(f) for f in frames])))
