"""Photometric loss (the rate term lives with the entropy models in codec/rate.py)."""

from __future__ import annotations

import torch

from ..eval.metrics import ssim


def photometric(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float) -> torch.Tensor:
    return (1 - ssim_weight) * (pred - target).abs().mean() + ssim_weight * (1 - ssim(pred, target))
