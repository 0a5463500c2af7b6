"""The anchors' motion neighbours: each anchor's k nearest kept anchors, by a rule the decoder can recompute.

Two rules (`ModelConfig.knn_rule`):
- "canonical" (format 1.1 on): the k kept anchors j != i with the smallest squared distance, equal distances
  ordered by the kept anchor's canonical rank (its place when the kept positions are sorted by x, then y, then z).
  Anchors on voxel centres (all a trainer makes, all a bitstream holds) measure it exactly in voxel steps between
  their integer voxel keys; other positions as ((x_j - x_i)^2 + (y_j - y_i)^2) + (z_j - z_i)^2 in float64 of the
  float32 positions. The result depends on the positions alone, not on the algorithm, a library or the anchors'
  order. On voxel centres a lattice search looks the neighbours up shell by shell; the rows it leaves (no k kept
  anchors within 15 squared steps) and other positions take a KD tree's candidates ranked by the same rule.
- "kdtree" (format 1.0): cKDTree's own answer over the kept anchors in canonical order. Equal distances -- every
  other anchor on a voxel lattice has one -- fall where the tree's traversal puts them, so the result depends on
  SciPy's implementation; kept to decode streams and continue runs made with it.

Neighbours are listed nearest first (the canonical rule: by distance, then rank); where fewer than k kept anchors
exist the farthest repeats; with no anchor kept, every anchor counts as kept.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import torch

from .config import KNN_RULES

LATTICE_MAX_NORM = 15  # squared voxel steps searched on the lattice: every such offset lies within +-3 steps
_SHELL_REACH = int(np.floor(np.sqrt(LATTICE_MAX_NORM)))  # the farthest a shell's offset reaches along an axis
_TREE_SLACK = 4  # candidates asked of the KD tree beyond k + 1, so that ties at the k-th distance come with them
_DENSE_TABLE_CELLS = 1 << 24  # voxel boxes up to this many cells are looked up in a table, larger ones by search
_MAX_KEY = 1 << 19  # voxel keys beyond this are measured as positions (keys pack into one int64 up to about here)
_BRUTE_FORCE_PAIRS = 1 << 22  # few rows left: each is ranked against every kept anchor rather than a tree built
_CUBE_REACHES = (2, 3, 4, 6, 8)  # half-widths (voxel steps) of the cubes searched for the rows the shells left
_CUBE_CHUNK_ROWS = 64  # rows looked up at a time (a cube of half-width 14 has 24,389 cells: about 40 MB a chunk)
_CUBE_MAX_ROWS = 20_000  # more rows left than this go to the KD tree, which is cheaper per row


def nearest_kept(xyz: np.ndarray, kept: np.ndarray, k: int, rule: str = "canonical",
                 voxel: float | None = None) -> np.ndarray:
    """(N, k) int64: for every anchor of xyz (N, 3) float32, the indices of its k nearest anchors among `kept`
    (indices into xyz, distinct positions; all of them when empty), itself excluded, by `rule` (module doc).
    voxel: the anchors' voxel size (the canonical rule measures voxel centres in voxel steps)."""
    xyz = np.asarray(xyz, np.float32)
    n = len(xyz)
    kept = np.arange(n) if len(kept) == 0 else np.asarray(kept, np.int64)
    if rule not in KNN_RULES:
        raise ValueError(f"unknown knn rule {rule!r}; expected one of {KNN_RULES}")
    keys = _voxel_keys(xyz, voxel) if rule == "canonical" else None
    if keys is not None:  # packed voxel keys order as the positions do, and sort faster
        occupancy = _Occupancy(keys)
        canonical = kept[np.argsort(occupancy.cells[kept], kind="stable")]
    else:
        canonical = kept[np.lexsort(xyz[kept].T[::-1])]
    if rule == "kdtree":
        return _kdtree_answer(xyz, canonical, k)
    points = keys if keys is not None else xyz.astype(np.float64)  # what the rule measures
    out = np.empty((n, k), np.int64)
    pending = np.arange(n)
    if keys is not None:
        occupancy.hold(canonical)
        pending = _lattice_search(occupancy, canonical, k, out)
        pending = _cube_search(occupancy, keys, canonical, pending, k, out)
    if len(pending) * len(canonical) <= _BRUTE_FORCE_PAIRS:
        for i in pending:
            out[i] = _every_candidate(points, canonical, i, k)
    elif len(pending):
        out[pending] = _tree_search(points, canonical, pending, k)
    return out


