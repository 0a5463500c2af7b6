"""The paper's training schedule: which phase a step is in and how decoding behaves there."""

from __future__ import annotations

import dataclasses

from ..model import DecodeState
from .config import TrainConfig

PHASES = ("canonical", "joint", "qat_noise", "qat_round")


@dataclasses.dataclass(frozen=True)
class StepPlan:
    phase: str
    decode: DecodeState
    entropy: bool  # rate term active
    densify: bool  # grow/prune anchors at this step
    prune_masked: bool  # drop anchors whose M_p is 0 at this step
    init_dynamic_masks: bool  # the step that ends the canonical phase


def phase_of(step: int, cfg: TrainConfig) -> str:
    f = step / cfg.steps
    if f < cfg.canonical_frac:
        return "canonical"
    if f < cfg.joint_end_frac:
        return "joint"
    if f < cfg.round_frac:
        return "qat_noise"
    return "qat_round"


def plan(step: int, cfg: TrainConfig) -> StepPlan:
    phase = phase_of(step, cfg)
    f = step / cfg.steps
    # f_t is averaged over a window that shrinks linearly to a single frame by the end of the joint phase
    window = 0
    if cfg.joint_end_frac > 0 and f < cfg.joint_end_frac:
        window = round(cfg.stream_window * (1 - f / cfg.joint_end_frac))
    decode = DecodeState(
        use_stream=phase != "canonical" and not cfg.disable_stream,
        quantize={"qat_noise": "noise", "qat_round": "round"}.get(phase, "none"),
        feat_step=cfg.feat_step,
        geo_step=cfg.geo_step,
        stream_window=window,
    )
    canonical_end = int(round(cfg.canonical_frac * cfg.steps))
    in_densify = cfg.densify_start_frac * cfg.steps <= step <= cfg.densify_end_frac * cfg.steps
    in_prune = cfg.prune_start_frac * cfg.steps <= step <= cfg.prune_end_frac * cfg.steps
    return StepPlan(
        phase=phase,
        decode=decode,
        entropy=f >= cfg.entropy_start_frac and phase.startswith("qat"),
        densify=in_densify and step > 0 and step % cfg.densify_every == 0,
        prune_masked=in_prune and step % 500 == 0,
        init_dynamic_masks=step == canonical_end and canonical_end > 0,
    )


def final_decode_state(cfg: TrainConfig) -> DecodeState:
    """How a trained model is decoded for evaluation and coding: quantised, one frame of stream."""
    return DecodeState(use_stream=not cfg.disable_stream, quantize="round", feat_step=cfg.feat_step, geo_step=cfg.geo_step)
