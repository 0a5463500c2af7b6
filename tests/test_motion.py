"""What moves: the moving-pixel metric, seeding anchors on moving objects, and a trained model that keeps motion."""

import numpy as np
import pytest
import torch

from gifstream_engine.eval.motion import CameraMotion, SplitError, moving_pixels
from gifstream_engine.model.gifstream import MASK_FLOOR, GIFStreamModel, ModelConfig

MOVING_MARGIN_DB = 1.5


def _square_footage(frames=5, size=24, side=4):
    """A grey background with a white square moving right by 4 px per frame."""
    footage = np.full((frames, size, size, 3), 100, np.uint8)
    for t in range(frames):
        footage[t, 10:10 + side, 2 + 4 * t:2 + 4 * t + side] = 255
    return footage


def test_moving_pixels_follow_the_object_and_are_dilated():
    footage = _square_footage()
    plain = moving_pixels(footage, dilate=0)
    for t in range(len(footage)):
        assert plain[t, 10:14, 2 + 4 * t:6 + 4 * t].all()  # the square where it is
    assert plain.sum() == 5 * 16  # nowhere else: the median frame is the background
    dilated = moving_pixels(footage, dilate=2)
    assert dilated[0, 8:16, 0:8].all() and dilated.sum() > plain.sum()
    assert not dilated[:, :7].any() and not dilated[:, 17:].any()


def test_frozen_background_and_split_error():
    footage = _square_footage()
    motion = CameraMotion.of(footage)
    # the median frame is the background: it errs by (255-100)/255 on the square's 16 pixels of the 8x8 dilated ones
    expected = -10 * np.log10(16 / 64 * (155 / 255) ** 2)
    assert motion.frozen.moving_psnr == pytest.approx(expected, abs=1e-4)
    assert motion.frozen.static_psnr == float("inf")
    perfect = SplitError()
    for t in range(len(footage)):
        frame = torch.from_numpy(footage[t]).float() / 255
        perfect.add(frame, frame, torch.from_numpy(motion.masks[t]))
    assert perfect.moving_psnr == float("inf") and perfect.moving_count == 3 * motion.masks.sum()


def test_anchors_seeded_on_moving_pixels_start_with_open_masks():
    xyz = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    model = GIFStreamModel(xyz, None, 4, ModelConfig(), seed_frame=np.array([0, -1, -1, 2]))
    m = torch.sigmoid(model.mask_logits)
    assert (m[[0, 3], :2] > 0.85).all()  # M_de, M_dy open where something moves
    assert (m[[1, 2], :2] < MASK_FLOOR).all()  # closed elsewhere until the canonical phase's gradient opens them
    # the stream of a moving anchor starts as its time relative to the seed frame; the others' is zero
    assert torch.equal(model.stream[3, :, 0], 0.5 * torch.tensor([-2.0, -1, 0, 1]))
    assert torch.equal(model.stream[3, :, 1], 0.5 * torch.tensor([2.0, 1, 0, 1]))
    assert not model.stream[[1, 2]].any() and not model.stream[:, :, 2:].any()


def _moving_objects(frame: int, num_frames: int) -> list[np.ndarray]:
    """Centres of the synthetic scene's ball and cube (capture/blender_side/synthetic_scene.py)."""
    phase = 2 * np.pi * frame / num_frames
    ball = np.array([1.1 * np.cos(phase), 1.1 * np.sin(phase) - 0.2, 0.6 + 0.3 * np.sin(2 * phase)])
    cube = np.array([-0.2, -0.6, 0.35 + 0.8 * abs(np.sin(3 * phase))])
    return [ball, cube]


def test_seed_points_on_the_moving_objects_are_found(synth_loaded):
    from gifstream_engine.capture.sfm_init import initial_point_cloud
    from gifstream_engine.train.seeding import moving_points

    cloud = initial_point_cloud(synth_loaded, num_seed_frames=3)
    assert sorted(set(cloud.frames.tolist())) == [0, 2, 5]
    moving = moving_points(synth_loaded, cloud.points, cloud.frames)
    n = synth_loaded.num_frames
    on_object = np.array([min(np.linalg.norm(p - c) for c in _moving_objects(f, n)) < 0.45
                          for p, f in zip(cloud.points, cloud.frames)])
    assert on_object.sum() >= 3, "the tiny capture's SfM sees a few points of the textured ball and cube"
    assert moving[on_object].mean() > 0.8  # the moving objects' points are found ...
    assert moving[~on_object].mean() < 0.1  # ... and the static set's mostly are not


@pytest.mark.slow
def test_trained_model_keeps_what_moves(tmp_path_factory):
    """The guard of the motion fix: the preview preset on the demo's capture (8 cameras, 30 frames, a ball and a
    cube moving fast), as `gifstream demo` trains it (about 8 minutes on 2 cores). On the test camera's moving
    pixels the model must beat the frozen temporal-median frame by MOVING_MARGIN_DB. Measured (README, "Motion"):
    seeding from frame 0 only gave +1.1 dB, the fixed trainer +2.2 to +2.8 dB."""
    from gifstream_engine.capture import load_capture
    from gifstream_engine.capture.synth import SynthConfig, render_synthetic_capture
    from gifstream_engine.train.pipeline import evaluate_run
    from gifstream_engine.train.run_folder import load_run
    from gifstream_engine.train.config import load_config
    from gifstream_engine.train.trainer import Training

    root = tmp_path_factory.mktemp("motion")
    capture = load_capture(render_synthetic_capture(str(root / "capture"), SynthConfig(), log=lambda *_: None))
    cfg = load_config(["preview"], ["train.checkpoint_every=10000"])
    out = str(root / "run")
    assert Training(capture, cfg, out, log=lambda *_: None).run() == "finished"
    result = evaluate_run(load_run(out), capture)
    print({k: result[k] for k in ("test_psnr", "dynamic_psnr", "frozen_psnr", "static_psnr")})
    assert result["dynamic_psnr"] > result["frozen_psnr"] + MOVING_MARGIN_DB


def test_an_anchor_that_shows_in_one_frame_is_not_pruned_as_transparent():
    from gifstream_engine.train.densify import GrowthStats, low_opacity_anchors

    stats = GrowthStats.zeros(3, 5, "cpu")
    stats.anchor_seen[:] = 150
    stats.opacity_sum[:] = torch.tensor([0.5 * 5, 0.001 * 5 * 150, 0.3 * 5 * 150])  # child opacity over 150 steps
    stats.opacity_max[:] = torch.tensor([0.5, 0.001, 0.3])  # anchor 0: opaque in one step's frame only
    pruned = low_opacity_anchors(stats, min_opacity=0.005, k=5, alpha=0.1)
    assert pruned.tolist() == [False, True, False]
    # by the mean over time alone (alpha 0) the passing object's anchor would go
    assert low_opacity_anchors(stats, min_opacity=0.005, k=5, alpha=0.0).tolist() == [True, True, False]