def _voxel_keys(xyz: np.ndarray, voxel: float | None) -> np.ndarray | None:
    """Each anchor's integer voxel key where every anchor is exactly its voxel's centre (as
    `gop_coding.anchor_positions` places it) in a box the lattice search can pack, else None."""
    if voxel is None or not len(xyz):
        return None
    keys = np.floor(xyz.astype(np.float64) / voxel).astype(np.int64)
    if np.abs(keys).max() > _MAX_KEY or not np.array_equal(((keys + 0.5) * voxel).astype(np.float32), xyz):
        return None
    return keys


def _squared_distances(points: np.ndarray, rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """(R, C): the rule's d2 between each rows[i] and each of candidates[i] (R, C): exact in int64 for voxel keys,
    float64 summed x, y, z in that order for positions."""
    d = points[candidates] - points[rows][:, None, :]
    return (d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1]) + d[..., 2] * d[..., 2]


def _shells() -> list[list[tuple[int, int, int]]]:
    """Integer offsets with 1 <= |o|^2 <= LATTICE_MAX_NORM, grouped by |o|^2 ascending, each group in
    lexicographic order (so that a point's finds within a group come in its candidates' canonical order)."""
    groups: dict[int, list] = {}
    for o in itertools.product(range(-_SHELL_REACH, _SHELL_REACH + 1), repeat=3):
        norm = o[0] ** 2 + o[1] ** 2 + o[2] ** 2
        if 1 <= norm <= LATTICE_MAX_NORM:
            groups.setdefault(norm, []).append(o)
    return [sorted(groups[norm]) for norm in sorted(groups)]


SHELLS = _shells()
_CAPACITY_BEYOND_K = max(len(s) for s in SHELLS[:6])  # finds a row may hold past k - 1 (shells with |o|^2 <= 6)


class _Occupancy:
    """The anchors' voxel keys packed into one integer each (`cells`, row-major in their box grown by the shells'
    reach, so ascending in lexicographic key order and a voxel offset is a constant shift), and which kept anchor
    sits in a cell (`hold`): a table for small boxes, a binary search otherwise."""

    def __init__(self, keys: np.ndarray):
        self.low = low = keys.min(0) - _SHELL_REACH
        self.extent = keys.max(0) + _SHELL_REACH - low + 1
        self.strides = np.array([self.extent[1] * self.extent[2], self.extent[2], 1], np.int64)
        self.cells = (keys - low) @ self.strides

    def hold(self, canonical: np.ndarray) -> None:
        """The kept anchors, in canonical order (so their cells ascend)."""
        held = self.cells[canonical]
        size = int(np.prod(self.extent.astype(np.float64)))
        if size <= _DENSE_TABLE_CELLS:
            self.table = np.full(size, -1, np.int32)  # kept anchors < 2^31
            self.table[held] = canonical
        else:
            self.table = None
            self.sorted_cells, self.owner = held, canonical

    def shift(self, offset) -> int:
        return int(np.dot(offset, self.strides))

    def lookup(self, cells: np.ndarray) -> np.ndarray:
        """The kept anchor in each packed cell, -1 where none."""
        if self.table is not None:
            return self.table[cells]
        at = np.searchsorted(self.sorted_cells, cells)
        found = np.full(len(cells), -1, np.int32)
        inside = at < len(self.sorted_cells)
        hit = np.zeros(len(cells), bool)
        hit[inside] = self.sorted_cells[at[inside]] == cells[inside]
        found[hit] = self.owner[at[hit]]
        return found


