"""The exact compositing layer: `gifstream render-layer` (cameras file -> multilayer EXR sequence, RGBA + Z in
Blender's conventions), the add-on's operator that renders it from the scene camera and wires the compositor, CG in
front of / behind the capture in the composite, and the farm bundle carrying the layer."""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from gifstream_engine.capture.camera import Camera
from gifstream_engine.plyio import write_gaussian_ply
from gifstream_engine.render import exr_layer
from gifstream_engine.render.exr_layer import BACKGROUND_DEPTH, CHANNELS, LayerError, read_exr

CLI = [sys.executable, "-m", "gifstream_engine.cli"]
# an OpenCV camera at (0, -5, 0) looking along +y, world z up (as tests/test_blender_sequence.py)
CAMERA = {"width": 80, "height": 60, "K": [[70.0, 0, 40.0], [0, 70.0, 30.0], [0, 0, 1]],
          "w2c": [[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 5.0], [0, 0, 0, 1]]}


def one_gaussian_folder(folder, frames=3, depth=4.0, color=(0.5, 0.2, 1.0), opacity=0.95):
    """One round Gaussian per frame on the optical axis of an identity camera, stepping 0.5 along x per frame."""
    os.makedirs(folder, exist_ok=True)
    for t in range(frames):
        write_gaussian_ply(os.path.join(folder, f"frame_{t:05d}.ply"), np.array([[0.5 * t, 0.0, depth]]),
                           np.array([[1.0, 0, 0, 0]]), np.full((1, 3), 0.3), np.array([opacity]), np.array([color]))
    return folder


def cameras_file(path, frames, w2c=None, placement=None, per_frame=None, **mapping):
    K = [[40.0, 0, 20.5], [0, 40.0, 15.5], [0, 0, 1]]  # pixel (20, 15) centred on the optical axis
    spec = {"format": "gifstream-layer-cameras", "version": 1, "start_frame": 1, "scene_fps": 30.0,
            "stream_fps": 30.0, **mapping,
            "frames": [{"frame": f, "width": 40, "height": 30, "K": K, "w2c": (np.eye(4) if w2c is None else w2c).tolist()}
                       for f in frames]}
    if placement is not None:
        spec["capture_to_world"] = np.asarray(placement).tolist()
    for entry, here in zip(spec["frames"], per_frame or []):  # an animated placement
        entry["capture_to_world"] = np.asarray(here).tolist()
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def run_cli(*args):
    """`gifstream ARGS` in this process (torch is loaded once): (exit status, stdout, stderr)."""
    from gifstream_engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


# -- engine --------------------------------------------------------------------------------------------------------

def test_render_layer_writes_rgba_and_depth_in_blenders_conventions(tmp_path):
    seq = one_gaussian_folder(str(tmp_path / "seq"))
    cams = cameras_file(str(tmp_path / "cams.json"), [1, 2, 3, 4])
    proc = run_cli("render-layer", seq, "--cameras", cams, "--out", str(tmp_path / "out"), "--events")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["step"] for e in events if e["type"] == "progress"] == [1, 2, 3, 4]
    assert [e["stream_frame"] for e in events if e["type"] == "progress"] == [0, 1, 2, 2]  # held after the end
    assert events[-1]["type"] == "result" and events[-1]["data"]["frames"] == 4
    assert sorted(os.listdir(tmp_path / "out")) == [f"layer_{f:04d}.exr" for f in (1, 2, 3, 4)]
    exr = read_exr(str(tmp_path / "out" / "layer_0001.exr"))
    assert sorted(exr) == sorted(CHANNELS) and all(v.dtype == np.float32 and v.shape == (30, 40) for v in exr.values())
    z, a = exr["ViewLayer.Depth.Z"], exr["ViewLayer.Combined.A"]
    assert z[15, 20] == pytest.approx(4.0, abs=1e-4)  # the Gaussian's camera z at its centre
    assert a[15, 20] > 0.9 and a[0, 0] == 0 and z[0, 0] == BACKGROUND_DEPTH  # background: nothing, far away
    covered = a > 1e-3
    assert np.allclose(z[covered], 4.0, atol=1e-3)  # a planar depth: the same over the whole splat
    # premultiplied scene-linear colour: sRGB 0.5 / 0.2 / 1.0 decode to 0.214 / 0.0331 / 1.0, times alpha
    linear = np.array([0.21404, 0.03310, 1.0])
    rgb = np.stack([exr[f"ViewLayer.Combined.{c}"] for c in "RGB"], -1)
    assert rgb[15, 20] == pytest.approx(linear * a[15, 20], rel=2e-3)
    assert np.all(rgb <= a[..., None] + 1e-6)
    # frame 2 shows stream frame 1: the Gaussian 0.5 to the right at depth 4 is 5 px right of the centre
    a2 = read_exr(str(tmp_path / "out" / "layer_0002.exr"))["ViewLayer.Combined.A"]
    assert np.unravel_index(np.argmax(a2), a2.shape) == (15, 25)


