"""Part of a capture trains with `--frames`, and a GOP too large for the machine's memory is refused before any
frame is decoded, with one message naming the sizes and the ways out."""

import json
import os

import pytest

from gifstream_engine.capture import load_capture
from gifstream_engine.errors import ConfigError
from gifstream_engine.train import gop_data
from gifstream_engine.train.gop_data import GB, GopMemory, check_gop_fits

FAST = ["--set", "train.log_every=10", "--set", "train.checkpoint_every=10", "--set", "train.densify_every=10",
        "--set", "train.max_anchors=500"]


def test_train_frames_trains_part_of_the_capture(synth_capture, tmp_path, capsys):
    from gifstream_engine.cli import main
    from gifstream_engine.train.run_folder import load_run

    run = str(tmp_path / "run")
    assert main(["train", synth_capture, "--out", run, "--steps", "20", "--frames", "2:6", "--set",
                 "train.gop_length=2", "--threads", "1", *FAST]) == 0
    saved = json.load(open(os.path.join(run, "config.json")))
    assert saved["config"]["train"]["frames"] == "2:6" and saved["num_frames"] == 4
    trained = load_run(run)
    assert [(g.frame_offset, g.num_frames) for g in trained.gops] == [(0, 2), (2, 2)]  # frames of the run, from 0
    assert json.load(open(os.path.join(run, "eval.json")))["frames"] == 4  # evaluated against frames 2:6
    capsys.readouterr()
    assert main(["eval", run, "--json"]) == 0  # the run's own capture, sliced as it trained
    assert json.loads(capsys.readouterr().out)["frames"] == 4
    assert main(["train", synth_capture, "--out", str(tmp_path / "bad"), "--steps", "20", "--frames", "4:99"]) != 0
    assert "outside the capture's 0:6" in capsys.readouterr().err


def test_gop_memory_counts_every_camera_once(synth_loaded):
    gop = synth_loaded.slice(0, 4)
    need = GopMemory.of(gop)
    frame_bytes = sum(4 * c.width * c.height * 3 for c in gop.cameras)
    assert need.frames == frame_bytes and need.largest_block == max(4 * c.width * c.height * 3 for c in gop.cameras)
    assert need.total == frame_bytes + frame_bytes // 24 + 2 * need.largest_block + need.working
    assert check_gop_fits(synth_loaded, 4, available=need.total) == need  # exactly enough
    with pytest.raises(ConfigError) as info:
        check_gop_fits(synth_loaded, 4, available=need.total - 1)
    message = str(info.value)
    for part in ("4 frames of 6 cameras at 96x72", "GB available", "--frames START:STOP", "train.gop_length",
                 "train.downscale=2", "fewer cameras"):
        assert part in message, message


def test_training_too_large_for_memory_is_refused_before_decoding(synth_capture, tmp_path, monkeypatch, capsys):
    from gifstream_engine.capture.video import VideoSource
    from gifstream_engine.cli import main

    reads = []
    monkeypatch.setattr(VideoSource, "read", lambda self, *a: reads.append(a))
    monkeypatch.setattr(gop_data, "available_memory", lambda: GB)  # a machine with 1 GB free
    assert main(["train", synth_capture, "--out", str(tmp_path / "run"), "--steps", "20"]) != 0
    err = capsys.readouterr().err
    assert "needs about 2.0 GB of memory" in err and "1.0 GB available" in err and reads == []