def _lattice_search(occupancy: _Occupancy, canonical: np.ndarray, k: int, out: np.ndarray) -> np.ndarray:
    """Fill out's rows for the anchors whose k nearest kept anchors lie within LATTICE_MAX_NORM squared voxel steps,
    searched shell by shell of equal squared steps; returns the rows left to the other searches.

    A row's finds come in the rule's order -- shells ascending, each in its offsets' lexicographic order, which is
    the candidates' canonical order -- so once a row has k finds after a whole shell, its first k finds are its
    answer: nothing is measured or sorted."""
    cells = occupancy.cells
    n = len(cells)
    active = np.argsort(cells, kind="stable")  # neighbouring cells looked up in ascending order: cache-friendly
    capacity = k - 1 + _CAPACITY_BEYOND_K
    found = np.empty((n, capacity), np.int32)  # each row's finds in order (kept anchors < 2^31)
    count = np.zeros(n, np.int32)
    done = np.zeros(n, bool)
    for shell in SHELLS:
        active = active[count[active] + len(shell) <= capacity]  # the others: a sparse neighbourhood, left
        if not len(active):
            break
        shifts = np.array([occupancy.shift(o) for o in shell], np.int64)
        hit = occupancy.lookup((cells[active][:, None] + shifts[None, :]).reshape(-1)).reshape(len(active), len(shell))
        got = hit >= 0
        per_row = got.sum(1, dtype=np.int32)
        slot = np.cumsum(got, 1, dtype=np.int32) - 1 + count[active][:, None]
        found.reshape(-1)[np.repeat(active * capacity, per_row) + slot[got]] = hit[got]  # flat: faster than 2D
        count[active] += per_row
        finished = count[active] >= k
        done[active[finished]] = True
        active = active[~finished]
    out[done] = found[done, :k]
    return np.nonzero(~done)[0]


def _cube_search(occupancy: _Occupancy, keys: np.ndarray, canonical: np.ndarray, rows: np.ndarray, k: int,
                 out: np.ndarray) -> np.ndarray:
    """Fill out's rows for the rows the shells left (a neighbourhood too sparse, or too crowded, for them) on the
    voxel table: once a cube of half-width r around a row holds k kept anchors, its k-th squared distance is at
    most 3 r^2, so every anchor the rule could pick -- ties at the k-th distance included -- lies in the cube of
    half-width R, the least with R^2 >= 3 r^2; those are ranked by the rule (squared voxel steps, then canonical
    rank). Returns the rows left: no table (a large box), too many rows for cubes, or sparser than the largest
    cube."""
    if occupancy.table is None or not len(rows) or len(rows) > _CUBE_MAX_ROWS:
        return rows
    rank = np.empty(len(keys), np.int64)
    rank[canonical] = np.arange(len(canonical))
    for r in _CUBE_REACHES:
        if not len(rows):
            break
        ready = np.concatenate([(_kept_in_cubes(occupancy, keys, rows[a:a + _CUBE_CHUNK_ROWS], r) >= 0).sum(1) >= k
                                for a in range(0, len(rows), _CUBE_CHUNK_ROWS)])
        if ready.any():
            _rank_in_cubes(occupancy, keys, rank, rows[ready], math.isqrt(3 * r * r - 1) + 1, k, out)
            rows = rows[~ready]
    return rows


@functools.lru_cache(maxsize=None)
def _cube(r: int) -> np.ndarray:
    """The (2r + 1)^3 integer offsets of a cube of half-width r."""
    axis = np.arange(-r, r + 1)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


def _kept_in_cubes(occupancy: _Occupancy, keys: np.ndarray, rows: np.ndarray, r: int) -> np.ndarray:
    """(R, (2r + 1)^3): the kept anchor in each cell of the cube of half-width r around each row, -1 where there is
    none, outside the box, or the row itself."""
    cells = (keys[rows] - occupancy.low)[:, None, :] + _cube(r)[None]
    inside = ((cells >= 0) & (cells < occupancy.extent)).all(2)
    hits = np.full(inside.shape, -1, np.int64)
    hits[inside] = occupancy.table[cells[inside] @ occupancy.strides]
    hits[hits == rows[:, None]] = -1
    return hits


