"""Growth statistics and the rules that read them (Scaffold-GS rules with GIFStream's time-mixed gradient); when
they apply is `growth.GrowthPolicy`'s business.

Per child Gaussian slot (anchor, k) the 2D positional gradient is accumulated over the steps that saw it;
as each step shows one frame, max over steps ~ max over time: g = alpha * max_t g_t + (1 - alpha) * mean_t g_t.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..model import DecodeAux, GIFStreamModel


@dataclasses.dataclass
class GrowthStats:
    grad_sum: torch.Tensor  # (N, K)
    grad_max: torch.Tensor  # (N, K)
    seen: torch.Tensor  # (N, K) steps in which the child was rendered
    opacity_sum: torch.Tensor  # (N,) summed child opacity over steps the anchor was visible
    anchor_seen: torch.Tensor  # (N,)
    dyn_grad: torch.Tensor  # (N,) per-anchor gradient during the canonical phase (initialises M_dy)
    opacity_max: torch.Tensor  # (N,) largest mean child opacity of any step (frame) that saw the anchor

    @staticmethod
    def zeros(n: int, k: int, device) -> "GrowthStats":
        z = lambda *s: torch.zeros(*s, device=device)  # noqa: E731
        return GrowthStats(z(n, k), z(n, k), z(n, k), z(n), z(n), z(n), z(n))

    def select(self, index: torch.Tensor) -> "GrowthStats":
        return GrowthStats(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))

    def extend(self, count: int) -> "GrowthStats":
        parts = []
        for f in dataclasses.fields(self):
            t = getattr(self, f.name)
            parts.append(torch.cat([t, t.new_zeros((count, *t.shape[1:]))]))
        return GrowthStats(*parts)

    def reset_growth(self) -> None:
        for t in (self.grad_sum, self.grad_max, self.seen, self.opacity_sum, self.anchor_seen, self.opacity_max):
            t.zero_()


@torch.no_grad()
def accumulate(stats: GrowthStats, aux: DecodeAux, means2d_grad: torch.Tensor, visible: torch.Tensor, width: int,
               height: int, k: int) -> None:
    """Add one render's gradients (pixel-space means2d grads (M, 2) and visibility (M,) of the decoded Gaussians,
    converted to NDC scale of a width x height image as in 3DGS) to the rows of aux (one frame's decode: its
    anchors are distinct). Rows that do not show (a fixed-shape decode's) add nothing, as a compact decode
    that left them out."""
    scale = torch.tensor([width / 2.0, height / 2.0], device=means2d_grad.device)
    g = (means2d_grad * scale).norm(dim=-1) * visible
    n_rows = len(aux.anchor_idx)
    full = torch.zeros(n_rows * k, device=g.device)
    seen = torch.zeros(n_rows * k, device=g.device)
    full[aux.child_index] = g
    seen[aux.child_index] = visible.float()
    full, seen = full.view(n_rows, k), seen.view(n_rows, k)
    idx, shown = aux.anchor_idx, aux.shown.float()
    stats.grad_sum[idx] += full
    stats.grad_max[idx] = torch.maximum(stats.grad_max[idx], full)
    stats.seen[idx] += seen
    opacity = aux.opacity.clamp(min=0) * shown[:, None]
    stats.opacity_sum[idx] += opacity.sum(-1)
    stats.opacity_max[idx] = torch.maximum(stats.opacity_max[idx], opacity.mean(-1))
    stats.anchor_seen[idx] += shown
    stats.dyn_grad[idx] += full.sum(-1)


def voxel_ids(*keys: np.ndarray) -> list[np.ndarray]:
    """One int64 per row of each (K_i, 3) array of integer voxel keys, equal exactly where the voxels are equal
    (across all the arrays): the keys packed row-major into one integer when their bounding box allows, else
    their rank among the distinct keys."""
    every = np.concatenate(keys)
    if len(every) == 0:
        return [np.zeros(0, np.int64) for _ in keys]
    low = every.min(0)
    extent = every.max(0) - low + 1  # overflow only for keys of a box wider than 2^63: then ranks below
    if np.all(extent > 0) and float(np.prod(extent.astype(np.float64))) < 2.0 ** 62:
        ids = (every - low) @ np.array([extent[1] * extent[2], extent[2], 1], dtype=np.int64)
    else:
        ids = np.unique(every, axis=0, return_inverse=True)[1].reshape(-1)
    return np.split(ids, np.cumsum([len(k) for k in keys])[:-1])


def first_in_new_voxels(keys: np.ndarray, existing: np.ndarray) -> np.ndarray:
    """Ascending indices of the rows of keys (M, 3) that are the first of their voxel and whose voxel is not one of
    existing (N, 3)'s: with keys strongest first, each new voxel's strongest candidate."""
    candidate, taken = voxel_ids(keys, existing)
    _, first = np.unique(candidate, return_index=True)  # a stable sort: the first occurrence of each voxel
    first = np.sort(first)
    return first[~np.isin(candidate[first], taken)]


def time_mixed_gradient(stats: GrowthStats, alpha: float) -> torch.Tensor:
    mean = stats.grad_sum / stats.seen.clamp(min=1)
    return alpha * stats.grad_max + (1 - alpha) * mean


@torch.no_grad()
def grow_candidates(model: GIFStreamModel, stats: GrowthStats, threshold: float, alpha: float, min_seen: int = 2):
    """Canonical positions of new anchors (one per new voxel) and the parent anchor of each, strongest gradient
    first (when the anchor budget is nearly spent, the remaining room goes where the error is largest)."""
    g = time_mixed_gradient(stats, alpha)
    mask = (g > threshold) & (stats.seen >= min_seen)
    if not mask.any():
        return None, None
    anchor_idx, child = torch.nonzero(mask, as_tuple=True)
    strongest = torch.sort(g[anchor_idx, child], descending=True, stable=True)[1]
    anchor_idx, child = anchor_idx[strongest], child[strongest]
    local = model.offsets[anchor_idx, child] * torch.exp(model.log_scale[anchor_idx, :3])
    pos = (model.anchor_xyz[anchor_idx] + local).cpu().numpy()
    voxel = model.cfg.voxel_size
    keys = np.floor(pos / voxel).astype(np.int64)
    first = first_in_new_voxels(keys, np.floor(model.anchor_xyz.cpu().numpy() / voxel).astype(np.int64))
    if len(first) == 0:
        return None, None
    centres = (keys[first] + 0.5) * voxel
    return torch.as_tensor(centres, dtype=torch.float32), anchor_idx[torch.as_tensor(first)]


@torch.no_grad()
def low_opacity_anchors(stats: GrowthStats, min_opacity: float, k: int, alpha: float, min_seen: int = 5) -> torch.Tensor:
    """Anchors whose opacity is low over time, mixed like the growth gradient: alpha * max_t + (1 - alpha) * mean_t.
    An anchor that shows in a few frames only (an object passing by) keeps its max and is not pruned for
    being transparent in the others; one transparent in every frame is."""
    mean_opacity = stats.opacity_sum / (stats.anchor_seen.clamp(min=1) * k)
    mixed = alpha * stats.opacity_max + (1 - alpha) * mean_opacity
    return (stats.anchor_seen >= min_seen) & (mixed < min_opacity)
