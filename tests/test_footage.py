"""A camera's footage decoded once: its departing pixels kept as bits give the same masks and the same k-th moving
pixel as computing them from the frames; a GOP decodes each camera once for set-up, seeding and SfM keys."""

import numpy as np
import pytest
import torch

from gifstream_engine.capture.footage import CameraFootage
from gifstream_engine.eval.motion import departs_from_median, moving_pixels, temporal_median


def _footage(frames=7, height=13, width=21, seed=0):
    rng = np.random.default_rng(seed)
    still = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = np.repeat(still[None], frames, 0)
    for t in range(frames):  # a bright block that moves, and some noise under the threshold
        out[t, t % height:t % height + 3, (2 * t) % width:(2 * t) % width + 4] = 255
        out[t] = np.clip(out[t].astype(int) + rng.integers(-10, 11, out[t].shape), 0, 255).astype(np.uint8)
    return out


@pytest.mark.parametrize("width", [21, 24])  # a row that ends inside a byte, and one that does not
def test_bits_give_the_masks_and_pixels_of_the_frames(width):
    frames = _footage(width=width)
    footage = CameraFootage(frames)
    median = torch.from_numpy(temporal_median(frames))
    assert np.array_equal(footage.median, temporal_median(frames))
    for t in range(len(frames)):
        expected = departs_from_median(torch.from_numpy(frames[t]).float() / 255.0, median).numpy()
        assert expected.any() and np.array_equal(footage.departing(t), expected)
        assert footage.count(t) == expected.sum()
        flat = np.flatnonzero(expected)
        for k in range(len(flat)):
            assert footage.departing_pixel(t, k) == divmod(int(flat[k]), width)
    which = [5, 0, 3]
    assert np.array_equal(footage.moving(which), moving_pixels(frames, which=which))
    assert np.array_equal(footage.moving(range(len(frames))), moving_pixels(frames))


def test_a_gop_decodes_each_camera_once(synth_capture, monkeypatch):
    """Loading a GOP, seeding's moving points and the SfM keys of its frames read each camera's block once, and the
    cache holds the training cameras' frames as views of the GOP's stack (no second copy)."""
    from gifstream_engine.capture import load_capture
    from gifstream_engine.capture.sfm_cache import frame_key
    from gifstream_engine.capture.video import VideoSource
    from gifstream_engine.train.gop_data import load_gop_frames
    from gifstream_engine.train.seeding import moving_points

    reads = []
    original = VideoSource.read
    monkeypatch.setattr(VideoSource, "read", lambda self, *a: reads.append((self.path, a[:2])) or original(self, *a))
    capture = load_capture(synth_capture)
    gop = capture.gops(3)[1]
    data = load_gop_frames(gop)
    points = np.random.default_rng(0).uniform(gop.scene_bounds[0], gop.scene_bounds[1], (50, 3))
    moving_points(gop, points, np.arange(50) % gop.num_frames)
    for t in range(gop.num_frames):
        frame_key(gop, t, {})
    assert sorted(reads) == sorted(set(reads)) and len(reads) == len(capture.cameras)
    for slot, i in enumerate(data.train_cams):
        assert np.shares_memory(gop.frames(i), data.frames.numpy()[slot])
    assert torch.equal(data.medians[0], torch.from_numpy(temporal_median(data.frames[0].numpy())))
    gop_after = capture.gops(3)[0]
    load_gop_frames(gop_after)
    assert all(key[1] == gop_after.frame_offset for key in capture.cache._blocks)  # the earlier GOP's frames let go
