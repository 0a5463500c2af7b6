import json
import subprocess
import sys

import numpy as np

from gifstream_engine.cli import main
from conftest import TINY

GIFSTREAM = [sys.executable, "-m", "gifstream_engine.cli"]


def test_capture_synth_then_info_json(tmp_path):
    out = str(tmp_path / "cap")
    proc = subprocess.run(GIFSTREAM + ["capture", "synth", out, "--cameras", "3", "--num-frames", "3",
                                       "--width", "48", "--height", "32", "--samples", "4"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(GIFSTREAM + ["capture", "info", out, "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["format"] == "n3dv" and info["fps"] == 30.0 and info["num_frames"] == 3
    assert len(info["scene_bounds"]) == 2 and len(info["scene_bounds"][0]) == 3
    assert [c["name"] for c in info["cameras"]] == ["cam00", "cam01", "cam02"]
    cam = info["cameras"][1]
    assert set(cam) >= {"name", "width", "height", "K", "w2c", "split"}
    assert np.asarray(cam["K"]).shape == (3, 3) and np.asarray(cam["w2c"]).shape == (4, 4)
    assert cam["split"] == "train" and info["cameras"][0]["split"] == "test"


def test_info_error_is_one_clear_line(tmp_path, capsys):
    assert main(["capture", "info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gifstream: error:") and "unknown capture layout" in err and "Traceback" not in err


def test_info_table_and_frame_range(synth_capture, capsys):
    assert main(["capture", "info", synth_capture, "--frames", "1:4", "--downscale", "2"]) == 0
    out = capsys.readouterr().out
    assert f"{TINY.num_cameras} cameras, 3 frames at 30 fps" in out and f"{TINY.width // 2}x{TINY.height // 2}" in out


def test_capture_points_writes_ply(synth_capture, tmp_path, capsys):
    from gifstream_engine.plyio import read_point_ply

    path = str(tmp_path / "points.ply")
    assert main(["capture", "points", synth_capture, "--out", path]) == 0
    points, colors = read_point_ply(path)
    assert len(points) > 0 and colors.shape == (len(points), 3)
