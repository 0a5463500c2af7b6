"""Where a GOP's anchors come from: SfM points of a few frames, marked where they lie on something that moves;
GOP 0's model from them, and a later GOP's warm start from GOP 0.

A point triangulated in frame k is on a moving object when, in most of the cameras that see it, it projects onto
the footage's moving pixels of frame k (pixels that depart from the temporal median, eval/motion.py). Their
anchors start with their stream and motion masks open (M_de, M_dy), instead of waiting for the canonical phase's
gradient to find them: that gradient is weak exactly where an object leaves, and the quantised masks floor
small values to zero, which freezes the anchors that should move.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..capture import Capture
from ..capture.sfm_init import initial_point_cloud
from ..model import GIFStreamModel, voxelize
from .checkpoint import load_model, load_state
from .config import RunConfig


@dataclasses.dataclass
class Seeds:
    """Anchor seeds of one GOP: voxel centres, colours and the frames each was seen moving in."""

    xyz: np.ndarray  # (N, 3)
    colors: np.ndarray  # (N, 3) uint8
    occupancy: np.ndarray  # (N, T) bool: the frames each seed was seen on something moving (none: static)
    description: str  # for the log: how many points of which frames

    @property
    def moving(self) -> np.ndarray:
        return self.occupancy.any(1)

    def subset(self, keep: np.ndarray) -> "Seeds":
        return Seeds(self.xyz[keep], self.colors[keep], self.occupancy[keep], self.description)


def seed_anchors(capture: Capture, num_seed_frames: int, voxel: float, seed: int = 0, moving_only: bool = False) -> Seeds:
    """SfM points of `num_seed_frames` frames of the capture (capture/sfm_init.py), marked where they lie on
    moving pixels, voxelised into one seed per voxel; `moving_only`: SfM of the moving pixels only."""
    # SfM's frames side by side in as many processes as the run's threads (`--threads`)
    cloud = initial_point_cloud(capture, seed=seed, num_seed_frames=num_seed_frames, moving_only=moving_only,
                                workers=torch.get_num_threads())
    frames = cloud.frames if cloud.frames is not None else np.zeros(len(cloud.points), np.int64)
    on_moving = moving_points(capture, cloud.points, frames) if cloud.source != "random" else np.zeros(len(frames), bool)
    occupancy = np.zeros((len(frames), capture.num_frames), bool)
    occupancy[np.nonzero(on_moving)[0], frames[on_moving]] = True
    xyz, colors, occupancy = voxelize(np.asarray(cloud.points, np.float64), cloud.colors, voxel, occupancy)
    description = (f"{len(xyz)} from {len(cloud.points)} {cloud.source} points of frames {sorted(set(frames.tolist()))} "
                   f"(voxel {voxel}), {int(occupancy.any(1).sum())} on something that moves")
    return Seeds(xyz, colors, occupancy, description)


def gop_seeds(capture: Capture, cfg: RunConfig, moving_only: bool = False) -> Seeds:
    return seed_anchors(capture, cfg.train.seed_frames, cfg.model.voxel_size, cfg.train.seed, moving_only)


def initial_model(capture: Capture, cfg: RunConfig, log) -> GIFStreamModel:
    """GOP 0's model from its seeds (a random `max_anchors` of them where there are more)."""
    seeds = gop_seeds(capture, cfg)
    if len(seeds.xyz) > cfg.train.max_anchors:
        seeds = seeds.subset(np.random.default_rng(cfg.train.seed).choice(len(seeds.xyz), cfg.train.max_anchors, replace=False))
    log(f"initial anchors: {seeds.description}")
    return GIFStreamModel(seeds.xyz, seeds.colors, capture.num_frames, cfg.model, seeds.occupancy)


def warm_started(warm_path: str, cfg: RunConfig, capture: Capture, device, log) -> GIFStreamModel:
    """A later GOP's model: GOP 0's early state with a fresh feature stream of this GOP's length, plus anchors
    seeded where this GOP's frames see something move in voxels GOP 0 left empty."""
    state = load_state(warm_path, device)
    model = load_model(state, cfg, warm_path)
    model.stream = torch.nn.Parameter(torch.zeros(model.num_anchors, capture.num_frames, cfg.model.stream_dim,
                                                  device=model.feat.device))
    model.num_frames = capture.num_frames
    seeds = gop_seeds(capture, cfg, moving_only=True)  # GOP 0's anchors hold the static set: only what moves is new
    occupied = {tuple(v) for v in np.floor(model.anchor_xyz.cpu().numpy() / cfg.model.voxel_size).astype(np.int64)}
    keys = np.floor(seeds.xyz / cfg.model.voxel_size).astype(np.int64)
    new = seeds.moving & np.array([tuple(k) not in occupied for k in keys], bool)
    new &= np.cumsum(new) <= max(0, cfg.train.max_anchors - model.num_anchors)
    if new.any():
        fresh = seeds.subset(new)
        model.append_anchors(GIFStreamModel(fresh.xyz, fresh.colors, capture.num_frames, cfg.model, fresh.occupancy).to(device))
    log(f"warm start: {model.num_anchors} anchors, {int(new.sum())} of them seeded on this GOP's moving pixels")
    return model


def moving_points(capture: Capture, points: np.ndarray, frames: np.ndarray, min_views: int = 2) -> np.ndarray:
    """(N,) bool: points (N, 3) seen on moving pixels of their own frame (N,) in most cameras that see them."""
    votes = np.zeros(len(points))
    views = np.zeros(len(points))
    seen, slot = np.unique(frames, return_inverse=True)  # only the points' frames: a few of the GOP's
    for c, cam in enumerate(capture.cameras):
        moving = capture.footage(c).moving(seen)  # (len(seen), H, W), from the bits of the GOP's one decode
        ui, vi, inside = cam.pixels(points)
        hit = moving[slot.reshape(-1), vi, ui] & inside
        votes += hit
        views += inside
    return (views >= min_views) & (votes > 0.5 * views)
