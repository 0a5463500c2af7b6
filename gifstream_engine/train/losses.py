"""Loss terms: photometric, regularisers and a factorised Gaussian bit estimate (the rate placeholder)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..eval.metrics import ssim


def photometric(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float) -> torch.Tensor:
    return (1 - ssim_weight) * (pred - target).abs().mean() + ssim_weight * (1 - ssim(pred, target))


def gaussian_bits(x: torch.Tensor, log_sigma: torch.Tensor, step: float) -> torch.Tensor:
    """Bits of x quantised with `step` under a zero-mean Gaussian per channel (last dim): -log2 P(bin)."""
    sigma = torch.exp(log_sigma).clamp(min=1e-4)
    upper = torch.special.ndtr((x + step / 2) / sigma)
    lower = torch.special.ndtr((x - step / 2) / sigma)
    return -torch.log2((upper - lower).clamp(min=1e-9))


class BitEstimator(nn.Module):
    """Learned per-channel scales of a factorised Gaussian prior over features, streams and geometry.

    A placeholder for the codec's conditional entropy models: it gives the trainer a differentiable rate.
    """

    def __init__(self, feat_dim: int, stream_dim: int):
        super().__init__()
        self.feat = nn.Parameter(torch.zeros(feat_dim))
        self.stream = nn.Parameter(torch.full((stream_dim,), math.log(0.5)))
        self.geo = nn.Parameter(torch.zeros(3))

    def forward(self, feat, stream_t, m_de, log_scale, offsets, feat_step, geo_step) -> torch.Tensor:
        """Mean bits per anchor of the anchors given (stream bits count only where M_de > 0)."""
        bits = gaussian_bits(feat, self.feat, feat_step).sum(-1)
        bits = bits + (gaussian_bits(stream_t, self.stream, feat_step).sum(-1) * m_de)
        bits = bits + gaussian_bits(offsets, self.geo, geo_step).sum((-1, -2))
        bits = bits + gaussian_bits(log_scale.reshape(len(log_scale), 2, 3), self.geo, geo_step).sum((-1, -2))
        return bits.mean()
