"""The add-on as a user meets it: build the zip, install it into headless Blender (bpy), import a capture."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("bpy")

import build_addon
from gifstream_engine.capture import load_capture
from gifstream_engine.imageio import read_png, write_png

SCRIPT = os.path.join(os.path.dirname(__file__), "blender_scripts", "import_rig.py")


def run_blender(tmp_path, *args, env_extra=None):
    env = {**os.environ, "HOME": str(tmp_path / "home"), **(env_extra or {})}
    out = str(tmp_path / "result.json")
    proc = subprocess.run([sys.executable, SCRIPT, build_addon.build(str(tmp_path / "dist")), *args[:1], out, *args[1:]],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with open(out) as f:
        return json.load(f), proc


def test_import_capture_builds_an_exact_rig(synth_capture, tmp_path):
    result, _ = run_blender(tmp_path, synth_capture)
    assert result["enabled"] and result["status"] == ["FINISHED"] and result["check_engine"] == ["FINISHED"]
    # the footage is display-referred sRGB: the import shows it as captured, unless told to keep the scene's look
    assert result["colour"]["before"] == "AgX"
    assert result["colour"]["after_import"] == ["Standard", "None", 0.0, 1.0, "sRGB"]
    assert result["colour"]["kept"] == ["AgX", 1.5] and result["colour"]["fixed"] == ["Standard", 0.0]
    cap = load_capture(synth_capture)
    assert result["scene"]["fps"] == pytest.approx(cap.fps)
    assert (result["scene"]["frame_start"], result["scene"]["frame_end"]) == (1, cap.num_frames)
    assert result["scene"]["resolution"] == [cap.cameras[0].width, cap.cameras[0].height]
    probe = np.array(result["probe"])
    for cam in cap.cameras:
        got = result["cameras"][cam.name]
        assert got["split"] == cam.split and got["has_footage"] and got["clip_frames"] == cap.num_frames
        uv, depth = cam.project(probe)
        blender = np.array(got["pixels"])
        in_front = depth > 0
        err = np.abs(blender[in_front, :2] - uv[in_front]).max()
        assert err < 0.5, f"{cam.name}: engine and Blender projections differ by {err:.3f} px"
        np.testing.assert_allclose(blender[in_front, 2], depth[in_front], rtol=1e-4)


def test_principal_point_offset_becomes_lens_shift(synth_loaded, tmp_path):
    from builders import write_colmap_text
    import dataclasses

    shift = np.array([[0, 0, 7.0], [0, 0, -5.0], [0, 0, 0]])
    cap = dataclasses.replace(synth_loaded, cameras=[dataclasses.replace(c, K=c.K + shift) for c in synth_loaded.cameras])
    root = str(tmp_path / "colmap")
    write_colmap_text(cap, root)
    result, _ = run_blender(tmp_path, root)
    probe = np.array(result["probe"])
    for cam in load_capture(root).cameras:
        uv, depth = cam.project(probe)
        blender = np.array(result["cameras"][cam.name]["pixels"])
        assert np.abs(blender[depth > 0, :2] - uv[depth > 0]).max() < 0.5


def test_render_from_imported_camera_matches_footage(synth_capture, tmp_path):
    png = str(tmp_path / "render.png")
    result, _ = run_blender(tmp_path, synth_capture, os.path.join(synth_capture, "scene.blend"), png)
    cap = load_capture(synth_capture)
    cam_index = cap.camera_index(result["rendered_camera"])
    rendered = read_png(png).astype(np.float32) / 255
    footage = cap.frame(cam_index, 0)
    psnr = -10 * np.log10(np.mean((rendered - footage) ** 2))
    write_png(str(tmp_path / "render_vs_footage.png"), np.concatenate([footage, rendered], axis=1))
    shifted = -10 * np.log10(np.mean((np.roll(rendered, 3, axis=1) - footage) ** 2))
    assert psnr > 25, psnr  # same scene, same camera: only Monte-Carlo noise and video coding differ
    assert psnr > shifted + 3  # and a 3-pixel misregistration would show


def test_missing_engine_python_is_reported(synth_capture, tmp_path):
    env = {"GIFSTREAM_ENGINE_PYTHON": str(tmp_path / "no" / "python")}
    result, proc = run_blender(tmp_path, synth_capture, env_extra=env)
    assert result["status"] == ["CANCELLED"]
    assert "GIFSTREAM_ENGINE_PYTHON points to" in result["error"] and "does not exist" in result["error"]


TRAIN_SCRIPT = os.path.join(os.path.dirname(__file__), "blender_scripts", "train_panel.py")


def run_train_panel(tmp_path, capture, mode):
    out = str(tmp_path / f"{mode}.json")
    run = str(tmp_path / f"run_{mode}")
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, TRAIN_SCRIPT, build_addon.build(str(tmp_path / "dist")), capture, run, out, mode],
                          capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with open(out) as f:
        return json.load(f), run


def test_train_from_the_panel_to_the_end(synth_capture, tmp_path):
    result, run = run_train_panel(tmp_path, synth_capture, "finish")
    assert result["start"] == ["FINISHED"]
    assert result["status"] == "finished" and result["exit_code"] == 0, result
    assert result["total"] == 40 and result["step"] == 40 and result["n_progress"] > 3
    assert "test PSNR" in result["message"]
    steps = [step for step, _, _ in result["progress"]]
    assert steps == sorted(steps) and result["progress"][-1][1] == 100.0  # the panel's progress reached the end
    assert os.path.isfile(os.path.join(run, "eval.json")) and "evaluating on the test cameras" in result["log_text"]


def test_cancel_from_the_panel_keeps_a_checkpoint_and_no_process(synth_capture, tmp_path):
    result, run = run_train_panel(tmp_path, synth_capture, "cancel")
    assert result["cancel"] == ["FINISHED"]
    assert result["status"] == "cancelled" and result["exit_code"] == 0, result
    assert 6 <= result["step"] < 40
    assert os.path.isfile(os.path.join(run, "gop_000", "checkpoint.pt"))


def test_engine_error_reaches_the_panel(tmp_path):
    result, _ = run_train_panel(tmp_path, str(tmp_path / "no_such_capture"), "finish")
    assert result["status"] == "failed" and result["exit_code"] == 2
    assert "no_such_capture does not exist" in result["message"]


@pytest.mark.parametrize("layout", ["panoptic", "nerfstudio"])
def test_import_other_layouts(layout, synth_loaded, tmp_path):
    from builders import write_nerfstudio, write_panoptic

    root = str(tmp_path / layout)
    (write_panoptic if layout == "panoptic" else write_nerfstudio)(synth_loaded, root)
    result, _ = run_blender(tmp_path, root)
    assert result["status"] == ["FINISHED"]
    cap = load_capture(root)
    probe = np.array(result["probe"])
    assert sorted(result["cameras"]) == sorted(c.name for c in cap.cameras)
    for cam in cap.cameras:
        got = result["cameras"][cam.name]
        assert got["has_footage"] and got["clip_frames"] == cap.num_frames
        uv, depth = cam.project(probe)
        assert np.abs(np.array(got["pixels"])[depth > 0, :2] - uv[depth > 0]).max() < 0.5
