"""The model's dimensions, how the schedule shapes decoding, and anchor values quantised elsewhere."""

from __future__ import annotations

import dataclasses

import torch

from .. import validate
from ..errors import ConfigError, GIFStreamError

@dataclasses.dataclass
class ModelConfig:
    feat_dim: int = 24  # C: time-invariant anchor feature
    stream_dim: int = 4  # P: per-frame feature stream
    num_offsets: int = 5  # K: Gaussians per anchor
    hidden: int = 24  # width of the decoders' hidden layer
    knn: int = 6  # neighbours aggregated by the motion decoder
    time_freqs: int = 8  # sin/cos pairs of the time embedding (16 dims)
    voxel_size: float = 0.02  # anchor voxelisation of the initial cloud and of grown anchors


# (minimum, maximum) of the model's dimensions; a bitstream header is held to the same bounds before allocating
MODEL_RULES: dict[str, dict] = {
    "feat_dim": {"minimum": 3, "maximum": 1024},  # the first 3 channels are seeded with the point colours
    "stream_dim": {"minimum": 1, "maximum": 256}, "num_offsets": {"minimum": 1, "maximum": 64},
    "hidden": {"minimum": 1, "maximum": 1024}, "knn": {"minimum": 1, "maximum": 64}, "time_freqs": {"minimum": 0, "maximum": 32},
    "voxel_size": {"above": 0.0, "maximum": 1e6},
}


def validate_model(model: ModelConfig, origin: str = "model", error: type[GIFStreamError] = ConfigError) -> None:
    validate.fields(model, origin, MODEL_RULES, error)


@dataclasses.dataclass
class DecodeState:
    """How the schedule shapes decoding at this step (see train/schedule.py)."""

    use_stream: bool = True  # False in the canonical phase: M_de = M_dy = 0, M_knn = 0.5
    quantize: str = "none"  # "none", "noise" (uniform noise) or "round" (straight-through rounding)
    feat_step: float = 1.0  # quantisation step of f and f_t
    geo_step: float = 0.02  # quantisation step of scales and offsets
    stream_window: int = 0  # f_t averaged over t±window (shrinks to 0 during training)


@dataclasses.dataclass
class AnchorValues:
    """Quantised time-invariant anchor attributes that replace the model's own parameters when decoding."""

    feat: torch.Tensor  # (N, C)
    log_scale: torch.Tensor  # (N, 6)
    offsets: torch.Tensor  # (N, K, 3)
    masks: dict[str, torch.Tensor] | None = None  # de, dy, knn, p (N,) each; None: the model's own quantised masks

