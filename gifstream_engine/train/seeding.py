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
from .carving import MovingHull, SolidHull, carve_moving, carve_solid
from .tracking import track_pieces


@dataclasses.dataclass
class Seeds:
    """Anchor seeds of one GOP: voxel centres, colours, the frames each was seen moving in, and for seeds on a
    tracked object (train/tracking.py) the translation that carries them from their canonical place to each frame."""

    xyz: np.ndarray  # (N, 3)
    colors: np.ndarray  # (N, 3) uint8
    occupancy: np.ndarray  # (N, T) bool: the frames each seed was seen on something moving (none: static)
    description: str  # for the log: how many points of which frames
    motion: np.ndarray | None = None  # (N, T, 3) float32 translation per frame (zero for untracked seeds); None: no tracking
    tracked: np.ndarray | None = None  # (N,) bool: on a tracked object

    @property
    def moving(self) -> np.ndarray:
        return self.occupancy.any(1)

    def subset(self, keep: np.ndarray) -> "Seeds":
        pick = lambda a: None if a is None else a[keep]  # noqa: E731
        return Seeds(self.xyz[keep], self.colors[keep], self.occupancy[keep], self.description, pick(self.motion),
                     pick(self.tracked))


def seed_anchors(capture: Capture, num_seed_frames: int, voxel: float, seed: int = 0, hull_cell: float = 0.0,
                 max_hull: int = 0, track: bool = False) -> Seeds:
    """SfM points of `num_seed_frames` frames of the capture (train/sfm_init.py), marked where they lie on
    moving pixels, plus (with `hull_cell` > 0) up to `max_hull` surface voxels of the moving pixels' visual hull
    carved in cells of `hull_cell` anchor voxels (train/carving.py); voxelised into one seed per voxel.

    With `track` (and `hull_cell` > 0), the hull's pieces are linked over time (train/tracking.py) and every
    moving seed on a track is moved to the track's reference frame: one canonical copy of each object, present
    from the track's first frame to its last, with the translation per frame in `Seeds.motion`."""
    cloud = initial_point_cloud(capture, seed=seed, num_seed_frames=num_seed_frames)
    frames = cloud.frames if cloud.frames is not None else np.zeros(len(cloud.points), np.int64)
    on_moving = moving_points(capture, cloud.points, frames) if cloud.source != "random" else np.zeros(len(frames), bool)
    occupancy = np.zeros((len(frames), capture.num_frames), bool)
    occupancy[np.nonzero(on_moving)[0], frames[on_moving]] = True
    points, colors = cloud.points, cloud.colors
    hull = MovingHull.empty(capture.num_frames, voxel)
    solid = None
    if hull_cell > 0 and max_hull > 0 and cloud.source != "random":
        solid = carve_solid(capture, hull_cell * voxel, cloud.points)
        hull = carve_moving(capture, hull_cell * voxel, cloud.points, max_hull, seed=seed, solid=solid)
    if track and solid is not None:
        return _tracked_seeds(capture, cloud, frames, on_moving, occupancy, hull, solid, voxel)
    points = np.concatenate([points, hull.xyz])
    colors = np.concatenate([colors, hull.colors])
    occupancy = np.concatenate([occupancy, hull.occupancy])
    xyz, colors, occupancy = voxelize(points, colors, voxel, occupancy)
    description = (f"{len(xyz)} from {len(cloud.points)} {cloud.source} points of frames {sorted(set(frames.tolist()))} "
                   f"(voxel {voxel}) and {len(hull.xyz)} cells of the moving pixels' hull (cell {hull.voxel:.3g}), "
                   f"{int(occupancy.any(1).sum())} on something that moves")
    return Seeds(xyz, colors, occupancy, description)


def _tracked_seeds(capture: Capture, cloud, frames: np.ndarray, on_moving: np.ndarray, occupancy: np.ndarray,
                   hull: MovingHull, solid: SolidHull, voxel: float) -> Seeds:
    """Seeds with the moving SfM points and hull cells of each track moved to its reference frame and voxelised
    per track (two objects' canonical copies may overlap in space); the rest as in `seed_anchors`."""
    num_frames = capture.num_frames
    tracks = track_pieces(solid)
    # a track's hull cells in its reference frame are its surface there (the hull of other frames, seen from other
    # sides of a rig on one side, would only thicken the canonical copy); its SfM points come from every frame
    cell_idx, cell_frame = np.nonzero(hull.occupancy)
    hull_points, hull_colors = hull.xyz[cell_idx], hull.colors[cell_idx]
    hull_track = tracks.label_points(solid, hull_points, cell_frame)
    off_reference = (hull_track >= 0) & (cell_frame != tracks.reference[np.maximum(hull_track, 0)])
    hull_track[off_reference] = -2  # neither a track's nor loose
    point_track = np.full(len(cloud.points), -1, np.int64)
    point_track[on_moving] = tracks.label_points(solid, cloud.points[on_moving], frames[on_moving])

    groups = []  # (xyz, colours, occupancy, track) per group: untracked, then one per track
    untracked = point_track < 0
    loose = hull_track == -1  # hull cells on no track keep the time code of the frames they are occupied in
    loose_cells = np.unique(cell_idx[loose])
    xyz, col, occ = voxelize(np.concatenate([cloud.points[untracked], hull.xyz[loose_cells]]),
                             np.concatenate([cloud.colors[untracked], hull.colors[loose_cells]]), voxel,
                             np.concatenate([occupancy[untracked], hull.occupancy[loose_cells]]))
    groups.append((xyz, col, occ, np.full(len(xyz), -1)))
    for j in range(tracks.count):
        mine_points, mine_cells = point_track == j, hull_track == j
        if not (mine_points.any() or mine_cells.any()):
            continue
        seen = np.concatenate([frames[mine_points], cell_frame[mine_cells]])
        moved = np.concatenate([cloud.points[mine_points], hull_points[mine_cells]])
        moved = moved - (tracks.centres[j, seen] - tracks.centres[j, tracks.reference[j]])
        xyz, col, _ = voxelize(moved, np.concatenate([cloud.colors[mine_points], hull_colors[mine_cells]]), voxel)
        groups.append((xyz, col, np.repeat(tracks.present[j][None], len(xyz), 0), np.full(len(xyz), j)))
    xyz, colors, occupancy, track = (np.concatenate(parts) for parts in zip(*groups))
    tracked = track >= 0
    motion = np.zeros((len(xyz), num_frames, 3), np.float32)
    motion[tracked] = tracks.translation(track[tracked])
    travel = [float(np.linalg.norm(np.diff(tracks.centres[j], axis=0), axis=1).sum()) for j in range(tracks.count)]
    description = (f"{len(xyz)} from {len(cloud.points)} {cloud.source} points of frames {sorted(set(frames.tolist()))} "
                   f"(voxel {voxel}) and {len(hull.xyz)} cells of the moving pixels' hull (cell {hull.voxel:.3g}); "
                   f"{tracks.count} tracks over {', '.join(f'{d:.2f}' for d in travel)} m carry {int(tracked.sum())} "
                   f"anchors, {int((occupancy.any(1) & ~tracked).sum())} more on something that moves")
    return Seeds(xyz, colors, occupancy, description, motion, tracked)


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
