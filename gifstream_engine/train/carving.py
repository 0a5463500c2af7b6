"""Where something moves, frame by frame: the visual hull of the training cameras' moving pixels.

Feature matching finds few points on a moving object (on the demo, 4 to 11 per frame on the ball), too few
anchors to show it. The moving pixels of frame t (eval/motion.py) are, in every training camera, a silhouette of
what moved; a voxel whose centre falls on moving pixels in the cameras that see it lies inside the object (or on
its moving shadow). Carving a coarse grid with those silhouettes gives each voxel the set of frames it is
occupied in: the anchors seeded there show only when needed (GIFStreamModel's time code) and cover the object
whatever its texture.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..capture import Capture
from ..capture.types import bounds_from_points
from ..eval.motion import moving_pixels

MAX_CELLS = 1_000_000  # grid cells carved at most: the voxel grows beyond this


@dataclasses.dataclass
class MovingHull:
    """Surface voxels of what moves: centres, colours, and the frames each is occupied in."""

    xyz: np.ndarray  # (M, 3) voxel centres
    colors: np.ndarray  # (M, 3) uint8, the footage's mean colour there in the first frame it is occupied
    occupancy: np.ndarray  # (M, T) bool
    voxel: float

    @staticmethod
    def empty(num_frames: int, voxel: float) -> "MovingHull":
        return MovingHull(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros((0, num_frames), bool), voxel)


@dataclasses.dataclass
class SolidHull:
    """The carved grid: `solid` (T, G) bool, cell g of frame t inside what moves; cells in x-major order."""

    solid: np.ndarray  # (T, G)
    shape: tuple[int, int, int]
    lo: np.ndarray  # (3,) corner of cell (0, 0, 0)
    voxel: float

    @property
    def centres(self) -> np.ndarray:
        grid = np.stack(np.meshgrid(*[np.arange(s) for s in self.shape], indexing="ij"), -1).reshape(-1, 3)
        return self.lo + (grid + 0.5) * self.voxel

    def cell_of(self, points: np.ndarray) -> np.ndarray:
        """(N,) flat cell index of points (N, 3), -1 outside the grid."""
        ijk = np.floor((points - self.lo) / self.voxel).astype(np.int64)
        inside = ((ijk >= 0) & (ijk < np.asarray(self.shape))).all(1)
        flat = np.ravel_multi_index(tuple(np.clip(ijk, 0, np.asarray(self.shape) - 1).T), self.shape)
        return np.where(inside, flat, -1)


def carve_solid(capture: Capture, voxel: float, scene_points: np.ndarray,
                min_view_fraction: float = 0.75) -> SolidHull | None:
    """Cells (of size `voxel`, in the bounds of `scene_points` (P, 3) and the cameras) on moving pixels in every
    training camera that sees them (one miss allowed from 5 views on), seen by `min_view_fraction` of them (and 3
    at least), frame by frame; None when the capture has too few cameras, points or frames to carve."""
    cams = capture.split_indices("train")
    num_frames = capture.num_frames
    # seen by most cameras: a cell near the rig's edge of view, seen by few, passes by chance
    min_views = max(3, int(np.ceil(min_view_fraction * len(cams))))
    if len(cams) < min_views or len(scene_points) < 2 or num_frames < 2:
        return None
    # what moves is between the cameras and the static set (whose SfM points may miss the foreground entirely)
    centres_of_cams = np.stack([capture.cameras[c].center for c in cams])
    lo, hi = bounds_from_points(np.concatenate([scene_points, centres_of_cams]), pad=0.02, quantile=0.0)
    while np.prod(np.ceil((hi - lo) / voxel)) > MAX_CELLS:
        voxel *= 1.25
    shape = tuple(int(s) for s in np.ceil((hi - lo) / voxel))
    hull = SolidHull(np.zeros((num_frames, int(np.prod(shape))), bool), shape, lo, voxel)
    centres = hull.centres
    votes = np.zeros((num_frames, len(centres)), np.int16)
    views = np.zeros(len(centres), np.int16)
    for c in cams:
        col, row, inside = capture.cameras[c].pixels(centres)
        views += inside
        cells = np.nonzero(inside)[0]
        votes[:, cells] += moving_pixels(capture.frames(c))[:, row[cells], col[cells]]
    misses = np.where(views >= 5, 1, 0)
    hull.solid = (views >= min_views) & (votes >= views - misses) & (votes > 0)  # (T, G)
    return hull


def carve_moving(capture: Capture, voxel: float, scene_points: np.ndarray, max_voxels: int,
                 min_view_fraction: float = 0.75, seed: int = 0, solid: SolidHull | None = None) -> MovingHull:
    """Surface voxels (with an empty face neighbour) of `carve_solid`'s cells (or of `solid`, already carved), at
    most `max_voxels` of them (an even subsample), with the frames each is occupied in."""
    num_frames = capture.num_frames
    if solid is None:
        solid = carve_solid(capture, voxel, scene_points, min_view_fraction)
    if solid is None:
        return MovingHull.empty(num_frames, voxel)
    surface = _surface(solid.solid, solid.shape)  # (T, G)
    keep = np.nonzero(surface.any(0))[0]
    if len(keep) > max_voxels:
        keep = np.sort(np.random.default_rng(seed).choice(keep, max_voxels, replace=False))
    occupancy = surface[:, keep].T  # (M, T)
    xyz = solid.centres[keep]
    cams = capture.split_indices("train")
    return MovingHull(xyz, _first_colours(capture, cams, xyz, occupancy.argmax(1)), occupancy, solid.voxel)


def _surface(solid: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(T, G) bool: the cells of `solid` (T, G) with an empty face neighbour on the grid of `shape`."""
    t = solid.shape[0]
    grid = solid.reshape(t, *shape)
    padded = np.pad(grid, ((0, 0), (1, 1), (1, 1), (1, 1)))
    interior = grid.copy()
    for axis in (1, 2, 3):
        for step in (-1, 1):
            interior &= np.roll(padded, step, axis=axis)[:, 1:-1, 1:-1, 1:-1]
    return (grid & ~interior).reshape(t, -1)


def _first_colours(capture: Capture, cams: list[int], xyz: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """(M, 3) uint8: the mean colour of the footage where points xyz (M, 3) land on moving pixels of frame (M,)."""
    total = np.zeros((len(xyz), 3))
    count = np.zeros(len(xyz))
    for c in cams:
        footage = capture.frames(c)
        col, row, inside = capture.cameras[c].pixels(xyz)
        hit = inside & moving_pixels(footage)[frame, row, col]
        total[hit] += footage[frame[hit], row[hit], col[hit]]
        count += hit
    return np.clip(total / np.maximum(count, 1)[:, None], 0, 255).astype(np.uint8)
