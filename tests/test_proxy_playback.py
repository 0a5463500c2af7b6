"""Proxy playback: the tree reads the next frame ahead (each PLY read once, never shown in place of another frame,
a frame damaged after it was read ahead shows empty), and the allocator setting for playback (glibc's mallopt)."""

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from blender_addon.core import playback_memory

SCRIPT = os.path.join(os.path.dirname(__file__), "blender_scripts", "playback.py")
FRAMES = 5


def gaussians_in(t: int) -> int:
    return 200 + 50 * t  # every frame a different count, so a frame shown as another is seen


def write_sequence(folder) -> list[int]:
    from gifstream_engine.plyio import write_gaussian_ply

    rng = np.random.default_rng(0)
    os.makedirs(folder)
    sizes = []
    for t in range(FRAMES):
        n = gaussians_in(t)
        path = os.path.join(folder, f"frame_{t:05d}.ply")
        write_gaussian_ply(path, rng.normal(size=(n, 3)), rng.normal(size=(n, 4)), np.full((n, 3), 0.05),
                           np.full(n, 0.8), rng.uniform(size=(n, 3)))
        sizes.append(os.path.getsize(path))
    return sizes


def run_playback(tmp_path, spec):
    spec_path, out = str(tmp_path / "spec.json"), str(tmp_path / "out.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, SCRIPT, spec_path, out], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def addon_zip(tmp_path_factory):
    pytest.importorskip("bpy")
    import build_addon

    return build_addon.build(str(tmp_path_factory.mktemp("dist")))


def test_each_frame_is_read_once_ahead_and_shown_as_itself(addon_zip, tmp_path):
    folder = str(tmp_path / "seq")
    sizes = write_sequence(folder)
    result = run_playback(tmp_path, {"zip": addon_zip, "folder": folder, "frames": FRAMES, "keep_freed_memory": True,
                                     "damage": 3, "damage_path": os.path.join(folder, "frame_00003.ply")})
    shown = result["frames"]
    assert [f["vertices"] for f in shown] == [4 * gaussians_in(t) for t in range(FRAMES)]  # the read-ahead adds nothing
    # the import showed scene frame 0 (stream frame 0, held before the start); from then on, scene frame t + 1 shows
    # stream frame t, read before, and reads stream frame t + 1 only
    for t in range(FRAMES - 1):
        assert sizes[t + 1] <= shown[t]["bytes_read"] < sizes[t + 1] + sizes[t] // 2, (t, shown[t], sizes)
    assert shown[-1]["bytes_read"] < sizes[-1] // 2  # the last frame: nothing further to read
    # stream frame 3, cut in half after it was read ahead at scene frame 3, shows empty at scene frame 4
    assert result["damaged_vertices"] == 0


@pytest.mark.parametrize("keep", [True, False])
def test_import_sets_the_allocator_as_the_preference_says(addon_zip, tmp_path, keep):
    folder = str(tmp_path / "seq")
    write_sequence(folder)
    result = run_playback(tmp_path, {"zip": addon_zip, "folder": folder, "frames": 2, "keep_freed_memory": keep})
    assert result["allocator_set"] is keep
    assert result["allocator_available"] is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_allocator_setting_takes_on_glibc_and_is_skipped_elsewhere(monkeypatch):
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert playback_memory.apply() is on_glibc
    monkeypatch.setattr(platform, "libc_ver", lambda *args: ("", ""))
    assert playback_memory.available() is False and playback_memory.apply() is False
