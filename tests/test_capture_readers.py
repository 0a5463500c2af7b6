import json
import os
import shutil

import numpy as np
import pytest

from builders import write_colmap_text, write_nerfstudio, write_panoptic
from gifstream_engine.capture import detect_format, load_capture
from gifstream_engine.capture.llff import llff_to_w2c, w2c_to_llff
from gifstream_engine.capture.synth import synth_rig
from gifstream_engine.errors import CaptureError
from conftest import TINY


def assert_same_rig(a, b, atol=1e-6):
    assert [c.name for c in a.cameras] == [c.name for c in b.cameras]
    for ca, cb in zip(a.cameras, b.cameras):
        assert (ca.width, ca.height, ca.split) == (cb.width, cb.height, cb.split)
        np.testing.assert_allclose(ca.K, cb.K, atol=atol)
        np.testing.assert_allclose(ca.w2c, cb.w2c, atol=atol)
    assert a.num_frames == b.num_frames


def test_llff_reader_recovers_the_rendered_rig(synth_loaded):
    cap = synth_loaded
    assert cap.format == "n3dv" and cap.num_frames == TINY.num_frames and cap.fps == TINY.fps
    assert [c.split for c in cap.cameras] == ["test"] + ["train"] * (TINY.num_cameras - 1)
    for cam, spec in zip(cap.cameras, synth_rig(TINY)):
        np.testing.assert_allclose(cam.c2w, spec["c2w"], atol=1e-9)
        assert cam.K[0, 0] == pytest.approx(spec["focal_px"])
        assert (cam.width, cam.height) == (TINY.width, TINY.height)
    frame = cap.frame(1, 3)
    assert frame.shape == (TINY.height, TINY.width, 3) and frame.dtype == np.float32
    assert 0.05 < frame.mean() < 0.95


def test_llff_pose_conversion_round_trips():
    rng = np.random.default_rng(0)
    from scipy.spatial.transform import Rotation

    w2c = np.eye(4)
    w2c[:3, :3] = Rotation.random(random_state=1).as_matrix()
    w2c[:3, 3] = rng.normal(size=3)
    row = w2c_to_llff(w2c, 480, 640, 500.0, 0.5, 9.0)
    back, (h, w, f) = llff_to_w2c(row)
    np.testing.assert_allclose(back, w2c, atol=1e-12)
    assert (h, w, f) == (480, 640, 500.0)
    # LLFF's first rotation column points down the image (OpenCV +y), the third backwards (-z)
    c2w_llff = row[:15].reshape(3, 5)
    np.testing.assert_allclose(c2w_llff[:, 0], np.linalg.inv(w2c)[:3, 1], atol=1e-12)
    np.testing.assert_allclose(c2w_llff[:, 2], -np.linalg.inv(w2c)[:3, 2], atol=1e-12)


def test_panoptic_reader(synth_loaded, tmp_path):
    root = str(tmp_path / "panoptic")
    write_panoptic(synth_loaded, root)
    cap = load_capture(root)
    assert cap.format == "panoptic" and cap.fps == 30.0 and detect_format(root) == "panoptic"
    assert cap.points.shape == (200, 3)
    assert [c.split for c in cap.cameras] == ["train"] * (TINY.num_cameras - 1) + ["test"]
    by_name = {c.name: c for c in cap.cameras}
    np.testing.assert_allclose(by_name["cam00"].w2c, synth_loaded.cameras[0].w2c)
    np.testing.assert_array_equal(cap.frames(cap.camera_index("cam02")), synth_loaded.frames(2))


def test_colmap_reader(synth_loaded, tmp_path):
    root = str(tmp_path / "colmap")
    write_colmap_text(synth_loaded, root)
    cap = load_capture(root)
    assert cap.format == "colmap"
    assert_same_rig(cap, synth_loaded, atol=1e-6)
    np.testing.assert_array_equal(cap.frames(3), synth_loaded.frames(3))
    assert cap.points is None


def test_nerfstudio_reader(synth_loaded, tmp_path):
    root = str(tmp_path / "ns")
    write_nerfstudio(synth_loaded, root)
    cap = load_capture(root)
    assert cap.format == "nerfstudio"
    assert_same_rig(cap, synth_loaded, atol=1e-6)
    np.testing.assert_array_equal(cap.frames(1), synth_loaded.frames(1))


