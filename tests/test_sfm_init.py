import numpy as np
import pytest

from gifstream_engine.capture.sfm_init import initial_point_cloud, triangulate_frame
from gifstream_engine.capture.synth import SCENE_BOX


def test_triangulated_points_lie_on_the_scene(synth_loaded):
    cloud = triangulate_frame(synth_loaded)
    assert cloud.source == "sfm" and len(cloud.points) >= 20, cloud.stats
    # The set's static geometry is known: points must fall inside its box, most of them on its surfaces
    # (floor z=0, back wall y=3, side wall x=-3.5) or the props -- a wrong pose convention scatters them.
    lo, hi = SCENE_BOX[0] - 0.2, SCENE_BOX[1] + 0.2
    inside = np.all((cloud.points > lo) & (cloud.points < hi), axis=1)
    assert inside.mean() > 0.9
    on_surface = (np.abs(cloud.points[:, 2]) < 0.1) | (np.abs(cloud.points[:, 1] - 3.0) < 0.1) | (np.abs(cloud.points[:, 0] + 3.5) < 0.1)
    assert on_surface.mean() > 0.5
    assert cloud.colors.dtype == np.uint8 and cloud.colors.shape == cloud.points.shape


def test_falls_back_to_random_points_with_warning(synth_loaded):
    with pytest.warns(UserWarning, match="random points in the scene bounds"):
        cloud = initial_point_cloud(synth_loaded, min_points=10**6, random_count=500)
    assert cloud.source == "random" and len(cloud.points) == 500
    lo, hi = synth_loaded.scene_bounds
    assert np.all(cloud.points >= lo) and np.all(cloud.points <= hi)


def test_sfm_points_are_cached_by_content(synth_loaded, tmp_path, monkeypatch):
    """A second triangulation of the same frame comes from the cache; other pixels or options miss it; a damaged
    entry is recomputed and replaced, with a warning."""
    from gifstream_engine.capture import sfm_init

    monkeypatch.setenv("GIFSTREAM_CACHE", str(tmp_path / "cache"))
    calls = []
    real = sfm_init._prepare  # a frame is prepared for COLMAP only when the cache misses
    monkeypatch.setattr(sfm_init, "_prepare", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    first = triangulate_frame(synth_loaded, 1)
    again = triangulate_frame(synth_loaded, 1)
    assert calls == [1] and len(first.points) > 0
    assert np.array_equal(first.points, again.points) and np.array_equal(first.colors, again.colors)
    assert again.stats == first.stats and np.all(again.frames == 1)
    triangulate_frame(synth_loaded, 1, max_error_px=1.0)  # other options: another entry
    assert calls == [1, 1]
    entries = sorted((tmp_path / "cache" / "sfm").glob("*.npz"))
    assert len(entries) == 2
    for entry in entries:
        entry.write_bytes(entry.read_bytes()[:50])  # truncated
    with pytest.warns(UserWarning, match="unreadable"):
        repaired = triangulate_frame(synth_loaded, 1)
    assert calls == [1, 1, 1] and np.array_equal(repaired.points, first.points)
    assert triangulate_frame(synth_loaded, 1) is not None and calls == [1, 1, 1]
    monkeypatch.setenv("GIFSTREAM_CACHE", "off")
    triangulate_frame(synth_loaded, 1)
    assert calls == [1, 1, 1, 1]


def test_frames_triangulated_side_by_side_are_those_of_one_at_a_time(synth_loaded, monkeypatch, tmp_path):
    """Frames missing from the cache are triangulated in worker processes, each single-threaded: the same points,
    colours and counts as triangulating them one at a time in this process, in the order asked, and cached."""
    from gifstream_engine.capture.sfm_init import triangulate_frames

    monkeypatch.setenv("GIFSTREAM_CACHE", "off")
    alone = [triangulate_frames(synth_loaded, [t], workers=1)[0] for t in (3, 0)]
    monkeypatch.setenv("GIFSTREAM_CACHE", str(tmp_path / "cache"))
    together = triangulate_frames(synth_loaded, [3, 0, 3], workers=2)
    for a, b in zip(alone + alone[:1], together):
        assert len(a.points) > 0 and np.array_equal(a.points, b.points) and np.array_equal(a.colors, b.colors)
        assert a.stats == b.stats and np.array_equal(a.frames, b.frames)
    assert len(list((tmp_path / "cache" / "sfm").glob("*.npz"))) == 2


def test_sfm_cache_key_follows_the_pixels_and_the_rig(synth_loaded):
    import copy
    import dataclasses

    from gifstream_engine.capture.sfm_cache import frame_key

    options = {"min_track": 3}
    key = frame_key(synth_loaded, 0, options)
    assert key == frame_key(synth_loaded, 0, dict(options)) and key != frame_key(synth_loaded, 1, options)
    assert frame_key(synth_loaded, 0, {"min_track": 2}) != key
    moved = copy.copy(synth_loaded)
    w2c = synth_loaded.cameras[0].w2c.copy()
    w2c[0, 3] += 1e-3
    moved.cameras = [dataclasses.replace(synth_loaded.cameras[0], w2c=w2c)] + list(synth_loaded.cameras[1:])
    assert frame_key(moved, 0, options) != key


def test_sfm_cache_key_names_the_files_without_decoding(synth_capture, tmp_path, monkeypatch):
    """A key is built from the footage's files (path, size, modification time, frame index), not their pixels: no
    frame is decoded for it, a GOP's frame shares the key of the same frame of the whole capture, and a rewritten
    video gets new keys."""
    import os
    import shutil

    from gifstream_engine.capture import load_capture
    from gifstream_engine.capture.sfm_cache import frame_key
    from gifstream_engine.capture.video import VideoSource

    folder = tmp_path / "capture"
    shutil.copytree(synth_capture, folder)
    reads = []
    original = VideoSource.read
    monkeypatch.setattr(VideoSource, "read", lambda self, *a: reads.append(a) or original(self, *a))
    capture = load_capture(str(folder))
    options = {"min_track": 3}
    key = frame_key(capture, 3, options)
    assert reads == []
    assert frame_key(capture.slice(2, capture.num_frames), 1, options) == key
    assert frame_key(capture.slice(2, capture.num_frames), 2, options) != key
    video = next(p for p in sorted(folder.glob("*.mp4")))
    info = os.stat(video)
    os.utime(video, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))  # the same bytes, written again
    assert frame_key(load_capture(str(folder)), 3, options) != key
    assert reads == []


