"""Issue 29, item 4: a cache frame that is missing or damaged (truncated, garbage) while the timeline plays or an
animation renders shows as an empty frame, with one warning line (the Sequence panel's cache check); never a crash,
never another frame in its place."""

import os

import numpy as np
import pytest

from conftest import addon_module

pytest.importorskip("bpy")

import build_addon  # noqa: E402
from gifstream_engine.imageio import read_png  # noqa: E402
from test_blender_sequence import CAMERA, NUM_FRAMES, run_blender, write_moving_sequence  # noqa: E402


def damage(folder):
    """Frame 1 deleted, frame 2 cut in the middle of its vertices, frame 3 replaced by bytes that are not a PLY."""
    path = lambda t: os.path.join(folder, f"frame_{t:05d}.ply")  # noqa: E731
    os.remove(path(1))
    with open(path(2), "rb") as f:
        data = f.read()
    with open(path(2), "wb") as f:
        f.write(data[: len(data) - 1000])
    with open(path(3), "wb") as f:
        f.write(np.random.default_rng(0).bytes(3000))
    return {1: "missing", 2: "truncated", 3: "not a PLY"}


def test_frame_problems_name_each_bad_frame_and_see_a_repair(tmp_path):
    files = addon_module("core.sequence_files")
    folder = write_moving_sequence(str(tmp_path / "seq"), frames=5)
    pattern = files.find_pattern(folder)
    assert files.frame_problems(pattern) == []
    expected = damage(folder)
    problems = files.frame_problems(pattern)
    assert [t for t, _ in problems] == [1, 2, 3]
    for t, problem in problems:
        assert expected[t] in problem and f"frame_{t:05d}.ply" in problem, problem
    write_moving_sequence(folder, frames=5)  # decoded again: the checks follow the files, not a stale memo
    assert files.frame_problems(pattern) == []


def test_damaged_frames_render_empty_in_playback_and_animation(tmp_path):
    zip_path = build_addon.build(str(tmp_path / "dist"))
    source = write_moving_sequence(str(tmp_path / "captured"))
    assert NUM_FRAMES == 4
    imported = run_blender(tmp_path, {"zip": zip_path, "clear": True, "camera": CAMERA,
                                      "imports": [{"filepath": source, "fps": 24.0, "start_frame": 1}],
                                      "save": str(tmp_path / "shot.blend")}, "import")
    assert imported["imports"][0]["status"] == ["FINISHED"]
    damage(source)  # after the import (which checks every frame), as a copy or a disk could
    result = run_blender(tmp_path, {"zip": zip_path, "open": str(tmp_path / "shot.blend"), "cache_check": True,
                                    "probe": [1, 2, 3, 4, 1], "samples": 4,
                                    "animation": {"engine": "CYCLES", "frames": [1, 4], "path": str(tmp_path / "anim_")}},
                         "played")
    assert [p["vertices"] for p in result["probes"]] == [4 * 340, 0, 0, 0, 4 * 340]  # scene frame f: stream frame f-1
    warning = result["cache_error"]
    assert "\n" not in warning and "3 of 4 frames are missing or damaged and show empty" in warning, warning
    assert "stream frame 1" in warning and "frame_00001.ply" in warning
    frames = {f: read_png(str(tmp_path / f"anim_{f:04d}.png")).astype(float) for f in range(1, 5)}
    assert frames[1].mean() > 10  # the wall
    for f in (2, 3, 4):
        assert frames[f].max() < 30, f  # empty (the world's dark grey), not the wall of another frame
