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


MIN_TRAIN_CAMERAS = 2  # one view cannot place anything in depth (SfM needs two; one view's seeds would be random)


def check_training_cameras(capture: Capture) -> list[int]:
    """The training cameras' indices; ConfigError when there are fewer than MIN_TRAIN_CAMERAS."""
    train = capture.split_indices("train")
    if len(train) < MIN_TRAIN_CAMERAS:
        names = [capture.cameras[i].name for i in train]
        raise ConfigError(f"{capture.root}: the capture has {len(train)} training camera{'s' if len(train) != 1 else ''}"
                          f"{' ' + str(names) if names else ''}; training needs at least {MIN_TRAIN_CAMERAS}: one "
                          f"view cannot place the scene in depth (the test cameras are only for evaluation)")
    return train


def load_gop_frames(capture: Capture) -> GopData:
    train = check_training_cameras(capture)
    sizes = {(capture.cameras[i].width, capture.cameras[i].height) for i in train}
    if len(sizes) > 1:
        raise ConfigError(f"{capture.root}: training cameras must share one image size, got {sorted(sizes)}")
    frames = np.stack([capture.frames(i) for i in train])
    return GopData(capture, train, torch.from_numpy(frames), torch.from_numpy(np.stack([temporal_median(f) for f in frames])))
