"""Photometric loss (the rate term lives with the entropy models in codec/rate.py)."""

from __future__ import annotations

import torch

from ..eval.metrics import ssim
from ..eval.motion import DILATE_PX, THRESHOLD, dilate_max


def photometric(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float,
                pixel_weight: torch.Tensor | None = None) -> torch.Tensor:
    """(1 - w) L1 + w (1 - SSIM) of images (H, W, 3), or the mean over a batch (B, H, W, 3) of images of one size;
    pixel_weight (H, W) or (B, H, W) reweights the L1 term (normalised to mean 1 in each image)."""
    l1 = (pred - target).abs()
    if pixel_weight is None:
        l1 = l1.mean()
    else:
        l1 = ((pixel_weight[..., None] * l1).mean((-3, -2, -1)) / pixel_weight.mean((-2, -1))).mean()
    return (1 - ssim_weight) * l1 + ssim_weight * (1 - ssim(pred, target))


def motion_importance(target: torch.Tensor, median: torch.Tensor, boost: float) -> torch.Tensor:
    """(H, W) weights 1 + boost * s, s in [0, 1] how far the frame departs from its camera's temporal median.

    DyNeRF's importance sampling in a rendered-image form: s = d^2 / (d^2 + g^2) with d the largest channel
    difference and g half the moving-pixel threshold, grown by the moving pixels' dilation so edges count too.
    """
    d = (target - median).abs().amax(-1)
    gamma = THRESHOLD / 2
    return 1 + boost * dilate_max(d**2 / (d**2 + gamma**2), DILATE_PX)
