"""Following what moves: the pieces of the moving pixels' visual hull, linked from frame to frame into tracks.

Anchors seeded frame by frame on a moving object (train/seeding.py) are separate copies of it, one per frame, each
shown by the time code near its own frame only: every copy sees about 1/T of the training steps, and the motion
decoder, whose output starts at zero, never learns to carry one set of anchors along a path of metres (its
gradient vanishes once the rendered object no longer overlaps the footage). GIFStream's representation is one
canonical set of anchors moved per frame. The hull of frame t (train/carving.py) splits into connected pieces,
one per moving object (or its shadow); linking each piece to the track whose last centre is nearest gives, per
object, its centre in every frame. Seeds of frame k on track j then move back to the track's reference frame by
c_j(ref) - c_j(k), and the translation c_j(t) - c_j(ref) is what the motion decoder is first fitted to
(train/motion_init.py) before the photometric training refines it.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from scipy import ndimage

from .carving import SolidHull

MIN_CORE_CELLS = 2  # smaller cores of a frame's hull are carving noise
MIN_SIGHTINGS = 2  # a track seen in fewer frames carries no motion


@dataclasses.dataclass
class Tracks:
    """J tracks over T frames."""

    centres: np.ndarray  # (J, T, 3) world centre per frame: interpolated between sightings, held outside them
    present: np.ndarray  # (J, T) bool: from the first sighting to the last
    reference: np.ndarray  # (J,) frame of each track's largest piece: its canonical pose
    labels: np.ndarray  # (T, G) int32: the track of each solid cell of the hull, -1 for none

    @property
    def count(self) -> int:
        return len(self.centres)

    def translation(self, track: np.ndarray) -> np.ndarray:
        """(N, T, 3): how far each track (N,) has moved from its reference frame in every frame."""
        ref = self.centres[track, self.reference[track]]
        return self.centres[track] - ref[:, None, :]

    def label_points(self, hull: SolidHull, points: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """(N,) track of points (N, 3) seen in frames (N,): the label of their cell, else of a labelled cell
        next to it (a triangulated surface point can fall just outside the carved cells); -1 for none."""
        found = np.full(len(points), -1, np.int64)
        offsets = sorted(itertools.product((-1, 0, 1), repeat=3), key=lambda o: sum(abs(v) for v in o))
        for offset in offsets:  # the point's own cell first, then face, edge and corner neighbours
            todo = found < 0
            if not todo.any():
                break
            cell = hull.cell_of(points[todo] + np.asarray(offset) * hull.voxel)
            label = np.where(cell >= 0, self.labels[frames[todo], np.maximum(cell, 0)], -1)
            found[np.nonzero(todo)[0]] = label
        return found


def track_pieces(hull: SolidHull, core_depth: int = 2, max_gap: int = 8) -> Tracks:
    """Link the pieces of each frame's solid hull into tracks.

    A visual hull from cameras on one side is elongated towards them, so two objects' hulls (and their shadows on
    the floor) often touch; eroding the hull by `core_depth` cells leaves a core per object (a piece too thin to
    keep a core is its own). Greedily, nearest first, a core joins the track whose predicted centre (its last one
    moved on at its last velocity) lies within a jump of the core's own size (its bounding box's diagonal plus the erosion, at least two cells) per frame since that
    track was last seen (at most `max_gap` frames ago); other cores start tracks. A core more than twice the median
    size of the track it joins is two objects merged: it is a sighting of neither (their centres are interpolated). Tracks
    seen in fewer than MIN_SIGHTINGS frames are dropped. Every solid cell takes the track of its nearest core."""
    num_frames = hull.solid.shape[0]
    grid = hull.solid.reshape(num_frames, *hull.shape)
    structure = np.ones((3, 3, 3), bool)
    sightings: list[dict[int, tuple[np.ndarray, int]]] = []  # per track: frame -> (centre, core cells)
    cores = []  # per frame: (core label volume, core -> track)
    for t in range(num_frames):
        core_of, count = _cores(grid[t], core_depth, structure)
        core_track = np.full(count + 1, -1, np.int64)
        cores.append((core_of, core_track))
        if count == 0:
            continue
        flat = core_of.reshape(-1)
        cells = np.nonzero(flat)[0]
        ids = flat[cells] - 1
        size = np.bincount(ids, minlength=count)
        ijk = np.stack(np.unravel_index(cells, hull.shape), -1).astype(np.float64)
        centre = np.stack([np.bincount(ids, ijk[:, a], count) for a in range(3)], -1) / np.maximum(size, 1)[:, None]
        lo = np.full((count, 3), np.inf)
        hi = np.full((count, 3), -np.inf)
        np.minimum.at(lo, ids, ijk)
        np.maximum.at(hi, ids, ijk)
        reach = np.maximum(np.linalg.norm(hi - lo + 1, axis=1) + 2 * core_depth, 2.0)  # cells per frame
        pairs = []
        for j, seen in enumerate(sightings):
            last = max(seen)
            gap = t - last
            if gap > max_gap:
                continue
            predicted = _predict(seen, t)
            for p in range(count):
                d = float(np.linalg.norm(centre[p] - predicted))
                if d <= reach[p] * gap:
                    pairs.append((d, j, p))
        used = set()
        for d, j, p in sorted(pairs):
            if j in used or core_track[p + 1] >= 0:
                continue
            core_track[p + 1] = j
            used.add(j)
        for p in range(count):
            j = core_track[p + 1]
            if j < 0:
                core_track[p + 1] = len(sightings)
                sightings.append({t: (centre[p], int(size[p]))})
            elif size[p] > 2 * np.median([cells for _, cells in sightings[j].values()]):
                core_track[p + 1] = -1  # two objects merged: not a sighting of either, and no new track
            else:
                sightings[j][t] = (centre[p], int(size[p]))
    kept = [j for j, seen in enumerate(sightings) if len(seen) >= MIN_SIGHTINGS]
    renumber = np.full(len(sightings) + 1, -1, np.int64)
    renumber[np.asarray(kept, np.int64)] = np.arange(len(kept))
    labels = np.full(hull.solid.shape, -1, np.int32)
    for t, (core_of, core_track) in enumerate(cores):
        if core_of.max() == 0:
            continue
        # every solid cell takes the track of its nearest core cell
        nearest = ndimage.distance_transform_edt(core_of == 0, return_distances=False, return_indices=True)
        track = renumber[core_track[core_of[tuple(nearest)]]]  # -1 (no track) maps to the last entry, -1
        labels[t] = np.where(grid[t], track, -1).reshape(-1)
    frames = np.arange(num_frames)
    centres = np.zeros((len(kept), num_frames, 3))
    present = np.zeros((len(kept), num_frames), bool)
    reference = np.zeros(len(kept), np.int64)
    for i, j in enumerate(kept):
        seen = sorted(sightings[j])
        world = np.stack([hull.lo + (sightings[j][f][0] + 0.5) * hull.voxel for f in seen])
        for a in range(3):  # np.interp holds the end values outside the sightings
            centres[i, :, a] = np.interp(frames, seen, world[:, a])
        present[i, seen[0]:seen[-1] + 1] = True
        reference[i] = max(seen, key=lambda f: sightings[j][f][1])
    return Tracks(centres, present, reference, labels)


def _predict(seen: dict[int, tuple[np.ndarray, int]], t: int) -> np.ndarray:
    """Where a track's centre should be in frame t: its last centre moved on at the velocity between its last two
    sightings (at rest with one)."""
    frames = sorted(seen)
    last = seen[frames[-1]][0]
    if len(frames) < 2:
        return last
    velocity = (last - seen[frames[-2]][0]) / (frames[-1] - frames[-2])
    return last + velocity * (t - frames[-1])


def _cores(solid: np.ndarray, depth: int, structure: np.ndarray) -> tuple[np.ndarray, int]:
    """Labelled cores (1..count) of one frame's solid grid: the pieces left by eroding it `depth` times, plus
    every piece of the solid that erosion removed entirely (an object too thin to keep a core)."""
    core = ndimage.binary_erosion(solid, iterations=depth) if depth > 0 else solid
    core_of, count = ndimage.label(core, structure=structure)
    piece_of, pieces = ndimage.label(solid, structure=structure)
    if pieces:
        cored = np.zeros(pieces + 1, bool)
        cored[np.unique(piece_of[core])] = True
        thin = ~cored[piece_of] & solid
        if thin.any():
            thin_of, extra = ndimage.label(thin, structure=structure)
            core_of = np.where(thin, thin_of + count, core_of)
            count += extra
    sizes = np.bincount(core_of.reshape(-1), minlength=count + 1)
    small = np.nonzero(sizes[1:] < MIN_CORE_CELLS)[0] + 1
    if len(small):  # carving noise
        keep = np.ones(count + 1, bool)
        keep[small] = False
        renumber = np.cumsum(keep) - 1
        core_of = np.where(keep[core_of], renumber[core_of], 0)
        count = int(keep[1:].sum())
    return core_of.astype(np.int64), count
