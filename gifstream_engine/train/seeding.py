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


@dataclasses.dataclass
class Seeds:
    """Anchor seeds of one GOP: voxel centres, colours, and for those on moving pixels their seed frame."""

    xyz: np.ndarray  # (N, 3)
    colors: np.ndarray  # (N, 3) uint8
    seed_frame: np.ndarray  # (N,) int, -1 where static
    description: str  # for the log: how many points of which frames

    def subset(self, keep: np.ndarray) -> "Seeds":
        return Seeds(self.xyz[keep], self.colors[keep], self.seed_frame[keep], self.description)


def seed_anchors(capture: Capture, num_seed_frames: int, voxel: float, seed: int = 0) -> Seeds:
    """SfM points of `num_seed_frames` frames of the capture (train/sfm_init.py), marked where they lie on
    moving pixels, voxelised into one seed per voxel."""
    cloud = initial_point_cloud(capture, seed=seed, num_seed_frames=num_seed_frames)
    frames = cloud.frames if cloud.frames is not None else np.zeros(len(cloud.points), np.int64)
    on_moving = moving_points(capture, cloud.points, frames) if cloud.source != "random" else np.zeros(len(frames), bool)
    xyz, colors, seed_frame = voxelize(cloud.points, cloud.colors, voxel, np.where(on_moving, frames, -1))
    description = (f"{len(xyz)} from {len(cloud.points)} {cloud.source} points of frames {sorted(set(frames.tolist()))} "
                   f"(voxel {voxel}), {int((seed_frame >= 0).sum())} on moving pixels")
    return Seeds(xyz, colors, seed_frame, description)


def moving_points(capture: Capture, points: np.ndarray, frames: np.ndarray, min_views: int = 2) -> np.ndarray:
    """(N,) bool: points (N, 3) seen on moving pixels of their own frame (N,) in most cameras that see them."""
    votes = np.zeros(len(points))
    views = np.zeros(len(points))
    for c, cam in enumerate(capture.cameras):
        moving = moving_pixels(capture.frames(c))  # (T, H, W)
        cam_xyz = points @ cam.w2c[:3, :3].T + cam.w2c[:3, 3]
        z = cam_xyz[:, 2]
        uv = cam_xyz @ cam.K.T
        with np.errstate(divide="ignore", invalid="ignore"):
            u, v = uv[:, 0] / z, uv[:, 1] / z
        inside = (z > 1e-3) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
        ui = np.clip(np.nan_to_num(u), 0, cam.width - 1).astype(np.int64)
        vi = np.clip(np.nan_to_num(v), 0, cam.height - 1).astype(np.int64)
        hit = moving[frames, vi, ui] & inside
        votes += hit
        views += inside
    return (views >= min_views) & (votes > 0.5 * views)
