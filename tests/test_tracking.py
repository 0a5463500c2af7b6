"""Following what moves: hull pieces linked into tracks, and the motion decoder fitted to them."""

import numpy as np
import pytest
import torch

from gifstream_engine.model.gifstream import DecodeState, GIFStreamModel, ModelConfig
from gifstream_engine.train.carving import SolidHull
from gifstream_engine.train.motion_init import fit_motion
from gifstream_engine.train.tracking import track_pieces

SHAPE = (40, 20, 12)


def _ball(grid: np.ndarray, centre, radius: float) -> None:
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1)
    grid |= np.linalg.norm(ijk + 0.5 - np.asarray(centre), axis=-1) <= radius


def _two_balls_hull(frames: int = 12, touch_at: tuple[int, ...] = (), shadow: bool = True) -> tuple[SolidHull, np.ndarray, np.ndarray]:
    """Ball A rolls +x by 2 cells per frame, ball B sits still; in the frames `touch_at` a slab joins them (two objects
    whose hulls merge). A thin floor 'shadow' follows A one layer below, touching it."""
    solid = np.zeros((frames, *SHAPE), bool)
    a = np.array([[5.0 + 2 * t, 6, 6] for t in range(frames)])
    b = np.array([[20.0, 15, 6]] * frames)
    for t in range(frames):
        _ball(solid[t], a[t], 3.2)
        _ball(solid[t], b[t], 3.2)
        if shadow:
            solid[t, int(a[t, 0]) - 2:int(a[t, 0]) + 6, 4:9, 0:2] = True
        if t in touch_at:
            lo, hi = sorted([int(a[t, 0]), int(b[t, 0])])
            solid[t, lo:hi + 1, 5:17, 3:10] = True
    hull = SolidHull(solid.reshape(frames, -1), SHAPE, np.zeros(3), 0.1)
    return hull, a, b


def _track_near(tracks, path: np.ndarray, frames) -> int:
    """The track whose centres lie nearest to `path` (T, 3 cells) over `frames`."""
    world = (path + 0.0) * 0.1
    err = [np.linalg.norm(tracks.centres[j, frames] - world[frames], axis=1).mean() for j in range(tracks.count)]
    return int(np.argmin(err))


def test_tracks_follow_a_moving_and_a_still_object():
    hull, a, b = _two_balls_hull()
    tracks = track_pieces(hull)
    frames = np.arange(len(a))
    ja, jb = _track_near(tracks, a, frames), _track_near(tracks, b, frames)
    assert ja != jb
    assert np.abs(tracks.centres[ja] - a * 0.1).max() < 0.15  # within 1.5 cells of the rolling ball's centre
    assert np.abs(tracks.centres[jb] - b * 0.1).max() < 0.15
    assert tracks.present[ja].all() and tracks.present[jb].all()
    # the moving track's translation from its reference frame is the ball's path
    moved = tracks.translation(np.array([ja]))[0]
    assert np.allclose(moved[:, 0], 0.2 * (frames - tracks.reference[ja]), atol=0.15)
    assert np.abs(tracks.translation(np.array([jb]))).max() < 0.05
    # the ball's solid cells are labelled with its track (a few next to its shadow, a piece of its own, may not be)
    t = 3
    ball_cells = np.zeros(SHAPE, bool)
    _ball(ball_cells, a[t], 3.2)
    assert (tracks.labels[t][ball_cells.reshape(-1)] == ja).mean() > 0.9


def test_merged_objects_are_bridged_by_interpolation():
    """When the two hulls touch (frames 5, 6) the joined piece is neither object: the rolling ball's centre is
    interpolated through those frames and its track keeps its identity after them."""
    hull, a, b = _two_balls_hull(touch_at=(5, 6))
    tracks = track_pieces(hull)
    frames = np.arange(len(a))
    ja = _track_near(tracks, a, frames)
    assert np.abs(tracks.centres[ja] - a * 0.1).max() < 0.15
    jb = _track_near(tracks, b, frames)
    assert ja != jb and np.abs(tracks.centres[jb] - b * 0.1).max() < 0.15


