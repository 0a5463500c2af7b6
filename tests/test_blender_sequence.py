"""Decoded sequences in Blender: PLY naming and checks, import, the timeline (scrubbing, Cycles and Eevee
renders), the farm bundle opened in a fresh process with scripts disabled, .gifs decoding out of process, bad inputs."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("bpy")

import build_addon
from blender_addon.core import sequence_files
from gifstream_engine.imageio import read_png
from gifstream_engine.plyio import read_gaussian_ply, write_gaussian_ply, write_point_ply

SCRIPT = os.path.join(os.path.dirname(__file__), "blender_scripts", "sequence.py")
NUM_FRAMES, BLOB_START, BLOB_STEP = 4, -0.8, 0.5  # a red blob moving along x in front of a static blue wall
# an OpenCV camera at (0, -5, 0) looking along +y, world z up
CAMERA = {"width": 80, "height": 60, "K": [[70.0, 0, 40.0], [0, 70.0, 30.0], [0, 0, 1]],
          "w2c": [[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 5.0], [0, 0, 0, 1]]}


def write_moving_sequence(folder, name=lambda t: f"frame_{t:05d}.ply", frames=NUM_FRAMES):
    rng = np.random.default_rng(0)
    wall = rng.normal(size=(300, 3)) * [1.2, 0.05, 0.8] + [0, 1.0, 0]
    blob = rng.normal(size=(40, 3)) * 0.06
    rot = rng.normal(size=(340, 4))
    os.makedirs(folder, exist_ok=True)
    for t in range(frames):
        means = np.concatenate([wall, blob + [BLOB_START + BLOB_STEP * t, 0, 0]])
        n = len(means)
        scales = np.concatenate([np.full((300, 3), 0.07), np.full((40, 3), 0.05)]) * [1.0, 1.0, 0.5]
        colors = np.concatenate([np.tile([0.2, 0.4, 0.9], (300, 1)), np.tile([1.0, 0.25, 0.1], (40, 1))])
        write_gaussian_ply(os.path.join(folder, name(t)), means, rot, scales, np.full(n, 0.9), colors)
    return folder


def run_blender(tmp_path, spec, name="result"):
    spec_path, out = str(tmp_path / f"{name}_spec.json"), str(tmp_path / f"{name}.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = {**os.environ, "HOME": str(tmp_path / f"home_{name}")}
    proc = subprocess.run(["nice", "-n", "19", sys.executable, SCRIPT, spec_path, out], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def addon_zip(tmp_path_factory):
    return build_addon.build(str(tmp_path_factory.mktemp("dist")))


def red_mask(img):
    img = img.astype(np.float32) / 255
    return (img[..., 0] > 0.35) & (img[..., 0] > img[..., 2] + 0.15)


# -- sequence files (no Blender) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("namer, prefix, digits, first", [
    (lambda t: f"frame_{t:05d}.ply", "frame_", 5, 0),
    (lambda t: f"{t + 1:04d}.ply", "", 4, 1),
    (lambda t: f"splat{t + 8}.ply", "splat", 0, 8),  # unpadded, crossing 9 -> 10
])
def test_find_pattern_reads_the_folder_naming(tmp_path, namer, prefix, digits, first):
    folder = write_moving_sequence(str(tmp_path / "seq"), namer)
    open(os.path.join(folder, "notes.txt"), "w").close()
    pattern = sequence_files.find_pattern(folder)
    assert (pattern.prefix, pattern.digits, pattern.first, pattern.count) == (prefix, digits, first, NUM_FRAMES)
    assert [pattern.filename(t) for t in range(NUM_FRAMES)] == [namer(t) for t in range(NUM_FRAMES)]
    assert sequence_files.check_sequence(pattern) == [340] * NUM_FRAMES


def test_sequence_files_refuse_what_is_not_a_gaussian_sequence(tmp_path):
    folder = write_moving_sequence(str(tmp_path / "gap"))
    os.remove(os.path.join(folder, "frame_00002.ply"))
    with pytest.raises(sequence_files.SequenceError, match="missing"):
        sequence_files.find_pattern(folder)
    points = str(tmp_path / "points.ply")
    write_point_ply(points, np.zeros((3, 3)), np.zeros((3, 3), np.uint8))
    with pytest.raises(sequence_files.SequenceError, match="not a 3D Gaussian Splatting PLY: the vertices lack f_dc_0"):
        sequence_files.check_gaussian_ply(points)
    with open(str(tmp_path / "junk.ply"), "wb") as f:
        f.write(b"\x00junk")
    with pytest.raises(sequence_files.SequenceError, match="not a PLY file"):
        sequence_files.check_gaussian_ply(str(tmp_path / "junk.ply"))
    with pytest.raises(sequence_files.SequenceError, match="does not exist"):
        sequence_files.find_pattern(str(tmp_path / "nowhere"))


def test_stream_frame_maps_fps_offset_and_holds():
    # a 12 fps stream of 4 frames starting at scene frame 3 of a 24 fps scene
    got = [sequence_files.stream_frame(f, 3, 12.0, 24.0, 4) for f in (1, 3, 4, 5, 7, 9, 10, 20)]
    assert got == [0, 0, 0, 1, 2, 3, 3, 3]
    assert sequence_files.stream_frame(30, 1, 30.0, 30.0, 100) == 29  # equal rates: one frame per frame


# -- Blender -----------------------------------------------------------------------------------------------------

PROBE_FRAMES = [1, 3, 4, 5, 7, 9, 10, 20]


def test_timeline_scrub_render_and_farm_bundle(addon_zip, tmp_path):
    """Import a PLY folder, scrub, render two frames in Cycles, save, bundle; the bundle, moved and opened in a
    fresh process with scripts disabled and no add-on, renders the same frames."""
    source = write_moving_sequence(str(tmp_path / "captured"))
    renders = [{"frame": f, "engine": "CYCLES", "path": str(tmp_path / f"cycles_{f}.png")} for f in (3, 7)]
    result = run_blender(tmp_path, {
        "zip": addon_zip, "clear": True, "scene_fps": 24, "camera": CAMERA, "samples": 8,
        "imports": [{"filepath": os.path.join(source, "frame_00000.ply"), "fps": 12.0, "start_frame": 3}],
        "probe": PROBE_FRAMES, "renders": renders,
        "save": str(tmp_path / "work" / "shot.blend"), "bundle": str(tmp_path / "bundle")}, "import")
    assert result["imports"][0]["status"] == ["FINISHED"], result["imports"]
    assert result["imports"][0]["created"]["objects"] == 2 and result["proxies"] == ["captured"]
    assert result["parent_type"] == "EMPTY" and result["collection_objects"] == ["captured", "captured origin"]
    assert result["material_render_method"] == "DITHERED" and result["transparent_bounces"] >= 256
    assert result["handlers"]["frame_change_pre"] == result["handlers"]["frame_change_post"] == 0
    assert result["frame_range"][1] >= 3 + 2 * NUM_FRAMES - 1
    for p in result["probes"]:
        t = sequence_files.stream_frame(p["frame"], 3, 12.0, 24.0, NUM_FRAMES)
        assert p["vertices"] == 4 * 340 and p["faces"] == 340
        assert p["red_centroid"][0] == pytest.approx(BLOB_START + BLOB_STEP * t, abs=0.03), p
        # one frame, slim: what the material reads, nothing the quads were built from
        assert set(p["attributes"]) - {"position", "material_index", "sharp_face"} == {
            "f_dc_0", "f_dc_1", "f_dc_2", "gs_opacity", "gs_st"}, p["attributes"]
    a, b = (read_png(r["path"]) for r in renders)
    moving = red_mask(a) | red_mask(b)
    assert moving.sum() > 24
    red_a, red_b = np.argwhere(red_mask(a))[:, 1].mean(), np.argwhere(red_mask(b))[:, 1].mean()
    assert 9 < red_b - red_a < 19, (red_a, red_b)  # 1 m to the right at 5 m with f = 70 px: 14 px
    grown = moving.copy()
    for axis in (0, 1):
        for shift in (-3, 3):
            grown |= np.roll(moving, shift, axis)
    diff = np.abs(a.astype(float) - b.astype(float)).max(-1) / 255
    assert diff[moving].mean() > 0.2 and diff[~grown].mean() < 0.01  # differs where it moves, same where static
    assert (a[~grown][:, 2] > 60).mean() > 0.2  # and the static wall is there

    assert result["bundle_status"] == ["FINISHED"], result["bundle_error"]
    moved = str(tmp_path / "elsewhere" / "bundle")
    shutil.move(str(tmp_path / "bundle"), moved)
    shutil.move(source, str(tmp_path / "gone"))  # the bundle must carry its own caches
    farm = run_blender(tmp_path, {"open": os.path.join(moved, "shot.blend"), "probe": [3, 7], "samples": 8,
                                  "animation": {"engine": "CYCLES", "frames": [3, 7], "path": str(tmp_path / "farm_")}},
                       "farm")
    assert not farm["addon_enabled"]
    assert [p["red_centroid"][0] for p in farm["probes"]] == pytest.approx([BLOB_START, BLOB_START + 2 * BLOB_STEP], abs=0.03)
    for frame, original in ((3, a), (7, b)):
        farm_png = read_png(str(tmp_path / f"farm_{frame:04d}.png"))
        assert np.abs(farm_png.astype(float) - original.astype(float)).mean() < 1.0


def test_eevee_renders_the_frame_of_the_timeline(addon_zip, tmp_path):
    source = write_moving_sequence(str(tmp_path / "captured"))
    renders = [{"frame": f, "engine": "BLENDER_EEVEE", "path": str(tmp_path / f"eevee_{f}.png")} for f in (1, 3)]
    result = run_blender(tmp_path, {"zip": addon_zip, "clear": True, "camera": CAMERA, "eevee_samples": 16,
                                    "imports": [{"filepath": source, "fps": 24.0, "start_frame": 1, "viewport_density": 0.2}],
                                    "probe": [1], "renders": renders})
    assert result["imports"][0]["status"] == ["FINISHED"]
    assert result["probes"][0]["vertices"] < 4 * 340 * 0.35  # the viewport is thinned, the render below is not
    a, b = (read_png(r["path"]) for r in renders)
    assert red_mask(a).sum() > 12 and red_mask(b).sum() > 12
    shift = np.argwhere(red_mask(b))[:, 1].mean() - np.argwhere(red_mask(a))[:, 1].mean()
    assert 9 < shift < 19, shift
    assert (a[..., 2] > 60).mean() > 0.2  # the whole wall (a fifth of it would cover far less)


def test_bad_inputs_give_one_message_and_build_nothing(addon_zip, tmp_path):
    points = str(tmp_path / "points")
    os.makedirs(points)
    for t in range(2):
        write_point_ply(os.path.join(points, f"frame_{t:05d}.ply"), np.zeros((3, 3)), np.zeros((3, 3), np.uint8))
    source = write_moving_sequence(str(tmp_path / "seq"))
    corrupt = str(tmp_path / "corrupt.gifs")
    with open(corrupt, "wb") as f:
        f.write(b"GIFS" + bytes(200))
    result = run_blender(tmp_path, {
        "zip": addon_zip, "clear": True, "cache_check": True,
        "imports": [{"filepath": points}, {"filepath": str(tmp_path / "missing")}, {"filepath": corrupt},
                    {"filepath": source, "viewport_density": 0.5}],
        "probe": [1], "save": str(tmp_path / "shot.blend")})
    (bad_ply, missing, bad_gifs, good) = result["imports"]
    assert "not a 3D Gaussian Splatting PLY" in bad_ply["error"] and "f_dc_0" in bad_ply["error"]
    assert "does not exist" in missing["error"]
    assert "corrupt.gifs" in bad_gifs["error"] and not os.path.exists(str(tmp_path / "corrupt_cache"))
    for failed in (bad_ply, missing, bad_gifs):
        assert failed["status"] == ["CANCELLED"] and not any(failed["created"].values()), failed
    assert good["status"] == ["FINISHED"] and result["cache_error"] == ""
    assert 4 * 120 < result["probes"][0]["vertices"] < 4 * 220  # the viewport draws about half of the 340

    # the .blend moved away from its cache: one clear message from the panel's check and from the farm bundle
    shutil.move(str(tmp_path / "shot.blend"), str(tmp_path / "moved.blend"))
    os.makedirs(str(tmp_path / "far"))
    shutil.move(str(tmp_path / "moved.blend"), str(tmp_path / "far" / "moved.blend"))
    shutil.move(source, str(tmp_path / "seq_moved"))
    moved = run_blender(tmp_path, {"zip": addon_zip, "open": str(tmp_path / "far" / "moved.blend"), "cache_check": True,
                                   "bundle": str(tmp_path / "bundle")}, "moved")
    assert "does not exist" in moved["cache_error"] and "Relocate" in moved["cache_error"]
    assert moved["bundle_status"] == ["CANCELLED"] and "does not exist" in moved["bundle_error"]
    assert not os.path.exists(str(tmp_path / "bundle"))


@pytest.fixture(scope="module")
def stream(synth_capture, tmp_path_factory):
    """A tiny trained and encoded stream (40 steps): enough frames and Gaussians for decoding, not for quality."""
    root = tmp_path_factory.mktemp("gifs")
    cli = ["nice", "-n", "19", sys.executable, "-m", "gifstream_engine.cli"]
    run, path = str(root / "run"), str(root / "shot.gifs")
    for args in (["train", synth_capture, "--out", run, "--preset", "preview", "--set", "train.steps=40"],
                 ["encode", run, "-o", path]):
        proc = subprocess.run(cli + args, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
    return path


def test_import_gifs_decodes_out_of_process_into_the_cache(addon_zip, stream, tmp_path):
    cache = str(tmp_path / "cache")
    result = run_blender(tmp_path, {"zip": addon_zip, "clear": True,
                                    "imports": [{"filepath": stream, "cache_dir": cache}], "probe": [1, 6]})
    assert result["imports"][0]["status"] == ["FINISHED"], result["imports"][0]["error"]
    pattern = sequence_files.find_pattern(cache)
    assert (pattern.prefix, pattern.digits, pattern.first) == (sequence_files.ENGINE_PREFIX, sequence_files.ENGINE_DIGITS, 0)
    assert not os.path.exists(cache + ".part")
    for p, t in zip(result["probes"], (0, pattern.count - 1)):
        assert p["vertices"] == 4 * len(read_gaussian_ply(pattern.path(t))["means"])


FIDELITY_SCRIPT = os.path.join(os.path.dirname(__file__), "blender_scripts", "proxy_fidelity.py")


def psnr(a, b):
    return float(-10 * np.log10(np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2)))


def test_proxy_renders_as_the_engine_from_a_new_scene(addon_zip, stream, synth_capture, tmp_path):
    """Issue 29: a new scene (AgX, default pixel filters) + capture import + sequence import; the proxy rendered
    from the test camera in Cycles (64 samples) and Eevee (its defaults) scores, against the footage, within 1 dB
    (Cycles) and 2 dB (Eevee) of the engine's own render of the same Gaussians, camera and frame."""
    import torch

    from gifstream_engine.capture import load_capture
    from gifstream_engine.render import render
    from gifstream_engine.sequence import PlySequence

    cache = str(tmp_path / "cache")
    renders = [{"engine": "CYCLES", "samples": 64, "path": str(tmp_path / "cycles.png")},
               {"engine": "BLENDER_EEVEE", "path": str(tmp_path / "eevee.png")}]
    spec = {"zip": addon_zip, "capture": synth_capture, "stream": stream, "cache": cache, "renders": renders}
    spec_path, out = str(tmp_path / "spec.json"), str(tmp_path / "out.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = {**os.environ, "HOME": str(tmp_path / "home"), "GIFSTREAM_ENGINE_PYTHON": sys.executable}
    proc = subprocess.run(["nice", "-n", "19", sys.executable, FIDELITY_SCRIPT, spec_path, out], capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out) as f:
        result = json.load(f)
    assert result["capture_import"][0] == result["sequence_import"][0] == ["FINISHED"], result
    assert (result["view_before"], result["view_after"]) == ("AgX", "Standard")

    capture = load_capture(synth_capture)
    index = [c.name for c in capture.cameras].index(result["camera"])
    camera, footage = capture.cameras[index], capture.frames(index)[0][..., :3]
    with torch.no_grad():  # the engine's rasteriser on the very Gaussians the proxy reads (frame 0 of the cache)
        rgb = render(PlySequence(cache).gaussians(0), camera, background=torch.zeros(3)).rgb.clamp(0, 1).numpy()
    engine = (rgb * 255 + 0.5).astype(np.uint8)
    cycles, eevee = (read_png(r["path"])[..., :3] for r in renders)
    engine_db = psnr(engine, footage)
    scores = {name: (psnr(img, footage), psnr(img, engine)) for name, img in (("cycles", cycles), ("eevee", eevee))}
    assert scores["cycles"][0] >= engine_db - 1.0, (engine_db, scores)
    assert scores["eevee"][0] >= engine_db - 2.0, (engine_db, scores)
    # and the proxy is the engine's picture, not merely as far from the footage
    assert scores["cycles"][1] > 27.0 and scores["eevee"][1] > 27.0, (engine_db, scores)


def test_decode_job_progress_and_cancel(stream, tmp_path):
    from blender_addon.core.decode_job import DecodeJob

    done = DecodeJob(sys.executable, stream, str(tmp_path / "done"), 6)
    done.wait()
    assert done.status == "finished" and done.done == done.total == 6 and "decode finished" in done.status_line()
    assert sequence_files.find_pattern(str(tmp_path / "done")).count == 6 and not os.path.exists(done.part_dir)
    cancelled = DecodeJob(sys.executable, stream, str(tmp_path / "cancelled"), 6)
    cancelled.cancel()  # while the engine still starts up
    assert cancelled.status == "cancelled" and cancelled.engine.returncode is not None
    assert not os.path.exists(str(tmp_path / "cancelled")) and not os.path.exists(str(tmp_path / "cancelled.part"))
    failed = DecodeJob(sys.executable, str(tmp_path / "no.gifs"), str(tmp_path / "failed"), 6)
    failed.wait()
    assert failed.status == "failed" and "no.gifs" in failed.message and not os.path.exists(str(tmp_path / "failed"))