def test_large_rigs_match_each_camera_with_its_neighbours():
    """Beyond EXHAUSTIVE_CAMERAS, the matched pairs grow with the cameras, not their square, and every camera is
    matched with the cameras nearest it."""
    from conftest import pinhole
    from gifstream_engine.capture.sfm_init import neighbour_pairs

    def ring(n):
        cams = []
        for i in range(n):
            angle = 2 * np.pi * i / n
            w2c = np.eye(4)
            w2c[:3, 3] = -np.array([4 * np.cos(angle), 4 * np.sin(angle), 0.0])
            cams.append(pinhole(32, 24, name=f"c{i}", w2c=w2c))
        return cams

    pairs = neighbour_pairs(ring(20), 6)
    assert len(pairs) == 60 and all(a < b for a, b in pairs)  # each camera with 3 on either side of the ring
    assert {(0, 1), (0, 2), (0, 3), (0, 17), (0, 18), (0, 19)} <= set(pairs) and (0, 4) not in pairs
    assert len(neighbour_pairs(ring(40), 6)) == 120


def test_sfm_of_the_moving_pixels_only_finds_the_moving_objects(synth_loaded):
    """A later GOP triangulates only what moves (GOP 0's anchors hold the static set): SIFT sees only the moving
    pixels and a margin around them, so every point it gives lies on or next to something moving, among far fewer
    points than a whole frame's. (On the demo capture: 21 and 38 moving points of 37 and 49 at frames 2 and 12,
    against 27 and 31 of 221 and 246 from whole frames.)"""
    from gifstream_engine.capture.sfm_init import MOVING_CONTEXT_PX

    frame = 2
    whole = triangulate_frame(synth_loaded, frame)
    moving = triangulate_frame(synth_loaded, frame, moving_only=True)
    assert len(moving.points) < 0.5 * len(whole.points), (len(moving.points), len(whole.points))
    near_motion = np.zeros(len(moving.points), bool)
    for c, cam in enumerate(synth_loaded.cameras):
        mask = synth_loaded.footage(c).moving([frame], dilate=MOVING_CONTEXT_PX + 3)[0]  # + reprojection error
        ui, vi, inside = cam.pixels(moving.points)
        near_motion |= inside & mask[vi, ui]
    assert near_motion.all(), near_motion.mean()


def test_a_failing_sfm_worker_raises_with_its_output(tmp_path):
    """A worker process that fails (here: a job whose images are missing) raises RuntimeError naming the job and
    ending with the worker's own last lines, as pycolmap's errors do in this process (seeding falls back on it)."""
    from gifstream_engine.capture.sfm_init import SfmJob
    from gifstream_engine.capture.sfm_worker import run_in_process

    (tmp_path / "images").mkdir()
    job = SfmJob(str(tmp_path), ["cam00"], [(100.0, 100.0, 50.0, 40.0)], [(100, 80)], [np.eye(4)], None, 1.0, 1024,
                 2.0, 2, False)
    with pytest.raises(RuntimeError, match=r"(?s)failed in its worker process \(exit [1-9].*cam00"):
        run_in_process(job)
    assert SfmJob.from_json(job.to_json()).to_json() == job.to_json()
