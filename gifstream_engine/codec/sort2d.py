"""2D sorting of anchors onto a square grid so that grid neighbours carry similar attributes.

Recursive bisection: the grid region is split along its longer side, the anchors are ordered along the first
principal component of their attributes and the first part fills the first half. Each level halves both the
region and the set, so neighbours on the grid are close in attribute space (a PLAS-like layout without its
iterative swaps). Grids are ceil(sqrt(N))^2 cells; empty cells are marked -1 and padded by the coder.
"""

from __future__ import annotations

import math

import numpy as np


def grid_side(n: int) -> int:
    return max(1, math.ceil(math.sqrt(n)))


def _principal_order(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(0)
    if len(x) < 2 or not np.any(centred):
        return np.arange(len(x))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return np.argsort(centred @ vt[0], kind="stable")


def sort_to_grid(attributes: np.ndarray) -> np.ndarray:
    """(side, side) int64 grid of anchor indices (-1 where empty) for attributes (N, D)."""
    n = len(attributes)
    side = grid_side(n)
    x = attributes.astype(np.float64)
    scale = x.std(0)
    x = x / np.where(scale > 0, scale, 1.0)  # every attribute counts alike
    grid = np.full((side, side), -1, dtype=np.int64)
    stack = [(np.arange(n), 0, side, 0, side)]
    while stack:
        ids, r0, r1, c0, c1 = stack.pop()
        cells = (r1 - r0) * (c1 - c0)
        if len(ids) == 0:
            continue
        if cells == 1:
            grid[r0, c0] = ids[0]
            continue
        order = ids[_principal_order(x[ids])]
        if (r1 - r0) >= (c1 - c0):
            mid = (r0 + r1) // 2
            first_cells = (mid - r0) * (c1 - c0)
            halves = ((r0, mid, c0, c1), (mid, r1, c0, c1))
        else:
            mid = (c0 + c1) // 2
            first_cells = (r1 - r0) * (mid - c0)
            halves = ((r0, r1, c0, mid), (r0, r1, mid, c1))
        # fill both halves in proportion to their cells, so every anchor finds a cell
        k = min(len(order), max(len(order) - (cells - first_cells), round(len(order) * first_cells / cells)), first_cells)
        stack.append((order[:k], *halves[0]))
        stack.append((order[k:], *halves[1]))
    return grid


def neighbour_difference(grid: np.ndarray, attributes: np.ndarray) -> float:
    """Mean absolute difference of attributes between horizontally and vertically adjacent filled cells."""
    total, count = 0.0, 0
    for a, b in ((grid[:, :-1], grid[:, 1:]), (grid[:-1, :], grid[1:, :])):
        ok = (a >= 0) & (b >= 0)
        diff = np.abs(attributes[a[ok]] - attributes[b[ok]])
        total += diff.sum()
        count += diff.size
    return total / max(count, 1)