def test_capture_placement_scales_depth_and_moves_the_camera(tmp_path):
    """The capture placed by a similarity (rotation, uniform scale 2, offset): the world camera sees it where the
    transform puts it and depth is in world units."""
    angle = np.radians(30)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    placement = np.eye(4)
    placement[:3, :3], placement[:3, 3] = 2.0 * rot, [0.3, -0.2, 1.0]
    camera = Camera("c", 40, 30, np.array([[40.0, 0, 20], [0, 40.0, 15], [0, 0, 1]]), np.eye(4))
    captured, scale = exr_layer.capture_camera(camera, placement)
    points = np.random.default_rng(0).normal(size=(5, 3)) + [0, 0, 6]
    world = points @ placement[:3, :3].T + placement[:3, 3]
    uv_world, z_world = camera.project(world)
    uv_capture, z_capture = captured.project(points)
    assert scale == pytest.approx(2.0) and np.allclose(uv_world, uv_capture) and np.allclose(z_world, z_capture * 2)

    # end to end: the Gaussian at capture (0, 0, 4) placed at world (0, 0, 8) by scale 2 has Z 8; animated to scale
    # 3 at the next frame (a per-frame placement), Z 12
    seq = one_gaussian_folder(str(tmp_path / "seq"), frames=1)
    cams = cameras_file(str(tmp_path / "cams.json"), [0, 1], placement=np.diag([2.0, 2.0, 2.0, 1.0]),
                        per_frame=[np.diag([2.0, 2.0, 2.0, 1.0]), np.diag([3.0, 3.0, 3.0, 1.0])])
    assert run_cli("render-layer", seq, "--cameras", cams, "--out", str(tmp_path / "out")).returncode == 0
    for frame, z in ((0, 8.0), (1, 12.0)):
        depth = read_exr(str(tmp_path / "out" / f"layer_{frame:04d}.exr"))["ViewLayer.Depth.Z"]
        assert depth[15, 20] == pytest.approx(z, abs=1e-3)
    for bad, message in ((np.diag([1.0, 2.0, 1.0, 1.0]), "unevenly"), (np.diag([-1.0, 1.0, 1.0, 1.0]), "mirrored")):
        with pytest.raises(LayerError, match=message):
            exr_layer.capture_camera(camera, bad)


def test_stream_frame_matches_the_addons_mapping():
    from blender_addon.core import sequence_files

    for args in [(f, 3, 12.0, 24.0, 4) for f in range(-2, 20)] + [(f, 1, 30.0, 24.0, 50) for f in range(0, 80, 7)]:
        assert exr_layer.stream_frame(*args) == sequence_files.stream_frame(*args)


