"""Learned entropy models of the bitstream, trained jointly with the representation during QAT.

Each predicts a discretised Gaussian per symbol, P(s) = Phi((s - mu + 1/2) / sigma) - Phi((s - mu - 1/2) / sigma),
with mu and sigma in quantisation steps:
- `FeatureEntropyModel`: the anchor feature f in chunks of 8 channels. Chunk 0 has a learned prior, chunk j is
  predicted from the already-quantised chunks < j. Every channel also gets an adaptive quantisation step
  (the base step times 2^(+-1/2), snapped to 1/64 octave).
- `GeometryEntropyModel`: log-scales and offsets (with adaptive steps too) and the three coded masks (in
  levels of 1/16), all conditioned on the quantised feature.
- `StreamEntropyModel`: frame t of the feature stream laid on the 2D-sorted grid of dynamic anchors, predicted
  by a small CNN from frames t-1..t-3 and the M_de plane, so grid neighbours help.
Training runs them in float32 with uniform noise or straight-through rounding. The coder runs the very same
modules in float64 on the CPU and snaps (mu, sigma) to coarse grids (`snap_for_coding`), so that encoder and
decoder derive identical models whatever the thread count.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..model import MASK_STEP, mlp

CHUNK = 8  # feature channels per conditional chunk
SIGMA_MIN = 0.11  # smallest sigma, in quantisation steps
STEP_OCTAVES = 0.5  # adaptive steps lie within base * 2^(+-STEP_OCTAVES)
STEP_GRID = 64  # adaptive steps are snapped to 1/64 octave
MU_GRID = 4096  # coded means are snapped to 1/4096 step
SIGMA_GRID = 64  # coded sigmas are snapped to 1/64 octave
LOG_PROB_FLOOR = -24 * math.log(2)  # constriction's quantiser gives every symbol in range at least 2^-24
_FAR = 1e4  # an infinite bin edge, in standard deviations
MASK_LEVELS = round(1 / MASK_STEP)  # coded masks are integers 0..16
STREAM_CONTEXT = 3  # previous frames seen by the stream model
CODED_MASKS = ("de", "dy", "knn")  # M_p is not coded: only kept anchors (M_p = 1) are written


def ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def adaptive_step(raw: torch.Tensor, base: float) -> torch.Tensor:
    octaves = ste_round(STEP_OCTAVES * torch.tanh(raw) * STEP_GRID) / STEP_GRID
    return base * torch.exp2(octaves)


def quantize_steps(y: torch.Tensor, mode: str) -> torch.Tensor:
    """y already in units of its quantisation step: uniform noise (training), straight-through rounding to
    integers, or untouched ('none'). Its twin in value units is `model.gifstream.quantize_values`."""
    if mode == "noise":
        return y + torch.rand_like(y) - 0.5
    if mode == "round":
        return ste_round(y)
    return y


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, accurate at both ends."""
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def gaussian_bits(y: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
                  lo: float | None = None, hi: float | None = None) -> torch.Tensor:
    """-log2 P(y) of the discretised Gaussian (all in steps) as the rANS coder charges it.

    P is the mass of the bin [y - 1/2, y + 1/2]; with a known symbol range the bins at lo and hi reach to
    infinity (as constriction's quantiser folds the tails). It is evaluated in log space, so far symbols keep
    exact costs and gradients, and floored softly at the coder's smallest probability 2^-24."""
    sigma = sigma.clamp(min=SIGMA_MIN)
    z, half = (y - mu) / sigma, 0.5 / sigma
    lower, upper = z - half, z + half
    if lo is not None:
        lower = torch.where(y.detach() < lo + 0.5, torch.full_like(lower, -_FAR), lower)
    if hi is not None:
        upper = torch.where(y.detach() > hi - 0.5, torch.full_like(upper, _FAR), upper)
    flip = lower + upper > 0  # reflect bins above the mean: both cdf values are then small and exact
    lower, upper = torch.where(flip, -upper, lower), torch.where(flip, -lower, upper)
    log_upper = torch.special.log_ndtr(upper)
    log_p = log_upper + _log1mexp(torch.special.log_ndtr(lower) - log_upper)
    return -torch.logaddexp(log_p, torch.full_like(log_p, LOG_PROB_FLOOR)) / math.log(2)


