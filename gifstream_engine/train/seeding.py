"""Which seed points lie on something that moves.

A point triangulated in frame k is on a moving object when, in most of the cameras that see it, it projects onto
the footage's moving pixels of frame k (pixels that depart from the temporal median, eval/motion.py). Their
anchors start with their stream and motion masks open (M_de, M_dy), instead of waiting for the canonical phase's
gradient to find them: that gradient is weak exactly where an object leaves, and the quantised masks floor
small values to zero, which freezes the anchors that should move.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..capture import Capture
from ..capture.sfm_init import initial_point_cloud
from ..eval.motion import moving_pixels
from ..model.gifstream import voxelize
from .carving import MovingHull, carve_moving


@dataclasses.dataclass
class Seeds:
    """Anchor seeds of one GOP: voxel centres, colours, and the frames each was seen moving in."""

    xyz: np.ndarray  # (N, 3)
    colors: np.ndarray  # (N, 3) uint8
    occupancy: np.ndarray  # (N, T) bool: the frames each seed was seen on something moving (none: static)
    description: str  # for the log: how many points of which frames

    @property
    def moving(self) -> np.ndarray:
        return self.occupancy.any(1)

    def subset(self, keep: np.ndarray) -> "Seeds":
        return Seeds(self.xyz[keep], self.colors[keep], self.occupancy[keep], self.description)


def seed_anchors(capture: Capture, num_seed_frames: int, voxel: float, seed: int = 0, hull_cell: float = 0.0,
                 max_hull: int = 0) -> Seeds:
    """SfM points of `num_seed_frames` frames of the capture (train/sfm_init.py), marked where they lie on
    moving pixels, plus (with `hull_cell` > 0) up to `max_hull` surface voxels of the moving pixels' visual hull
    carved in cells of `hull_cell` anchor voxels (train/carving.py); voxelised into one seed per voxel."""
    cloud = initial_point_cloud(capture, seed=seed, num_seed_frames=num_seed_frames)
    frames = cloud.frames if cloud.frames is not None else np.zeros(len(cloud.points), np.int64)
    on_moving = moving_points(capture, cloud.points, frames) if cloud.source != "random" else np.zeros(len(frames), bool)
    occupancy = np.zeros((len(frames), capture.num_frames), bool)
    occupancy[np.nonzero(on_moving)[0], frames[on_moving]] = True
    points, colors = cloud.points, cloud.colors
    hull = MovingHull.empty(capture.num_frames, voxel)
    if hull_cell > 0 and max_hull > 0 and cloud.source != "random":
        hull = carve_moving(capture, hull_cell * voxel, cloud.points, max_hull, seed=seed)
        points = np.concatenate([points, hull.xyz])
        colors = np.concatenate([colors, hull.colors])
        occupancy = np.concatenate([occupancy, hull.occupancy])
    xyz, colors, occupancy = voxelize(points, colors, voxel, occupancy)
    description = (f"{len(xyz)} from {len(cloud.points)} {cloud.source} points of frames {sorted(set(frames.tolist()))} "
                   f"(voxel {voxel}) and {len(hull.xyz)} cells of the moving pixels' hull (cell {hull.voxel:.3g}), "
                   f"{int(occupancy.any(1).sum())} on something that moves")
    return Seeds(xyz, colors, occupancy, description)


def moving_points(capture: Capture, points: np.ndarray, frames: np.ndarray, min_views: int = 2) -> np.ndarray:
    """(N,) bool: points (N, 3) seen on moving pixels of their own frame (N,) in most cameras that see them."""
    votes = np.zeros(len(points))
    views = np.zeros(len(points))
    for c, cam in enumerate(capture.cameras):
        moving = moving_pixels(capture.frames(c))  # (T, H, W)
        ui, vi, inside = cam.pixels(points)
        hit = moving[frames, vi, ui] & inside
        votes += hit
        views += inside
    return (views >= min_views) & (votes > 0.5 * views)