def test_render_layer_bad_inputs_give_one_message(tmp_path):
    seq = one_gaussian_folder(str(tmp_path / "seq"), frames=1)
    points = tmp_path / "points"
    points.mkdir()
    from gifstream_engine.plyio import write_point_ply

    write_point_ply(str(points / "frame_00000.ply"), np.zeros((3, 3)), np.zeros((3, 3), np.uint8))
    good = cameras_file(str(tmp_path / "good.json"), [1])
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "gifstream-layer-cameras", "version": 1, "scene_fps": 24, "frames": [{"frame": 1}]}')
    corrupt = tmp_path / "corrupt.gifs"
    corrupt.write_bytes(b"GIFS" + bytes(100))
    no_fps = cameras_file(str(tmp_path / "nofps.json"), [1], stream_fps=None)
    cases = [
        ((str(tmp_path / "missing"), good), "does not exist"),
        ((str(points), good), "not a 3D Gaussian Splatting PLY"),
        ((seq, str(broken)), "frames[0]"),
        ((seq, str(tmp_path / "nope.json")), "cannot read the cameras file"),
        ((str(corrupt), good), "corrupt.gifs"),
        ((seq, no_fps), "stream_fps"),
    ]
    for (sequence, cams), message in cases:
        out = tmp_path / "out"
        proc = run_cli("render-layer", sequence, "--cameras", cams, "--out", str(out))
        assert proc.returncode == 2, (message, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("gifstream: error: ") and message in lines[0], lines
        assert not any(name.endswith(".exr") for name in os.listdir(out)) if out.exists() else True


def test_layer_job_progress_cancel_and_failure(tmp_path):
    from blender_addon.core.layer_job import CAMERAS_FILE, LayerJob

    seq = one_gaussian_folder(str(tmp_path / "seq"))
    cameras = json.load(open(cameras_file(str(tmp_path / "cams.json"), [1, 2, 3])))
    done = LayerJob(sys.executable, seq, cameras, str(tmp_path / "layer"), "layer_")
    done.wait()
    assert done.status == "finished" and done.done == done.total == 3, done.status_line()
    assert sorted(os.listdir(tmp_path / "layer")) == [CAMERAS_FILE] + [f"layer_{f:04d}.exr" for f in (1, 2, 3)]
    assert not os.path.exists(done.part_dir)
    failed = LayerJob(sys.executable, str(tmp_path / "gone"), cameras, str(tmp_path / "layer"), "layer_")
    failed.wait()
    assert failed.status == "failed" and "gone" in failed.message and "does not exist" in failed.message
    assert len(os.listdir(tmp_path / "layer")) == 4 and not os.path.exists(failed.part_dir)  # the previous layer stays
    cancelled = LayerJob(sys.executable, seq, cameras, str(tmp_path / "other"), "layer_")
    cancelled.cancel()  # while the engine still starts up
    assert cancelled.status == "cancelled" and cancelled.engine.returncode is not None
    assert not os.path.exists(tmp_path / "other") and not os.path.exists(cancelled.part_dir)


# -- Blender -------------------------------------------------------------------------------------------------------

BLENDER_SCRIPT = os.path.join(os.path.dirname(__file__), "blender_scripts", "compositing.py")
WALL_Y, BLOB_Y, BLOB_Z = 1.0, 0.5, 0.45  # capture units: a blue wall, a red blob moving along x in front of it
ORIGIN, SCALE = [0.3, 0.0, 0.0], 2.0
CAMERA_SHIFT = 0.6  # the scene camera is animated: 0.6 to the right at frame 1, at CAMERA's pose from frame 3  # where the artist put the capture: world = 2 * capture + (0.3, 0, 0)
CUBES = [  # world units; the wall is at y = 2 (depth 7 from the camera at y = -5)
    {"name": "front", "location": [-0.6, 0.0, 0.0], "size": 0.6, "color": [0.1, 0.9, 0.1]},  # depth 5: in front
    {"name": "behind", "location": [1.0, 3.0, 0.0], "size": 0.8, "color": [0.9, 0.9, 0.1]},  # depth 8: hidden by it
    {"name": "beside", "location": [2.9, 3.0, 0.0], "size": 0.8, "color": [0.9, 0.4, 0.0]},  # depth 8, past its edge
]


PROJECTIONS = [  # the scene camera as the engine gets it, against Blender's own projection
    {"sensor_fit": "AUTO", "shift": [0.1, -0.05], "resolution": [64, 48], "pixel_aspect": [1, 1]},
    {"sensor_fit": "AUTO", "shift": [0.0, 0.2], "resolution": [40, 70], "pixel_aspect": [1, 1]},
    {"sensor_fit": "VERTICAL", "shift": [-0.1, 0.1], "resolution": [64, 48], "pixel_aspect": [1, 1]},
    {"sensor_fit": "HORIZONTAL", "shift": [0.05, 0.1], "resolution": [64, 48], "pixel_aspect": [2, 1]},
    {"sensor_fit": "AUTO", "shift": [0.1, 0.0], "resolution": [64, 48], "pixel_aspect": [1, 1.5]},
]


def write_wall_and_blob(folder, frames=3):
    os.makedirs(folder, exist_ok=True)
    xs, zs = np.meshgrid(np.arange(-1, 1.001, 0.08), np.arange(-0.75, 0.751, 0.08))
    wall = np.stack([xs.ravel(), np.full(xs.size, WALL_Y), zs.ravel()], 1)
    blob = np.random.default_rng(0).normal(size=(30, 3)) * 0.05
    for t in range(frames):
        means = np.concatenate([wall, blob + [-0.6 + 0.6 * t, BLOB_Y, BLOB_Z]])
        n = len(means)
        scales = np.concatenate([np.full((len(wall), 3), 0.06), np.full((30, 3), 0.05)])
        colors = np.concatenate([np.tile([0.2, 0.4, 0.9], (len(wall), 1)), np.tile([1.0, 0.25, 0.1], (30, 1))])
        write_gaussian_ply(os.path.join(folder, f"frame_{t:05d}.ply"), means, np.tile([1.0, 0, 0, 0], (n, 1)), scales,
                           np.full(n, 0.95), colors)
    return folder


def run_blender(tmp_path, spec, name):
    spec_path, out = str(tmp_path / f"{name}_spec.json"), str(tmp_path / f"{name}.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = {**os.environ, "HOME": str(tmp_path / f"home_{name}")}
    proc = subprocess.run(["nice", "-n", "19", sys.executable, BLENDER_SCRIPT, spec_path, out], capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out) as f:
        return json.load(f)


def colour_mask(img, lo, hi):
    return np.all((img >= lo) & (img <= hi), axis=-1)


GREEN = ([0, 150, 0], [150, 255, 150])
YELLOW = ([150, 210, 0], [255, 255, 130])
ORANGE = ([200, 80, 0], [255, 195, 60])
BLUE = ([0, 0, 150], [120, 160, 255])
RED = ([200, 0, 0], [255, 120, 90])


def erode(mask):
    inner = mask.copy()
    for axis in (0, 1):
        for shift in (-1, 1):
            inner &= np.roll(mask, shift, axis)
    return inner


def blob_column(img):
    return np.argwhere(colour_mask(img, *RED))[:, 1].mean()


def test_cg_in_front_of_and_behind_the_capture_in_the_composite_and_on_the_farm(tmp_path):
    """The layer rendered from the scene camera through the capture's empty (moved, scaled 2x): a CG cube in front of
    the captured wall covers it, one behind it is hidden, one beside it shows; the frame mapping picks the stream
    frame and the camera's animation is followed; the farm bundle, moved, opened without the add-on and with scripts disabled, composites the same."""
    pytest.importorskip("bpy")
    import build_addon
    from gifstream_engine.imageio import read_png

    source = write_wall_and_blob(str(tmp_path / "captured"))
    png = lambda name: str(tmp_path / f"{name}.png")  # noqa: E731
    result = run_blender(tmp_path, {
        "zip": build_addon.build(str(tmp_path / "dist")), "frames": [1, 3], "scene_fps": 24, "camera": CAMERA,
        "camera_keys": [{"frame": 1, "offset": [CAMERA_SHIFT, 0, 0]}, {"frame": 3, "offset": [0, 0, 0]}],
        "import": {"filepath": source, "fps": 24.0, "start_frame": 1}, "origin": {"location": ORIGIN, "scale": SCALE},
        "cubes": CUBES, "save": str(tmp_path / "work" / "shot.blend"), "layer_errors": ["ortho", "uneven"], "layer": {},
        "default_compositor": True, "projection_check": PROJECTIONS,
        "renders": [{"frame": 3, "path": png("composite_3")}, {"frame": 1, "path": png("composite_1")},
                    {"frame": 3, "path": png("cg_3"), "compositing": False}],
        "bundle": str(tmp_path / "bundle")}, "shot")
    assert result["import"][0] == ["FINISHED"] and result["layer"] == [["FINISHED"], ""], result
    ortho, uneven = result["layer_errors"]  # one message each, nothing wired, the proxy left visible
    assert "orthographic" in ortho["error"] and "unevenly" in uneven["error"] and "failed" in uneven["error"], result
    assert all(e["status"] == ["CANCELLED"] and e["images"] == 0 and e["visible_camera"] for e in (ortho, uneven))
    assert not os.path.exists(tmp_path / "work" / "gifstream_layer" / "captured.part")
    assert max(result["projection_errors"]) < 1e-3, result["projection_errors"]  # pixels (and depth units)
    (image,) = result["images"]
    assert image["filepath"] == "//gifstream_layer/captured/layer_0001.exr", image
    assert (image["source"], image["type"]) == ("SEQUENCE", "MULTILAYER")
    node = result["image_node"]
    assert node["outputs"] == ["Combined", "Alpha", "Depth"] and (node["frame_start"], node["frame_duration"]) == (1, 3)
    assert {"Depth>Depth A", "Depth>Depth B", "Combined>B", "Image>A", "Result>Image"} <= set(node["linked"])
    assert node["group_outputs"] == node["render_layers"] == 1  # the artist's compositor, extended
    assert "Image>Image" not in node["linked"]  # its Render Layers no longer go straight to the output
    assert result["proxy_visible_camera"] is False and result["use_pass_z"] is True
    layer_dir = tmp_path / "work" / "gifstream_layer" / "captured"
    assert sorted(n for n in os.listdir(layer_dir) if n.endswith(".exr")) == [f"layer_{f:04d}.exr" for f in (1, 2, 3)]

    cg, comp, comp1 = read_png(png("cg_3")), read_png(png("composite_3")), read_png(png("composite_1"))
    green, yellow, orange = (colour_mask(cg, *c) for c in (GREEN, YELLOW, ORANGE))
    assert green.sum() > 40 and yellow.sum() > 40 and orange.sum() > 40  # the CG alone shows all three cubes
    # in front: the green cube stays (with the scale ignored the wall's Z would be 3.5 and hide it); its one-pixel
    # rim may show the wall: Z Combine takes one depth per pixel (see README, limits)
    inner = erode(green)
    assert inner.sum() > 30 and colour_mask(comp, *GREEN)[inner].mean() > 0.95
    assert colour_mask(comp, *BLUE)[yellow].mean() > 0.9 and not colour_mask(comp, *YELLOW).any()  # behind: hidden
    # beside, behind the wall's edge: seen where the wall is not, hidden where it is
    assert 5 < (colour_mask(comp, *ORANGE) & orange).sum() < 0.8 * orange.sum() and colour_mask(comp, *BLUE)[orange].sum() > 5
    # the red blob at scene frame 3 is stream frame 2 (world x = 0.3 + 2 * 0.6 at depth 6), at frame 1 stream frame 0
    # (x = -0.9) seen from the camera where it is at frame 1 (moved CAMERA_SHIFT along x)
    assert blob_column(comp) == pytest.approx(40 + 70 * 1.5 / 6 - 0.5, abs=2.5)
    assert blob_column(comp1) == pytest.approx(40 + 70 * (-0.9 - CAMERA_SHIFT) / 6 - 0.5, abs=2.5)

    moved = tmp_path / "elsewhere" / "bundle"
    shutil.move(str(tmp_path / "bundle"), str(moved))
    shutil.move(str(tmp_path / "work"), str(tmp_path / "work_gone"))  # the bundle carries its own layer and caches
    shutil.move(source, str(tmp_path / "captured_gone"))
    farm = run_blender(tmp_path, {"open": str(moved / "shot.blend"), "renders": [{"frame": 3, "path": png("farm_3")}]},
                       "farm")
    assert not farm["addon_enabled"]
    assert [i["filepath"] for i in farm["images"]] == ["//layers/captured/layer_0001.exr"]
    assert np.abs(read_png(png("farm_3")).astype(float) - comp.astype(float)).mean() < 1.0