def _rank_in_cubes(occupancy: _Occupancy, keys: np.ndarray, rank: np.ndarray, rows: np.ndarray, reach: int, k: int,
                   out: np.ndarray) -> None:
    """out[rows]: the k kept anchors of each row's cube of half-width `reach` (it holds at least k) first by squared
    voxel steps, then by canonical rank."""
    for chunk in range(0, len(rows), _CUBE_CHUNK_ROWS):
        part = rows[chunk:chunk + _CUBE_CHUNK_ROWS]
        hits = _kept_in_cubes(occupancy, keys, part, reach)
        valid = hits >= 0
        safe = np.where(valid, hits, 0)  # an empty cell measured as anchor 0, then sorted last
        d2 = np.where(valid, _squared_distances(keys, part, safe), np.iinfo(np.int64).max)
        order = np.lexsort((rank[safe], d2), axis=1)[:, :k]
        out[part] = np.take_along_axis(hits, order, 1)


def _tree_search(points: np.ndarray, canonical: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The rule's k nearest kept anchors of rows, from KD-tree candidates over what the rule measures (`points`:
    voxel keys, exact in float64, or float64 positions), the kept ones in canonical order so that a candidate's
    tree index is its rank; a row whose k-th distance ties past the candidates asked for is completed with every
    kept anchor within that distance."""
    from scipy.spatial import cKDTree  # imported on first use: scipy is slow to import and most commands never need it

    m = len(canonical)
    asked = min(k + 1 + _TREE_SLACK, m)
    coordinates = points.astype(np.float64)
    tree = cKDTree(coordinates[canonical])
    _, rank = tree.query(coordinates[rows], k=asked, workers=torch.get_num_threads())
    rank = np.asarray(rank).reshape(len(rows), asked)
    candidates = np.where(canonical[rank] == rows[:, None], -1, canonical[rank])  # never itself
    valid = candidates >= 0
    rank = np.where(valid, rank, m)
    d2 = np.where(valid, _squared_distances(points, rows, np.where(valid, candidates, 0)).astype(np.float64), np.inf)
    order = np.lexsort((rank, d2), axis=1)
    candidates, d2 = np.take_along_axis(candidates, order, 1), np.take_along_axis(d2, order, 1)
    available = valid.sum(1)
    if asked < k:  # fewer kept anchors than k: room for k
        candidates = np.pad(candidates, ((0, 0), (0, k - asked)), constant_values=-1)
    out = candidates[:, :k].copy()
    short = available < k  # the farthest repeats (itself where no other anchor is kept)
    if short.any():
        last = np.where(available > 0, np.take_along_axis(candidates, np.maximum(available - 1, 0)[:, None], 1)[:, 0],
                        rows)
        out[short] = np.where(np.arange(k) < available[short, None], out[short], last[short, None])
    if asked < m:  # a tie at the k-th distance may continue past what was asked
        kth, farthest = d2[:, k - 1], d2[np.arange(len(rows)), available - 1]
        for i in np.nonzero(~(kth < farthest * (1 - 1e-9)))[0]:
            radius = np.sqrt(farthest[i]) * (1 + 1e-6) + 1e-30
            near = np.asarray(tree.query_ball_point(coordinates[rows[i]], radius), np.int64)
            out[i] = _every_candidate(points, canonical[np.sort(near)], rows[i], k)
    return out


def _every_candidate(points: np.ndarray, canonical: np.ndarray, row: int, k: int) -> np.ndarray:
    """The rule's k nearest of `canonical` (kept anchors in canonical order) to one row, ranked among all of them
    (the farthest repeated where fewer than k exist; itself where it is the only one)."""
    others = canonical[canonical != row]
    if not len(others):
        return np.full(k, row)
    d2 = _squared_distances(points, np.array([row]), others[None])[0]
    if len(others) > k:  # only those within the k-th smallest distance compete (ties at it included)
        near = np.nonzero(d2 <= np.partition(d2, k - 1)[k - 1])[0]
        others, d2 = others[near], d2[near]
    pick = others[np.lexsort((np.arange(len(others)), d2))[:k]]  # others keep canonical order: ties by rank
    return np.concatenate([pick, np.repeat(pick[-1:], k - len(pick))])


def _kdtree_answer(xyz: np.ndarray, canonical: np.ndarray, k: int) -> np.ndarray:
    """Format 1.0's rule: cKDTree's k + 1 nearest over the kept anchors in canonical order, itself dropped (else
    the farthest), the last one repeated where fewer than k remain."""
    from scipy.spatial import cKDTree

    n = len(xyz)
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