def snap_for_coding(mu: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Coarse grids for (mu, sigma) in steps: float64 noise across thread counts cannot change the coded model."""
    mu = torch.round(mu * MU_GRID) / MU_GRID
    sigma = torch.exp2(torch.round(torch.log2(sigma.clamp(min=SIGMA_MIN)) * SIGMA_GRID) / SIGMA_GRID)
    return mu, sigma


def _zero_last(net: nn.Sequential) -> nn.Sequential:
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


class FeatureEntropyModel(nn.Module):
    def __init__(self, feat_dim: int, hidden: int = 16):
        super().__init__()
        self.chunks = [(a, min(a + CHUNK, feat_dim)) for a in range(0, feat_dim, CHUNK)]
        first = self.chunks[0][1]
        self.prior = nn.Parameter(torch.zeros(3, first))  # mu, log sigma, step logit of chunk 0
        self.context = nn.ModuleList(_zero_last(mlp(a, hidden, 3 * (b - a))) for a, b in self.chunks[1:])

    def chunk_params(self, j: int, previous: torch.Tensor, base_step: float):
        """(mu, sigma) in value units and the adaptive step of chunk j, from the decoded channels before it."""
        if j == 0:
            mu, log_sigma, raw = self.prior.to(previous.dtype)[:, None, :].expand(-1, len(previous), -1)
        else:
            mu, log_sigma, raw = self.context[j - 1](previous).chunk(3, dim=-1)
        return mu, torch.exp(log_sigma), adaptive_step(raw, base_step)

    def forward(self, feat: torch.Tensor, base_step: float, mode: str):
        """(quantised feature (N, C), bits per anchor (N,))."""
        decoded, bits = feat[:, :0], feat.new_zeros(len(feat))
        for j, (a, b) in enumerate(self.chunks):
            mu, sigma, q = self.chunk_params(j, decoded, base_step)
            y = quantize_steps(feat[:, a:b] / q, mode)
            bits = bits + gaussian_bits(y, mu / q, sigma / q).sum(-1)
            decoded = torch.cat([decoded, y * q], -1)
        return decoded, bits


class GeometryEntropyModel(nn.Module):
    """Log-scales (6), offsets (K x 3) and masks M_de, M_dy, M_knn conditioned on the quantised feature."""

    def __init__(self, feat_dim: int, num_offsets: int, hidden: int = 16):
        super().__init__()
        self.num_geo = 6 + 3 * num_offsets
        self.net = _zero_last(mlp(feat_dim, hidden, 3 * self.num_geo + 2 * len(CODED_MASKS)))

    def params(self, feat_hat: torch.Tensor, base_step: float):
        out = self.net(feat_hat)
        g = self.num_geo
        mu, log_sigma, raw = out[:, :g], out[:, g:2 * g], out[:, 2 * g:3 * g]
        mask_mu, mask_log_sigma = out[:, 3 * g:].chunk(2, dim=-1)
        return (mu, torch.exp(log_sigma), adaptive_step(raw, base_step)), (mask_mu, torch.exp(mask_log_sigma))

    def forward(self, feat_hat, log_scale, offsets, mask_levels, base_step: float, mode: str):
        """(quantised log-scales (N, 6), quantised offsets (N, K, 3), bits per anchor (N,)).

        mask_levels (N, 3) are the already quantised masks times 16 (straight-through from the logits)."""
        (mu, sigma, q), (mask_mu, mask_sigma) = self.params(feat_hat, base_step)
        x = torch.cat([log_scale, offsets.reshape(len(offsets), -1)], -1)
        y = quantize_steps(x / q, mode)
        bits = gaussian_bits(y, mu / q, sigma / q).sum(-1) + gaussian_bits(mask_levels, mask_mu, mask_sigma, 0, MASK_LEVELS).sum(-1)
        x_hat = y * q
        return x_hat[:, :6], x_hat[:, 6:].reshape(offsets.shape), bits


class StreamEntropyModel(nn.Module):
    """Frame t of the stream grid (P, S, S), in steps, from frames t-1..t-3, the M_de plane and occupancy."""

    def __init__(self, stream_dim: int, hidden: int = 16):
        super().__init__()
        self.stream_dim = stream_dim
        inp = STREAM_CONTEXT * stream_dim + 2
        self.net = nn.Sequential(
            nn.Conv2d(inp, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
            nn.Conv2d(hidden, 2 * stream_dim, 1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def params(self, previous: torch.Tensor, de_plane: torch.Tensor, occupancy: torch.Tensor):
        """previous (STREAM_CONTEXT, P, S, S), newest first, zeros before the GOP's start -> mu, sigma (P, S, S)."""
        x = torch.cat([previous.flatten(0, 1), de_plane[None], occupancy[None]])[None]
        mu, log_sigma = self.net(x)[0].chunk(2, dim=0)
        return mu, torch.exp(log_sigma)

    def frame_bits(self, window: torch.Tensor, de_plane: torch.Tensor, occupancy: torch.Tensor,
                   weight: torch.Tensor | None = None) -> torch.Tensor:
        """Summed bits of frame t: window (1 + STREAM_CONTEXT, P, S, S) holds frames t, t-1, .. in steps.

        weight (S, S), default the occupancy, scales each cell's bits (its gradient can reach M_de)."""
        mu, sigma = self.params(window[1:], de_plane, occupancy)
        return (gaussian_bits(window[0], mu, sigma) * (occupancy if weight is None else weight)).sum()


class EntropyModels(nn.Module):
    def __init__(self, feat_dim: int, stream_dim: int, num_offsets: int):
        super().__init__()
        self.feature = FeatureEntropyModel(feat_dim)
        self.geometry = GeometryEntropyModel(feat_dim, num_offsets)
        self.stream = StreamEntropyModel(stream_dim)
