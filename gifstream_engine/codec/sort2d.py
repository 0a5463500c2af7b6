"""2D sorting of anchors onto a square grid so that grid neighbours carry similar attributes.

Recursive bisection: the grid region is split along its longer side, the anchors are ordered along the first
principal component of their attributes and the first part fills the first half. Each level halves both the
region and the set, so neighbours on the grid are close in attribute space (a PLAS-like layout without its
iterative swaps). Grids are ceil(sqrt(N))^2 cells; empty cells are marked -1 and padded by the coder.

Two implementations of that bisection:
- `sort_to_grid`, the coder's: one node at a time, the exact first principal component of every node (an SVD in
  all D attributes). The grid is transmitted in the bitstream, so the decoder never sorts, but the encoder's
  bytes depend on this order (tests/test_format.py pins them): it stays as it is. ~0.7 ms per anchor at D = 243.
- `sort_to_grid_fast`, the trainer's (its rate estimate re-sorts the dynamic anchors every `knn_every` steps and
  after every growth): every node of a level at once, in the `FAST_DIMS` leading principal coordinates of all
  anchors, each node's direction from `POWER_ITERATIONS` power iterations started at its axis of largest
  variance. The same split rule, so the same cells get filled; grids of comparable smoothness
  (`neighbour_difference` within a few percent, bench/bench_scale_anchors.py) at ~0.1 s per 10k anchors.
"""

from __future__ import annotations

import math

import numpy as np

FAST_DIMS = 8  # principal coordinates the fast sort works in
FAST_SAMPLE = 16384  # rows (evenly strided) that estimate the attribute scales and principal axes
POWER_ITERATIONS = 2


def grid_side(n: int) -> int:
    return max(1, math.ceil(math.sqrt(n)))


