"""Where evaluation, `render` and `render-layer` compute: one decision (`render.device.run_device`), and the tensors
they mix on its device. On the CPU: the decision with a faked CUDA, and every consumer routed through it (a spy).
On a GPU: tests/test_gpu_training.py."""

import json
import os
import sys

import numpy as np
import pytest
import torch

from gifstream_engine.codec.entropy_models import EntropyModels
from gifstream_engine.errors import RenderError
from gifstream_engine.model import GIFStreamModel
from gifstream_engine.render import device as device_module
from gifstream_engine.train.checkpoint import save_state
from gifstream_engine.train.config import load_config
from gifstream_engine.train.run_folder import RunFolder


class _Run:
    def __init__(self, device):
        self.cfg = load_config(["preview"], [f"train.device={device}"])


def test_run_device_takes_the_runs_device_where_this_machine_has_it(monkeypatch):
    run_device = device_module.run_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert run_device(_Run("cuda")) == run_device(_Run("auto")) == run_device(None) == torch.device("cuda")
    assert run_device(_Run("cpu")) == torch.device("cpu")  # a CPU-trained run stays on the CPU
    assert run_device(_Run("cpu"), "cuda") == torch.device("cuda") and run_device(_Run("cuda"), "cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run_device(_Run("cuda")) == run_device(None) == run_device(None, "auto") == torch.device("cpu")
    with pytest.raises(RenderError, match="--device cuda, but torch sees no CUDA device"):
        run_device(_Run("cuda"), "cuda")
    with pytest.raises(RenderError, match="unknown device 'tpu'"):
        run_device(None, "tpu")


def fake_run(capture, folder: str, gop_length: int, device: str = "cuda") -> str:
    """A run folder whose GOPs are untrained models (random anchors in the capture's bounds), as if trained on
    `device`: what evaluation reads, without training."""
    cfg = load_config(["preview"], [f"train.gop_length={gop_length}", f"train.device={device}"])
    torch.manual_seed(0)  # the decoders' and entropy models' initial weights
    run = RunFolder(folder)
    os.makedirs(folder, exist_ok=True)
    run.write_config(cfg, capture.root, capture.num_frames, capture.rig())
    rng = np.random.default_rng(0)
    low, high = capture.scene_bounds
    for g, gop in enumerate(capture.gops(gop_length)):
        voxel = cfg.model.voxel_size  # anchors sit at voxel centres (what the coder codes losslessly)
        xyz = np.unique((np.floor(rng.uniform(low, high, (300, 3)) / voxel) + 0.5) * voxel, axis=0)
        model = GIFStreamModel(xyz, None, gop.num_frames, cfg.model)
        entropy = EntropyModels(cfg.model.feat_dim, cfg.model.stream_dim, cfg.model.num_offsets)
        os.makedirs(run.gop_dir(g), exist_ok=True)
        save_state({"step": 10, "elapsed": 1.0, "config": cfg.to_dict(), "num_frames": gop.num_frames,
                    "model": model.state_dict(), "entropy": entropy.state_dict(), "frame_offset": gop.frame_offset},
                   run.final(g))
    return folder


@pytest.fixture
def device_spy(monkeypatch):
    """`run_device` replaced, in every module that imported it, by a spy that records who asked and answers "cpu";
    `render` wrapped to record the devices of what it is given."""
    from gifstream_engine import render as render_package
    from gifstream_engine.render import api

    asked, rendered = [], []
    original = device_module.run_device

    def spy(sequence=None, requested=None):
        asked.append((type(sequence).__name__, requested))
        return torch.device("cpu")

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("gifstream_engine") and getattr(module, "run_device", None) is original:
            monkeypatch.setattr(module, "run_device", spy)
    real_render = api.render

    def render(gaussians, camera, background=None, **kwargs):
        rendered.append((gaussians.device, None if background is None else background.device))
        return real_render(gaussians, camera, background, **kwargs)

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("gifstream_engine") and getattr(module, "render", None) is real_render:
            monkeypatch.setattr(module, "render", render)
    monkeypatch.setattr(render_package, "render", render)
    return asked, rendered


def test_evaluation_render_and_layer_ask_run_device_once(synth_loaded, tmp_path, device_spy, capsys):
    from gifstream_engine.cli import main
    from gifstream_engine.eval.evaluate import evaluate

    asked, rendered = device_spy
    run_dir = fake_run(synth_loaded, str(tmp_path / "run"), gop_length=4)
    run = RunFolder(run_dir).load()
    result = evaluate(run, synth_loaded)
    assert asked == [("TrainedRun", None)] and result["frames"] == 6 and result["gops"] == 2
    assert rendered and all(g == b == torch.device("cpu") for g, b in rendered)
    asked.clear()
    assert main(["render", run_dir, "--frames", "0:2", "--out", str(tmp_path / "frames")]) == 0
    assert asked == [("TrainedRun", None)]
    asked.clear()
    camera = synth_loaded.cameras[0]
    cameras = {"format": "gifstream-layer-cameras", "version": 1, "scene_fps": 30, "stream_fps": 30, "start_frame": 1,
               "frames": [{"frame": 1, "width": camera.width, "height": camera.height, "K": camera.K.tolist(),
                           "w2c": camera.w2c.tolist()}]}
    with open(tmp_path / "cams.json", "w") as f:
        json.dump(cameras, f)
    assert main(["render-layer", run_dir, "--cameras", str(tmp_path / "cams.json"), "--out", str(tmp_path / "layer"),
                 "--device", "cpu"]) == 0, capsys.readouterr().err
    assert asked == [("TrainedRun", "cpu")]


def test_evaluation_walks_gop_by_gop_with_one_gop_on_the_device(synth_loaded, tmp_path, monkeypatch):
    """Each camera's footage of a GOP is read once (not once per frame scored), and the GOP models are moved to the
    device one at a time (and back)."""
    from gifstream_engine.capture.types import Capture
    from gifstream_engine.eval import evaluate as evaluate_module
    from gifstream_engine.eval import placement

    run = RunFolder(fake_run(synth_loaded, str(tmp_path / "run"), gop_length=4)).load()
    reads, moves = [], []
    real_frames, real_move = Capture.frames, placement._gop_to
    monkeypatch.setattr(Capture, "frames", lambda self, c: reads.append((self.frame_offset, c)) or real_frames(self, c))
    monkeypatch.setattr(placement, "_gop_to", lambda gop, device: moves.append((gop.frame_offset, str(device))))
    monkeypatch.setattr(placement.OnDevice, "gaussians", _gaussians_recording_hold(placement))
    evaluate_module.evaluate(run, synth_loaded, train_eval_stride=2, device="cpu")
    test = synth_loaded.split_indices("test")
    train = synth_loaded.split_indices("train")
    assert sorted(reads) == sorted([(start, c) for start in (0, 4) for c in test + train])  # once per GOP and camera
    assert moves == [(0, "cpu"), (0, "cpu"), (4, "cpu"), (4, "cpu")]  # GOP 0 on, off; then GOP 1 on, off


def _gaussians_recording_hold(placement):
    """OnDevice.gaussians holding the frame's GOP whatever the device (on the CPU it skips that)."""
    def gaussians(self, frame, camera=None):
        self._hold(self.sequence.gop_for_frame(frame)[0])
        return self.sequence.gaussians(frame, camera)

    return gaussians


def test_a_gpu_trained_runs_bitstream_is_the_same_bytes(synth_loaded, tmp_path):
    """The device is placement, not part of the bitstream: a run trained on CUDA (its config says so) encodes, on a
    CPU-only machine, to the bytes the same run trained on the CPU does, and so decodes to the same frames (the
    decoder runs on the CPU only). On a GPU, tests/test_gpu_training.py encodes with the models on CUDA too."""
    from gifstream_engine.codec.bitstream import encode_run

    streams = []
    for device in ("cuda", "cpu"):
        run = RunFolder(fake_run(synth_loaded, str(tmp_path / device), gop_length=6, device=device)).load()
        path = str(tmp_path / f"{device}.gifs")
        encode_run(run, path, run.rig)
        streams.append(path)
    with open(streams[0], "rb") as a, open(streams[1], "rb") as b:
        assert a.read() == b.read()
