"""Anchors from points: one per occupied voxel (`voxelize`) and each one's initial scale (`initial_spacing`)."""

from __future__ import annotations

import numpy as np

def initial_spacing(points: np.ndarray, voxel: float) -> np.ndarray:
    """Per-anchor scale seed: mean distance to the 3 nearest anchors (at least the voxel size)."""
    from scipy.spatial import cKDTree

    if len(points) < 2:
        return np.full(len(points), voxel)
    k = min(4, len(points))
    dist, _ = cKDTree(points).query(points, k=k)
    return np.maximum(dist[:, 1:].mean(1), voxel)


def voxelize(points: np.ndarray, colors: np.ndarray, voxel: float,
             occupancy: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One anchor per occupied voxel at the voxel's centre, with the mean colour of its points and the union of
    their `occupancy` (N, T) bool, the frames each point was seen moving in (None when not given)."""
    keys = np.floor(points / voxel).astype(np.int64)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    col = np.zeros((len(uniq), 3))
    np.add.at(col, inverse, colors.astype(np.float64))
    col /= np.bincount(inverse, minlength=len(uniq))[:, None]
    occ = None
    if occupancy is not None:
        occ = np.zeros((len(uniq), occupancy.shape[1]), bool)
        np.logical_or.at(occ, inverse, np.asarray(occupancy, bool))
    return (uniq + 0.5) * voxel, col.astype(np.uint8), occ