def test_label_points_uses_the_neighbouring_cell_when_a_point_falls_outside():
    hull, a, _ = _two_balls_hull(shadow=False)
    tracks = track_pieces(hull)
    ja = _track_near(tracks, a, np.arange(len(a)))
    centre = (a[4] + 0.0) * 0.1
    just_outside = centre + np.array([0.0, 0.0, 0.35])  # 3.5 cells above the centre: the cell under it is solid
    far = centre + np.array([0.0, 0.0, 0.9])
    labels = tracks.label_points(hull, np.stack([centre, just_outside, far]), np.array([4, 4, 4]))
    assert labels.tolist() == [ja, ja, -1]


def test_motion_fit_carries_tracked_anchors_and_leaves_the_others():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    frames = 8
    xyz = rng.uniform(-1, 1, (60, 3))
    tracked = np.zeros(60, bool)
    tracked[:20] = True
    xyz[tracked] = np.array([3.0, 0, 0]) + rng.normal(0, 0.2, (20, 3))  # one object, away from the static set
    motion = np.zeros((60, frames, 3), np.float32)
    path = np.stack([np.linspace(0, 1.5, frames), np.sin(np.linspace(0, 3, frames)), np.zeros(frames)], -1)
    motion[tracked] = path
    occupancy = np.zeros((60, frames), bool)
    occupancy[tracked] = True
    model = GIFStreamModel(xyz, None, frames, ModelConfig(feat_dim=8, hidden=16), occupancy)
    fit = fit_motion(model, motion, tracked, DecodeState(quantize="noise"), steps=300)
    assert fit.tracked == 20
    assert fit.rms_before == pytest.approx(float(np.sqrt((path ** 2).sum(-1).mean())), rel=1e-4)
    assert fit.rms_after < 0.1 * fit.rms_before
    assert fit.static_rms < 0.05
    # the decoder, as training and the bitstream use it, now moves a tracked anchor along the path
    gaussians_t0 = model.decode(0, state=DecodeState(quantize="none"), return_aux=True)[1]
    assert gaussians_t0["masks"]["dy"][0] > 0.5
    for quantize, tolerance in (("none", 0.15), ("round", 0.25)):  # rounding features to whole steps costs a little
        state = DecodeState(quantize=quantize)
        h_all, masks = model.anchor_inputs(frames - 1, state)
        moved = model.anchor_motion(frames - 1, h_all, torch.arange(20), masks)[0]
        assert torch.allclose(moved.mean(0), torch.as_tensor(path[-1], dtype=torch.float32), atol=tolerance), quantize


def test_track_prior_rows_follow_pruning_and_growth_and_fade():
    from gifstream_engine.train.motion_init import TrackPrior

    motion = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)
    prior = TrackPrior.of(motion, np.array([True, False, True, False, True]))
    keep = torch.tensor([True, False, False, True, True])
    grown = prior.select(keep, parents=torch.tensor([4, 2]))  # parents index the rows before pruning
    assert grown.tracked.tolist() == [True, False, True, True, True]
    assert torch.equal(grown.motion[3], prior.motion[4]) and torch.equal(grown.motion[4], prior.motion[2])
    translation = torch.zeros(2, 3)
    idx = torch.tensor([0, 1])  # anchor 1 is untracked: only anchor 0's distance counts
    assert grown.loss(translation, idx, 1).item() == pytest.approx(float((motion[0, 1] ** 2).sum()))
    assert grown.loss(translation, torch.tensor([1, 1]), 0).item() == 0.0
    assert prior.weight(0, 100, 2.0, 0.5) == 2.0 and prior.weight(25, 100, 2.0, 0.5) == 1.0
    assert prior.weight(50, 100, 2.0, 0.5) == 0.0 and prior.weight(10, 100, 2.0, 0.0) == 0.0


def test_tracking_needs_the_hull():
    from gifstream_engine.errors import ConfigError
    from gifstream_engine.train.config import load_config

    with pytest.raises(ConfigError, match="track_motion follows the moving pixels' visual hull"):
        load_config(["preview"], ["train.track_motion=true"])
    assert load_config(["preview"], ["train.track_motion=true", "train.hull_cell=4"]).train.track_motion
