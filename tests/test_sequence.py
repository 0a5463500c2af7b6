"""The sequence interface on its three implementations, opened by path, and frame ranges (no training: the
golden stream of test_format.py is the source)."""

import os

import numpy as np
import pytest
import torch

from conftest import pinhole
from gifstream_engine.codec.bitstream import DecodedStream
from gifstream_engine.errors import FrameRangeError
from gifstream_engine.frames import check_range, parse_frame_range, resolve
from gifstream_engine.render import render
from gifstream_engine.render.projection import in_view
from gifstream_engine.sequence import PlySequence, write_frames
from gifstream_engine.sources import open_sequence
from gifstream_engine.train.run_folder import RunFolder

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "golden_1_0.gifs")


def test_frame_ranges_are_parsed_and_checked_in_one_place():
    assert parse_frame_range(None) is None
    assert parse_frame_range("2:5") == (2, 5) and parse_frame_range("3:") == (3, None) and parse_frame_range(":4") == (0, 4)
    for bad in ("2", "a:b", "4:2", "-1:3", "2:2"):
        with pytest.raises(FrameRangeError):
            parse_frame_range(bad)
    assert check_range(None, 6, "x's") == (0, 6) and check_range((2, None), 6, "x's") == (2, 6)
    with pytest.raises(FrameRangeError, match=r"seq\.gifs: frames 0:9 are outside the stream's 0:6"):
        resolve("0:9", 6, "the stream's", "seq.gifs")


def test_stream_ply_folder_and_ranges_agree(tmp_path):
    stream, start, stop = open_sequence(GOLDEN, "1:4")
    assert isinstance(stream, DecodedStream) and (start, stop) == (1, 4) and stream.frames == (1, 4)
    with pytest.raises(FrameRangeError, match="outside the stream's 0:5"):
        open_sequence(GOLDEN, "0:6")
    out = str(tmp_path / "plys")
    os.makedirs(out)
    seen = []
    write_frames(stream, out, start, stop, "ply", lambda t, d, w: seen.append(t))
    assert seen == [1, 2, 3] and sorted(os.listdir(out)) == ["frame_00001.ply", "frame_00002.ply", "frame_00003.ply"]
    plys, first, last = open_sequence(out, "1:3")
    assert isinstance(plys, PlySequence) and plys.num_frames == 3 and (first, last) == (1, 3)
    for t in range(3):  # the folder's first file is its frame 0
        a, b = stream.gaussians(t + 1), plys.gaussians(t)
        assert len(a) == len(b) > 0
        for x, y in zip(a.tensors(), b.tensors()):
            torch.testing.assert_close(x, y, atol=2e-5, rtol=1e-4)
    camera = pinhole(32, 24, f=20.0, w2c=np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4.0], [0, 0, 0, 1]]))
    culled, every = plys.gaussians(0, camera), plys.gaussians(0)
    assert 0 < len(culled) <= len(every)
    image = render(culled, camera, background=torch.zeros(3), backend="torch").rgb
    assert image.amax() > 0.1 and torch.allclose(image, render(every, camera, background=torch.zeros(3),
                                                                backend="torch").rgb, atol=1e-6)


def test_culling_ply_frames_keeps_large_gaussians_reaching_in_from_outside(tmp_path):
    """A Gaussian centred beyond the camera's view grown by 15% whose extent reaches into the image is kept, a
    small one far off is not."""
    from gifstream_engine.render.gaussians import Gaussians

    camera = pinhole(64, 48, f=40.0)  # 4 m in front: 1 m is 10 px, the grown view starts at u = -9.6
    outside = Gaussians(torch.tensor([[-4.2, 0.0, 4.0], [-30.0, 0.0, 4.0]]), torch.tensor([[1.0, 0, 0, 0]] * 2),
                        torch.tensor([[1.0] * 3, [0.1] * 3]), torch.tensor([0.9, 0.9]), torch.full((2, 3), 0.8))
    assert not in_view(outside.means, camera).any()
    write_frames(_FixedSequence(outside), str(tmp_path), 0, 1, "ply")
    culled = PlySequence(str(tmp_path)).gaussians(0, camera)
    assert len(culled) == 1 and culled.means[0, 0].item() == pytest.approx(-4.2)
    assert render(culled, camera, background=torch.zeros(3), backend="torch").rgb[:, :3].amax() > 0.2


class _FixedSequence:
    """One frame of given Gaussians, as a `Sequence`."""

    num_frames, fps = 1, None

    def __init__(self, gaussians):
        self._gaussians = gaussians

    def gaussians(self, frame, camera=None):
        return self._gaussians


def test_npz_frames_carry_frame_and_fps(tmp_path):
    stream = DecodedStream(GOLDEN, (0, 2))
    write_frames(stream, str(tmp_path), 0, 2, "npz")
    data = np.load(tmp_path / "frame_00001.npz")
    assert int(data["frame"]) == 1 and float(data["fps"]) == 24.0 and data["means"].shape[1] == 3


def test_run_folder_status(tmp_path):
    assert RunFolder(str(tmp_path)).status() == "empty"
    os.makedirs(tmp_path / "gop_000")
    assert RunFolder(str(tmp_path)).status() == "started"


def test_eval_of_a_ply_folder_needs_a_capture(tmp_path):
    from gifstream_engine.errors import GIFStreamError
    from gifstream_engine.sources import evaluate_source

    write_frames(DecodedStream(GOLDEN), str(tmp_path), 0, 2, "ply")
    with pytest.raises(GIFStreamError, match="a PLY folder needs --capture"):
        evaluate_source(str(tmp_path), None)
