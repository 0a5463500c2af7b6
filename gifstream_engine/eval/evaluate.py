"""Evaluate a trained run: PSNR/SSIM on held-out cameras over all frames, model statistics, render speed."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import time

import torch

from ..capture import Capture, load_capture
from ..errors import ConfigError
from ..fileio import write_json
from ..render import render
from ..train.config import RunConfig
from ..train.schedule import final_decode_state
from ..train.trainer import FINAL, model_from_state
from .metrics import psnr, ssim


@dataclasses.dataclass
class TrainedRun:
    folder: str
    cfg: RunConfig
    capture_root: str
    gops: list  # [(frame_offset, GIFStreamModel, train_seconds)]

    def model_for_frame(self, frame: int):
        for offset, model, _ in self.gops:
            if offset <= frame < offset + model.num_frames:
                return model, frame - offset
        raise ConfigError(f"{self.folder}: frame {frame} is outside the trained range")

    @property
    def num_frames(self) -> int:
        return sum(m.num_frames for _, m, _ in self.gops)


def load_run(folder: str) -> TrainedRun:
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise ConfigError(f"{folder} is not a training run: no config.json")
    with open(config_path) as f:
        saved = json.load(f)
    cfg = RunConfig.from_dict(saved["config"])
    gops = []
    for path in sorted(glob.glob(os.path.join(folder, "gop_*", FINAL))):
        state = torch.load(path, map_location="cpu", weights_only=False)
        model = model_from_state(state, cfg).eval()
        gops.append((state["frame_offset"], model, state["elapsed"]))
    if not gops:
        raise ConfigError(f"{folder}: no trained GOP (gop_*/{FINAL}); has training finished?")
    return TrainedRun(folder, cfg, saved["capture"], gops)


@torch.no_grad()
def evaluate(run: TrainedRun, capture: Capture | None = None) -> dict:
    capture = capture or load_capture(run.capture_root, downscale=run.cfg.train.downscale)
    state = final_decode_state(run.cfg.train)
    test = capture.split_indices("test")
    train = capture.split_indices("train")
    frames = min(run.num_frames, capture.num_frames)
    test_psnr, test_ssim, train_psnr = [], [], []
    render_seconds, renders = 0.0, 0
    for t in range(frames):
        model, local_t = run.model_for_frame(t)
        for cams, is_test in ((test, True), (train if t % run.cfg.train.train_eval_stride == 0 else [], False)):
            for c in cams:
                camera = capture.cameras[c]
                start = time.perf_counter()
                out = render(model.decode(local_t, camera, state), camera, background=torch.zeros(3))
                render_seconds += time.perf_counter() - start
                renders += 1
                target = torch.from_numpy(capture.frame(c, t))
                if is_test:
                    test_psnr.append(psnr(out.rgb, target))
                    test_ssim.append(ssim(out.rgb, target).item())
                else:
                    train_psnr.append(psnr(out.rgb, target))
    anchors = sum(m.num_anchors for _, m, _ in run.gops)
    dynamic = sum(int((m.masks(state)["de"] > 0).sum()) for _, m, _ in run.gops)
    mean = lambda xs: float(sum(xs) / len(xs)) if xs else None  # noqa: E731
    return {
        "test_psnr": mean(test_psnr),
        "test_ssim": mean(test_ssim),
        "train_psnr": mean(train_psnr),
        "num_anchors": anchors,
        "dynamic_fraction": dynamic / max(anchors, 1),
        "train_seconds": float(sum(s for _, _, s in run.gops)),
        "frames": frames,
        "gops": len(run.gops),
        "render_fps": renders / max(render_seconds, 1e-9),
        "test_cameras": [capture.cameras[c].name for c in test],
    }


def write_eval(run: TrainedRun, result: dict) -> str:
    path = os.path.join(run.folder, "eval.json")
    write_json(path, result)
    return path
