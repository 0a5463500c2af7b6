"""Issue 29, item 4: a cache frame that is missing or damaged (truncated, garbage) while the timeline plays or an
animation renders shows as an empty frame, with one warning line (the Sequence panel's cache check); never a crash,
never another frame in its place. A frame whose header is intact but whose vertex data changed (garbage of the right
length) is found by the CRC-32 the engine writes into the header: checked in the background for the panel, waited for
by the farm bundle, which refuses the cache with the same line."""

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


def garble_body(path):
    """The vertex data replaced by random bytes of the same length; the header (and the file's size) intact."""
    with open(path, "rb") as f:
        data = f.read()
    start = data.index(b"end_header\n") + len(b"end_header\n")
    with open(path, "wb") as f:
        f.write(data[:start] + np.random.default_rng(1).bytes(len(data) - start))


def test_frame_problems_name_each_bad_frame_and_see_a_repair(tmp_path):
    files, checks = addon_module("core.sequence_files"), addon_module("core.frame_checks")
    folder = write_moving_sequence(str(tmp_path / "seq"), frames=5)
    pattern = files.find_pattern(folder)
    assert checks.frame_problems(pattern) == checks.FrameReport((), 0)
    expected = damage(folder)
    problems = checks.frame_problems(pattern).problems
    assert [p.frame for p in problems] == [1, 2, 3] and all(p.shows_empty for p in problems)
    for p in problems:
        assert expected[p.frame] in p.message and f"frame_{p.frame:05d}.ply" in p.message, p
    write_moving_sequence(folder, frames=5)  # decoded again: the checks follow the files, not a stale memo
    assert checks.frame_problems(pattern) == checks.FrameReport((), 0)


def test_a_garbage_body_is_found_by_its_checksum_in_the_background(tmp_path):
    files, checks = addon_module("core.sequence_files"), addon_module("core.frame_checks")
    folder = write_moving_sequence(str(tmp_path / "seq"), frames=3)
    pattern = files.find_pattern(folder)
    size = os.path.getsize(pattern.path(1))
    garble_body(pattern.path(1))
    assert os.path.getsize(pattern.path(1)) == size and files.check_gaussian_ply(pattern.path(1)).vertices == 340
    report = checks.frame_problems(pattern, wait=False)  # a panel: the bodies are read by the background thread
    assert report.problems == () and report.unchecked == 3
    checks.wait_for_background_checks()
    report = checks.frame_problems(pattern, wait=False)
    assert report.unchecked == 0 and [(p.frame, p.shows_empty) for p in report.problems] == [(1, False)]
    assert "frame_00001.ply: damaged" in report.problems[0].message and "CRC-32" in report.problems[0].message
    assert checks.frame_problems(pattern) == report  # waited for: the same, from the memo
    # a PLY from another tool carries no checksum: its body cannot be checked, and is not reported
    with open(pattern.path(1), "rb") as f:
        data = f.read()
    with open(pattern.path(1), "wb") as f:
        f.write(data.replace(b"comment gifstream body_crc32", b"comment another tool's note"))
    assert checks.frame_problems(pattern) == checks.FrameReport((), 0)


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


def test_a_garbage_body_warns_in_the_panel_and_the_farm_bundle_refuses_it(tmp_path):
    zip_path = build_addon.build(str(tmp_path / "dist"))
    source = write_moving_sequence(str(tmp_path / "captured"))
    imported = run_blender(tmp_path, {"zip": zip_path, "clear": True, "camera": CAMERA,
                                      "imports": [{"filepath": source, "fps": 24.0, "start_frame": 1}],
                                      "save": str(tmp_path / "shot.blend")}, "import")
    assert imported["imports"][0]["status"] == ["FINISHED"]
    garble_body(os.path.join(source, "frame_00002.ply"))
    result = run_blender(tmp_path, {"zip": zip_path, "open": str(tmp_path / "shot.blend"), "panel": True,
                                    "cache_check": True, "probe": [2, 4], "bundle": str(tmp_path / "bundle")}, "checked")
    assert [p["faces"] for p in result["probes"]] == [340, 340]  # drawn as they are: no render depends on the check
    warning = result["cache_error"]
    assert "\n" not in warning and "1 of 4 frames are missing or damaged, drawn as they are" in warning, warning
    assert "stream frame 2" in warning and "frame_00002.ply: damaged" in warning and "CRC-32" in warning
    assert result["bundle_status"] == ["CANCELLED"] and warning in result["bundle_error"]  # the same line
    before, after = result["panel"]  # the panel: the bodies checked in the background, then the same warning
    assert "Checking the cache: 4 frames left" in before and warning not in before, before
    assert warning in after and not any(line.startswith("Checking") for line in after), after
    assert not os.path.exists(str(tmp_path / "bundle"))
