"""The anchors' motion neighbours: each anchor's k nearest kept anchors, independent of the anchors' order."""

from __future__ import annotations

import numpy as np
import torch


def nearest_kept(xyz: np.ndarray, kept: np.ndarray, k: int) -> np.ndarray:
    """(N, k) int64: for every anchor of xyz (N, 3), the indices of its k nearest anchors among `kept` (indices
    into xyz; all of them when empty), itself excluded; the last one repeated where fewer than k exist.

    The result depends only on the kept anchors' positions, never on their order (the tree is built over them in
    a canonical order, by x, then y, then z, so ties are broken alike), so a decoder that holds just the kept
    anchors, in coding order, finds exactly the neighbours the trainer used. One KD-tree query for all anchors, on
    torch's thread count."""
    from scipy.spatial import cKDTree  # imported on first use: scipy is slow to import and most commands never need it

    n = len(xyz)
    if len(kept) == 0:
        kept = np.arange(n)
    canonical = kept[np.lexsort(xyz[kept].T[::-1])]
    m = min(k + 1, len(canonical))
    _, found = cKDTree(xyz[canonical]).query(xyz, k=m, workers=torch.get_num_threads())
    idx = canonical[np.asarray(found).reshape(n, m)]
    if m > 1:  # drop the anchor itself, or the farthest where it is not among the candidates
        other = idx != np.arange(n)[:, None]
        other[other.all(1), -1] = False
        idx = idx[other].reshape(n, m - 1)
    if idx.shape[1] < k:
        idx = np.concatenate([idx, np.repeat(idx[:, -1:], k - idx.shape[1], 1)], 1)
    return idx
