"""The rate as the trainer and the evaluator see it: entropy-model quantisation of all anchors, bits of a frame.

`quantised_anchors` defines the time-invariant values a model decodes with during training (adaptive steps from
the entropy models); the coder runs the same walk in float64 (gop_coding.py), and a finished run is evaluated
with the coder's values (`coded_anchor_values`), which differ only where float32 rounding lands elsewhere.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from ..model import MASK_STEP, AnchorValues, DecodeState, GIFStreamModel
from .entropy_models import CODED_MASKS, STREAM_CONTEXT, EntropyModels, quantize_steps
from .sort2d import sort_to_grid, sort_to_grid_fast


def mask_levels(masks: dict[str, torch.Tensor]) -> torch.Tensor:
    """(N, 3) coded masks in levels of 1/16 (straight-through gradients from the logits)."""
    return torch.stack([masks[name] for name in CODED_MASKS], -1) / MASK_STEP


def quantised_anchors(model: GIFStreamModel, entropy: EntropyModels, state: DecodeState,
                      rate_only: bool = False) -> tuple[AnchorValues, torch.Tensor]:
    """Values for decoding and bits per anchor (zero for pruned anchors, M_p = 0).

    rate_only: the bits' gradient reaches only the entropy models (fitting them before the rate is in the loss)."""
    masks = model.masks(state)
    feat, log_scale, offsets, levels = model.feat, model.log_scale, model.offsets, mask_levels(masks)
    if rate_only:
        feat, log_scale, offsets, levels = feat.detach(), log_scale.detach(), offsets.detach(), levels.detach()
    feat_hat, feat_bits = entropy.feature(feat, state.feat_step, state.quantize)
    log_scale_hat, offsets_hat, geo_bits = entropy.geometry(feat_hat, log_scale, offsets, levels, state.geo_step,
                                                           state.quantize)
    bits = (feat_bits + geo_bits) * masks["p"].detach()
    return AnchorValues(feat_hat, log_scale_hat, offsets_hat, None), bits


def stream_grid(xyz: np.ndarray, stream: np.ndarray,
                sort: Callable[[np.ndarray], np.ndarray] = sort_to_grid) -> np.ndarray:
    """(S, S) grid of indices into the dynamic anchors given (-1: empty), sorted by trajectory and position.

    xyz (D, 3), stream (D, T, P) in steps: anchors with similar streams become grid neighbours. `sort`: the
    coder's exact `sort_to_grid` (the default), or the trainer's `sort_to_grid_fast` (sort2d.py)."""
    if len(xyz) == 0:
        return np.full((0, 0), -1, dtype=np.int64)
    return sort(np.concatenate([xyz, stream.reshape(len(stream), -1)], 1))


@dataclasses.dataclass
class TrainingStreamGrid:
    """The trainer's current grid of dynamic anchors (model indices), refreshed as anchors change.

    Sorted with `sort_to_grid_fast`: the coder's exact sort costs too much to repeat every `knn_every` steps at
    real size, and a grid of comparable smoothness gives the same rate within the coder's ~1% (`estimated_bits`
    uses this grid too, and tests/test_codec.py checks it against the bytes the coder writes)."""

    cells: torch.Tensor  # (S, S) long, -1 where empty

    @staticmethod
    @torch.no_grad()
    def of(model: GIFStreamModel, state: DecodeState) -> "TrainingStreamGrid | None":
        dynamic = torch.nonzero(model.masks(state)["de"] > 0).squeeze(1).cpu()
        if len(dynamic) == 0:
            return None
        stream = (model.stream[dynamic.to(model.stream.device)] / state.feat_step).cpu().numpy()
        local = stream_grid(model.anchor_xyz[dynamic.to(model.anchor_xyz.device)].cpu().numpy(), stream, sort_to_grid_fast)
        cells = torch.where(torch.as_tensor(local) >= 0, dynamic[torch.as_tensor(local).clamp(min=0)], -1)
        return TrainingStreamGrid(cells.to(model.stream.device))


def stream_frame_bits(model: GIFStreamModel, entropy: EntropyModels, grid: TrainingStreamGrid, t: int,
                      state: DecodeState, rate_only: bool = False) -> torch.Tensor:
    """Bits of frame t of the stream of the grid's anchors, predicted from frames t-1..t-3."""
    occupancy = (grid.cells >= 0).to(model.stream.dtype)
    idx = grid.cells.clamp(min=0)
    stream = model.stream.detach() if rate_only else model.stream
    frames = []
    for back in range(STREAM_CONTEXT + 1):
        if t - back < 0:
            frames.append(torch.zeros(stream.shape[-1], *idx.shape, device=stream.device))
            continue
        y = quantize_steps(stream[idx, t - back] / state.feat_step, state.quantize)  # (S, S, P)
        frames.append(y.permute(2, 0, 1) * occupancy)
    de = model.masks(state)["de"][idx]
    # each cell counts once, while the gradient tells M_de what its stream costs (M_de = 0 removes it)
    weight = occupancy if rate_only else occupancy * (1 + de - de.detach())
    return entropy.stream.frame_bits(torch.stack(frames), de.detach() * occupancy, occupancy, weight)


@torch.no_grad()
def estimated_bits(model: GIFStreamModel, entropy: EntropyModels, state: DecodeState) -> dict[str, float]:
    """The training rate of the final quantised model over the whole GOP: anchor bits and stream bits.

    The coder writes these symbols with these models, so its rANS payloads should match within ~1%."""
    _, anchor_bits = quantised_anchors(model, entropy, state)
    grid = TrainingStreamGrid.of(model, state) if state.use_stream else None
    stream = 0.0
    if grid is not None:
        stream = sum(float(stream_frame_bits(model, entropy, grid, t, state)) for t in range(model.num_frames))
    return {"anchors": float(anchor_bits.sum()), "stream": stream}
