"""Quantisation as the model sees it: values to multiples of a step (noise or straight-through rounding), and the
masks to 1/16 with a floor that turns small masks off."""

from __future__ import annotations

import math

import torch

MASK_NAMES = ("de", "dy", "knn", "p")  # feature-stream, dynamic-motion, KNN-blend, pruning masks
MASK_STEP = 1.0 / 16.0
MASK_FLOOR = 0.1
OPEN_LOGIT = math.log(0.9 / 0.1)  # M_de, M_dy of anchors seeded on something that moves
CLOSED_LOGIT = math.log(0.05 / 0.95)  # ... and of the others: quantised to 0 (under MASK_FLOOR - MASK_STEP / 2)

def quantize_values(x: torch.Tensor, step: float, mode: str) -> torch.Tensor:
    """x in value units, quantised to multiples of `step`: uniform noise of one step (training), straight-through
    rounding, or untouched ('none'). Its twin in step units is `codec.entropy_models.quantize_steps`."""
    if mode == "noise":
        return x + (torch.rand_like(x) - 0.5) * step
    if mode == "round":
        return x + (torch.round(x / step) * step - x).detach()  # straight-through estimator
    return x


def quantize_mask(m: torch.Tensor, active: bool) -> torch.Tensor:
    """Masks are stored to 1/16 and values under 0.1 become exactly 0 (static anchors carry no stream)."""
    if not active:
        return m
    q = torch.round(m / MASK_STEP) * MASK_STEP
    q = torch.where(q < MASK_FLOOR, torch.zeros_like(q), q)
    return m + (q - m).detach()