def _split(count: np.ndarray, r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray):
    """The bisection rule for nodes of `count` anchors in regions [r0, r1) x [c0, c1) (arrays, one per node):
    the region is halved along its longer side (rows on a tie) and the first half receives k anchors, in
    proportion to its cells but so that every anchor finds a cell. Returns k and the two halves' regions."""
    cells = (r1 - r0) * (c1 - c0)
    tall = (r1 - r0) >= (c1 - c0)
    mid = np.where(tall, (r0 + r1) // 2, (c0 + c1) // 2)
    first_cells = np.where(tall, (mid - r0) * (c1 - c0), (r1 - r0) * (mid - c0))
    share = np.round(count * first_cells / cells).astype(np.int64)  # half to even, as Python's round
    k = np.minimum(np.minimum(count, np.maximum(count - (cells - first_cells), share)), first_cells)
    first = (r0, np.where(tall, mid, r1), c0, np.where(tall, c1, mid))
    second = (np.where(tall, mid, r0), r1, np.where(tall, c0, mid), c1)
    return k, first, second


def _principal_order(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(0)
    if len(x) < 2 or not np.any(centred):
        return np.arange(len(x))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return np.argsort(centred @ vt[0], kind="stable")


def sort_to_grid(attributes: np.ndarray) -> np.ndarray:
    """(side, side) int64 grid of anchor indices (-1 where empty) for attributes (N, D): the coder's exact sort."""
    n = len(attributes)
    side = grid_side(n)
    x = attributes.astype(np.float64)
    scale = x.std(0)
    x = x / np.where(scale > 0, scale, 1.0)  # every attribute counts alike
    grid = np.full((side, side), -1, dtype=np.int64)
    stack = [(np.arange(n), 0, side, 0, side)]
    while stack:
        ids, r0, r1, c0, c1 = stack.pop()
        if len(ids) == 0:
            continue
        if (r1 - r0) * (c1 - c0) == 1:
            grid[r0, c0] = ids[0]
            continue
        order = ids[_principal_order(x[ids])]
        k, first, second = _split(*(np.array([v]) for v in (len(order), r0, r1, c0, c1)))
        k = int(k[0])
        stack.append((order[:k], *(int(v[0]) for v in first)))
        stack.append((order[k:], *(int(v[0]) for v in second)))
    return grid


def _principal_coordinates(attributes: np.ndarray) -> np.ndarray:
    """(N, min(D, FAST_DIMS)) float32: the standardised attributes' leading principal coordinates (uncentred: every
    node centres its own), scales and axes estimated on at most ~2 * FAST_SAMPLE evenly strided rows."""
    rows = np.asarray(attributes[:: max(1, len(attributes) // FAST_SAMPLE)], dtype=np.float64)
    scale = rows.std(0)
    scale = np.where(scale > 0, scale, 1.0)  # every attribute counts alike
    rows = (rows - rows.mean(0)) / scale
    _, vectors = np.linalg.eigh(rows.T @ rows)  # ascending eigenvalues
    axes = vectors[:, ::-1][:, :FAST_DIMS] / scale[:, None]
    return np.asarray(attributes, dtype=np.float32) @ axes.astype(np.float32)


def _node_projections(y: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Each element's coordinate along its node's first principal direction; nodes are the consecutive runs of
    `count` rows of y (every count > 0)."""
    starts = np.cumsum(count) - count
    centred = y - np.repeat(np.add.reduceat(y, starts) / count[:, None], count, axis=0)
    variance = np.add.reduceat(centred * centred, starts)
    direction = np.zeros_like(variance)
    direction[np.arange(len(count)), variance.argmax(1)] = 1.0
    for _ in range(POWER_ITERATIONS):
        along = np.einsum("ij,ij->i", centred, np.repeat(direction, count, axis=0))
        moved = np.add.reduceat(centred * along[:, None], starts)
        norm = np.linalg.norm(moved, axis=1, keepdims=True)
        direction = np.where(norm > 0, moved / np.where(norm > 0, norm, 1.0), direction)
    return np.einsum("ij,ij->i", centred, np.repeat(direction, count, axis=0))


def sort_to_grid_fast(attributes: np.ndarray) -> np.ndarray:
    """(side, side) int64 grid of anchor indices (-1 where empty) for attributes (N, D): the same bisection as
    `sort_to_grid`, level by level over all nodes at once, in approximate principal directions."""
    n = len(attributes)
    side = grid_side(n)
    grid = np.full((side, side), -1, dtype=np.int64)
    if n == 0:
        return grid
    y = _principal_coordinates(attributes)
    ids = np.arange(n)
    # the live nodes, in the order of their runs of rows in (y, ids); a node is its count and its region
    count, r0, r1, c0, c1 = (np.array([v], dtype=np.int64) for v in (n, 0, side, 0, side))
    while len(count):
        cell = (r1 - r0) * (c1 - c0) == 1
        if cell.any():  # a one-cell region holds one anchor (or none): it is placed and leaves
            placed = cell & (count == 1)
            grid[r0[placed], c0[placed]] = ids[(np.cumsum(count) - count)[placed]]
            stay = np.repeat(~cell, count)
            y, ids = y[stay], ids[stay]
        live = ~cell & (count > 0)
        count, r0, r1, c0, c1 = (a[live] for a in (count, r0, r1, c0, c1))
        if not len(count):
            break
        if count.max() > 2:  # order every node along its principal direction (two anchors: either way)
            along = _node_projections(y, count)
            node = np.repeat(np.arange(len(count)), count)
            low = np.minimum.reduceat(along, np.cumsum(count) - count)
            span = np.maximum.reduceat(along, np.cumsum(count) - count) - low
            key = node + 0.5 * (along - low[node]) / np.where(span > 0, span, 1.0)[node]
            order = np.argsort(key, kind="stable")
            y, ids = y[order], ids[order]
        k, first, second = _split(count, r0, r1, c0, c1)
        interleave = lambda a, b: np.stack([a, b], 1).reshape(-1)  # noqa: E731  children stay in row order
        count = interleave(k, count - k)
        r0, r1, c0, c1 = (interleave(a, b) for a, b in zip(first, second))
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
