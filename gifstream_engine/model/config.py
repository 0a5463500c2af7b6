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
    # how the motion neighbours are found (model/knn.py): "canonical" (format 1.1 on), or "kdtree", format 1.0's
    # rule, which streams and runs made before 1.1 were trained with
    knn_rule: str = "canonical"


# (minimum, maximum) of the model's dimensions; a bitstream header is held to the same bounds before allocating
MODEL_RULES: dict[str, dict] = {
    "feat_dim": {"minimum": 3, "maximum": 1024},  # the first 3 channels are seeded with the point colours
    "stream_dim": {"minimum": 1, "maximum": 256}, "num_offsets": {"minimum": 1, "maximum": 64},
    "hidden": {"minimum": 1, "maximum": 1024}, "knn": {"minimum": 1, "maximum": 64}, "time_freqs": {"minimum": 0, "maximum": 32},
    "voxel_size": {"above": 0.0, "maximum": 1e6},
}


KNN_RULES = ("canonical", "kdtree")
# a model saved before `knn_rule` existed (format 1.0, and runs trained before it) was trained with this rule
LEGACY_KNN_RULE = "kdtree"


def validate_model(model: ModelConfig, origin: str = "model", error: type[GIFStreamError] = ConfigError) -> None:
    validate.fields(model, origin, MODEL_RULES, error)
    if model.knn_rule not in KNN_RULES:
        raise error(f"{origin}.knn_rule: expected one of {list(KNN_RULES)}, got {model.knn_rule!r}")


@dataclasses.dataclass
class DecodeState:
    """How decoding is shaped at this step: by the schedule (train/schedule.py) and, `fixed_shape`, by the device
    the trainer runs on."""

    use_stream: bool = True  # False in the canonical phase: M_de = M_dy = 0, M_knn = 0.5
    quantize: str = "none"  # "none", "noise" (uniform noise) or "round" (straight-through rounding)
    feat_step: float = 1.0  # quantisation step of f and f_t
    geo_step: float = 0.02  # quantisation step of scales and offsets
    stream_window: int = 0  # f_t averaged over t±window (shrinks to 0 during training)
    # False: only the Gaussians that show are returned (selected with nonzero: a host-device read-back each, what
    # the CPU rasteriser wants, as its cost grows with their count). True: every anchor's K Gaussians in a fixed
    # order, those that do not show with opacity 0 (a GPU rasteriser culls them; no read-back, no gradient).
    # Training only: exports and proxies want the compact set.
    fixed_shape: bool = False


@dataclasses.dataclass
class AnchorValues:
    """Quantised time-invariant anchor attributes that replace the model's own parameters when decoding."""

    feat: torch.Tensor  # (N, C)
    log_scale: torch.Tensor  # (N, 6)
    offsets: torch.Tensor  # (N, K, 3)
    masks: dict[str, torch.Tensor] | None = None  # de, dy, knn, p (N,) each; None: the model's own quantised masks



@dataclasses.dataclass
class DecodeAux:
    """What a decode tells the trainer besides the Gaussians, per decoded row (an anchor at a frame) of n rows.

    A compact decode's rows are the anchors that can show and `shown` is all True; a fixed-shape one
    (`DecodeState.fixed_shape`) keeps every anchor's row and `shown` marks those a compact decode would have kept:
    statistics and losses over the rows count only those (`mean_over_shown`), so both give the same numbers."""

    anchor_idx: torch.Tensor  # (n,) long: each row's anchor (distinct when one frame is decoded)
    shown: torch.Tensor  # (n,) bool: the rows that can show (those a compact decode keeps)
    child_index: torch.Tensor  # (M,) long: each returned Gaussian's place among the n * K (row, offset) children
    opacity: torch.Tensor  # (n, K) each child's opacity (<= 0: dropped, or 0 in a fixed-shape decode)
    scales: torch.Tensor  # (n, K, 3)
    translation: torch.Tensor  # (n, 3) each row's anchor motion
    masks: dict[str, torch.Tensor]  # de, dy, knn, p: (N,) each, of every anchor

    def mean_over_shown(self, rows: torch.Tensor) -> torch.Tensor:
        """The mean of rows (n, ...) over the rows that show (0 where none does)."""
        weight = self.shown.to(rows.dtype).reshape(-1, *[1] * (rows.dim() - 1))
        count = self.shown.sum() * (rows[0].numel() if len(rows) else 1)
        return (rows * weight).sum() / count.clamp(min=1)