def test_nerfstudio_groups_views_by_pose_without_camera_field(synth_loaded, tmp_path):
    root = str(tmp_path / "ns")
    write_nerfstudio(synth_loaded, root, with_camera_field=False)
    cap = load_capture(root)
    assert len(cap.cameras) == TINY.num_cameras and cap.num_frames == TINY.num_frames


def test_monocular_dnerf_is_rejected_clearly(synth_loaded, tmp_path):
    root = str(tmp_path / "dnerf")
    write_nerfstudio(synth_loaded, root, with_camera_field=False)
    path = os.path.join(root, "transforms.json")
    meta = json.load(open(path))
    meta["frames"] = [f for i, f in enumerate(meta["frames"]) if i % TINY.num_frames == i // TINY.num_frames]
    json.dump(meta, open(path, "w"))
    with pytest.raises(CaptureError, match="monocular"):
        load_capture(root)


def test_downscale_and_frame_range(synth_capture):
    cap = load_capture(synth_capture, downscale=2, frames=(2, 5))
    cam = cap.cameras[0]
    assert (cam.width, cam.height, cap.num_frames) == (TINY.width // 2, TINY.height // 2, 3)
    full = load_capture(synth_capture)
    assert cam.K[0, 0] == pytest.approx(full.cameras[0].K[0, 0] / 2)
    assert cap.frames(0).shape == (3, TINY.height // 2, TINY.width // 2, 3)
    np.testing.assert_array_equal(load_capture(synth_capture, frames=(2, 5)).frames(1), full.frames(1)[2:5])


def test_gops_cover_the_sequence(synth_loaded):
    gops = synth_loaded.gops(4)
    assert [(g.frame_offset, g.num_frames) for g in gops] == [(0, 4), (4, 2)]
    np.testing.assert_array_equal(gops[1].frames(0), synth_loaded.frames(0)[4:6])


# --- errors --------------------------------------------------------------------------------

def test_missing_video_is_named(synth_copy):
    os.remove(os.path.join(synth_copy, "cam02.mp4"))
    with pytest.raises(CaptureError, match=rf"poses_bounds.npy.*{TINY.num_cameras} camera poses.*{TINY.num_cameras - 1} camXX.mp4"):
        load_capture(synth_copy)


def test_camera_count_mismatch(synth_copy):
    poses = np.load(os.path.join(synth_copy, "poses_bounds.npy"))
    np.save(os.path.join(synth_copy, "poses_bounds.npy"), poses[:3])
    with pytest.raises(CaptureError, match=f"holds 3 camera poses but .* has {TINY.num_cameras}"):
        load_capture(synth_copy)


def test_unreadable_poses(synth_copy):
    with open(os.path.join(synth_copy, "poses_bounds.npy"), "wb") as f:
        f.write(b"not a numpy file")
    with pytest.raises(CaptureError, match="unreadable poses .*poses_bounds.npy"):
        load_capture(synth_copy)


def test_poses_of_wrong_shape(synth_copy):
    np.save(os.path.join(synth_copy, "poses_bounds.npy"), np.zeros((TINY.num_cameras, 15)))
    with pytest.raises(CaptureError, match=r"expected an \(N, 17\) array"):
        load_capture(synth_copy)


def test_unequal_frame_counts(synth_copy, synth_loaded):
    from gifstream_engine.capture.video import write_video

    write_video(os.path.join(synth_copy, "cam03.mp4"), synth_loaded.frames(3)[:4], 30.0)
    with pytest.raises(CaptureError, match=r"unequal frame counts.*cam03 \(4 frames\)"):
        load_capture(synth_copy)


def test_corrupt_video(synth_copy):
    with open(os.path.join(synth_copy, "cam01.mp4"), "wb") as f:
        f.write(b"\x00" * 100)
    with pytest.raises(CaptureError, match="cam01.mp4"):
        load_capture(synth_copy)


def test_unknown_layout(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(CaptureError, match="unknown capture layout; expected one of poses_bounds.npy"):
        load_capture(str(tmp_path))


def test_missing_folder(tmp_path):
    with pytest.raises(CaptureError, match="does not exist"):
        load_capture(str(tmp_path / "nope"))


def test_frame_range_outside(synth_capture):
    from gifstream_engine.errors import FrameRangeError

    with pytest.raises(FrameRangeError, match="frames 2:99 are outside the capture's 0:6"):
        load_capture(synth_capture, frames=(2, 99))


def test_panoptic_missing_keys(synth_loaded, tmp_path):
    root = str(tmp_path / "panoptic")
    write_panoptic(synth_loaded, root)
    meta = json.load(open(os.path.join(root, "train_meta.json")))
    del meta["w2c"]
    json.dump(meta, open(os.path.join(root, "train_meta.json"), "w"))
    with pytest.raises(CaptureError, match=r"train_meta.json: missing keys \['w2c'\]"):
        load_capture(root)


def test_panoptic_missing_image(synth_loaded, tmp_path):
    root = str(tmp_path / "panoptic")
    write_panoptic(synth_loaded, root)
    shutil.rmtree(os.path.join(root, "ims", "1"))
    with pytest.raises(CaptureError, match=r"missing image .*ims/1/000000.png"):
        load_capture(root)


def test_colmap_missing_footage(synth_loaded, tmp_path):
    root = str(tmp_path / "colmap")
    write_colmap_text(synth_loaded, root)
    shutil.rmtree(os.path.join(root, "images", "cam01"))
    with pytest.raises(CaptureError, match="no footage for camera 'cam01'; expected videos/cam01.mp4"):
        load_capture(root)


def test_synthetic_motions_match_the_scene_script():
    """The engine validates --motion against MOTIONS; the Blender-side script animates its own MOTIONS dict."""
    import ast

    from gifstream_engine.capture.synth import MOTIONS, SCENE_SCRIPT, SynthConfig
    from gifstream_engine.errors import CaptureError

    tree = ast.parse(open(SCENE_SCRIPT).read())
    assigned = [node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "MOTIONS" for t in node.targets)]
    assert len(assigned) == 1
    assert tuple(key.value for key in assigned[0].keys) == MOTIONS
    with pytest.raises(CaptureError, match="unknown synthetic motion 'wobble'"):
        SynthConfig(motion="wobble").validate()


def test_synthetic_footage_is_denoised_towards_a_converged_render(tmp_path):
    """Raw path-tracing noise differs in every camera and no 3D model can reproduce it in a held-out view: the
    default capture is denoised, which brings it closer to a many-sample render of the same scene."""
    from gifstream_engine.capture.synth import SynthConfig, render_synthetic_capture

    small = dict(num_cameras=2, num_frames=1, width=64, height=48)

    def first_frames(name, **cfg):
        capture = load_capture(render_synthetic_capture(str(tmp_path / name), SynthConfig(**small, **cfg), log=lambda *_: None))
        return np.stack([capture.frame(c, 0) for c in range(2)]).astype(np.float64)

    converged = first_frames("converged", samples=256, denoise=False)
    raw, denoised = first_frames("raw", samples=8, denoise=False), first_frames("denoised", samples=8)
    psnr = lambda x: -10 * np.log10(((x - converged) ** 2).mean())  # noqa: E731
    assert psnr(denoised) > psnr(raw) + 1.0
    assert json.load(open(tmp_path / "denoised" / "synth.json"))["denoise"] is True


@pytest.mark.parametrize("codec", ["libx264", "ffv1"])
def test_a_block_of_frames_is_decoded_from_its_keyframe_as_from_the_start(tmp_path, codec):
    """`VideoSource.read` seeks to the keyframe before a block and places frames by timestamp: the same frames,
    value for value, as decoding from the first frame (x264 with B-frames and a keyframe every 5 frames; ffv1)."""
    from fractions import Fraction

    import av

    from gifstream_engine.capture.video import VideoSource

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (23, 32, 48, 3), dtype=np.uint8)
    frames[:, :8, :8] = np.arange(23, dtype=np.uint8)[:, None, None, None] * 10  # each frame's index in a corner
    path = str(tmp_path / ("video.mp4" if codec == "libx264" else "video.mkv"))
    with av.open(path, mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(25))
        stream.width, stream.height = 48, 32
        stream.pix_fmt = "yuv444p"
        if codec == "libx264":
            stream.options = {"g": "5", "bf": "2", "crf": "20"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    source = VideoSource(path)
    with av.open(path) as container:
        every = VideoSource._read_sequential(container, 0, 23, 48, 32)
    for start, stop in ((0, 23), (1, 4), (5, 10), (7, 8), (12, 23), (22, 23)):
        with av.open(path) as container:
            assert source._read_seeking(container, start, stop, 48, 32) is not None  # the seek was taken
        block = source.read(start, stop, 48, 32)
        assert block.shape == (stop - start, 32, 48, 3)
        assert np.array_equal(block, np.stack(every[start:stop])), (start, stop)
