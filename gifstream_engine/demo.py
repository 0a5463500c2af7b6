"""`gifstream demo`: the embedded synthetic capture end to end -- render it, load it, seed points, render them,
train the preview preset, encode, decode and evaluate -- reporting each stage through `log`."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import torch

from .capture import load_capture, rig_table
from .capture.sfm_init import initial_point_cloud
from .capture.synth import SynthConfig, render_synthetic_capture
from .codec.bitstream import DecodedStream, encode_run
from .codec.describe import bitrate_mbps
from .eval.evaluate import evaluate
from .eval.strip import motion_strip, strip_frames
from .events import EventWriter
from .imageio import write_png
from .plyio import write_point_ply
from .render import gaussians_from_points, render
from .train.config import load_config
from .train.pipeline import train_and_evaluate
from .train.run_folder import RunFolder


def run_demo(out: str, synth: SynthConfig, python: str | None = None, train: bool = True, steps: int | None = None,
             log=print, progress_bar: bool = False) -> None:
    capture_dir = os.path.join(out, "capture")
    if not os.path.isfile(os.path.join(capture_dir, "poses_bounds.npy")):
        start = time.time()
        render_synthetic_capture(capture_dir, synth, python=python)
        log(f"[1/6] rendered the synthetic capture in {time.time() - start:.1f} s -> {capture_dir}")
    else:
        log(f"[1/6] reusing the synthetic capture in {capture_dir}")
    capture = load_capture(capture_dir)
    log("[2/6] loaded the capture\n" + rig_table(capture.info()))
    start = time.time()
    cloud = initial_point_cloud(capture)
    write_point_ply(os.path.join(out, "init_points.ply"), cloud.points, cloud.colors)
    log(f"[3/6] initial point cloud: {len(cloud.points)} points from {cloud.source} in {time.time() - start:.1f} s {cloud.stats}")
    test = capture.split_indices("test")[0]
    camera = capture.cameras[test]
    gaussians = gaussians_from_points(cloud.points, cloud.colors)
    start = time.time()
    with torch.no_grad():
        rendered = render(gaussians, camera, background=torch.zeros(3))
    seconds = time.time() - start
    side_by_side = np.concatenate([capture.frame(test, 0), rendered.rgb.numpy()], axis=1)
    path = os.path.join(out, f"init_points_{camera.name}.png")
    write_png(path, side_by_side)
    log(f"[4/6] rendered {len(gaussians)} Gaussians from test camera {camera.name} with the "
        f"{rendered.meta.backend} backend in {seconds * 1000:.0f} ms: footage | points -> {path}")
    with open(os.path.join(out, "rig.json"), "w") as f:
        json.dump(capture.info(), f, indent=1)
    if not train:
        return
    run_dir = os.path.join(out, "run")
    cfg = load_config(["preview"], [f"train.steps={steps}"] if steps else [])
    log(f"[5/6] training the preview preset ({cfg.train.steps} steps) -> {run_dir}")
    if train_and_evaluate(capture, cfg, run_dir, EventWriter(enabled=False), log, resume=True,
                          progress_bar=progress_bar) is None:
        return
    run = RunFolder(run_dir).load()
    strip_path = os.path.join(out, "motion_strip.png")
    write_png(strip_path, motion_strip(run, capture, test, strip_frames(run.num_frames)))
    log(f"      footage | render | error x4 of {camera.name} at frames {strip_frames(run.num_frames)} -> {strip_path}")
    stream_path = os.path.join(out, "run.gifs")
    encoded = encode_run(run, stream_path, run.rig)
    stream = DecodedStream(stream_path)
    result = evaluate(stream, capture)
    mbps = bitrate_mbps(encoded["bytes"], stream.num_frames, stream.fps)
    log(f"[6/6] encoded {encoded['bytes'] / 1024:.1f} KB ({mbps:.3f} Mbps) -> {stream_path}; decoded from the "
        f"bitstream: test PSNR {result['test_psnr']:.2f} dB, SSIM {result['test_ssim']:.4f}, "
        f"{stream.decode_fps():.0f} frames/s decode")
