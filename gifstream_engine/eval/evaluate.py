"""Evaluate a sequence of Gaussians -- a trained run or a decoded bitstream -- on a capture's test cameras.

Both kinds implement `GaussianSequence`: frames in the capture's numbering, Gaussians of any frame for a
camera, and their statistics. A trained run decodes exactly as the coder will: quantised, with the entropy
models' adaptive steps.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import time
from typing import Protocol

import torch

from ..capture import Capture, load_capture
from ..capture.types import Camera
from ..codec.entropy_models import EntropyModels
from ..codec.gop_coding import coded_anchor_values
from ..codec.rate import quantised_anchors
from ..errors import ConfigError, RunError
from ..fileio import write_json
from ..model.gifstream import AnchorValues, DecodeState, GIFStreamModel
from ..render import render
from ..render.gaussians import Gaussians
from ..train.config import RunConfig
from ..train.schedule import final_decode_state
from ..train.checkpoint import load_state
from ..train.run_folder import locked, read_saved
from ..train.trainer import FINAL, model_from_state
from .metrics import psnr, ssim
from .motion import CameraMotion, SplitError


class GaussianSequence(Protocol):
    num_frames: int
    fps: float | None

    def gaussians(self, frame: int, camera: Camera | None = None) -> Gaussians: ...

    def statistics(self) -> dict: ...


@dataclasses.dataclass
class SequenceGop:
    """One GOP ready to decode: frame t of it is `model.decode(t, camera, state, values=values)`."""

    frame_offset: int
    model: GIFStreamModel
    state: DecodeState
    values: AnchorValues | None
    train_seconds: float = 0.0

    @property
    def num_frames(self) -> int:
        return self.model.num_frames

    def gaussians(self, local_t: int, camera: Camera | None) -> Gaussians:
        with torch.no_grad():
            return self.model.decode(local_t, camera, self.state, values=self.values)

    def kept_and_dynamic(self) -> tuple[int, int]:
        masks = self.values.masks if self.values is not None and self.values.masks is not None else self.model.masks(self.state)
        kept = masks["p"] > 0.5
        return int(kept.sum()), int(((masks["de"] > 0) & kept).sum())


def gop_for_frame(gops: list[SequenceGop], frame: int, what: str) -> tuple[SequenceGop, int]:
    for gop in gops:
        if gop.frame_offset <= frame < gop.frame_offset + gop.num_frames:
            return gop, frame - gop.frame_offset
    raise ConfigError(f"{what}: frame {frame} is outside its range 0:{sum(g.num_frames for g in gops)}")


@dataclasses.dataclass
class TrainedRun:
    folder: str
    cfg: RunConfig
    capture_root: str
    rig: dict | None  # fps, scene bounds and cameras saved at training time (None for older runs)
    gops: list[SequenceGop]
    entropy: list[EntropyModels | None]

    @property
    def num_frames(self) -> int:
        return sum(g.num_frames for g in self.gops)

    @property
    def fps(self) -> float | None:
        return None if self.rig is None else self.rig["fps"]

    def gaussians(self, frame: int, camera: Camera | None = None) -> Gaussians:
        gop, local_t = gop_for_frame(self.gops, frame, self.folder)
        return gop.gaussians(local_t, camera)

    def statistics(self) -> dict:
        kept, dynamic = map(sum, zip(*(g.kept_and_dynamic() for g in self.gops)))
        return {"num_anchors": kept, "dynamic_fraction": dynamic / max(kept, 1),
                "train_seconds": float(sum(g.train_seconds for g in self.gops)), "gops": len(self.gops)}


def load_run(folder: str) -> TrainedRun:
    """A trained run, read without running code (checkpoint.load_state); damaged files are named."""
    saved = read_saved(folder)
    cfg = RunConfig.from_dict(saved["config"], os.path.join(folder, "config.json"))
    state = final_decode_state(cfg.train)
    gops, entropies = [], []
    for path in sorted(glob.glob(os.path.join(folder, "gop_*", FINAL))):
        saved_gop = load_state(path, "cpu", {"frame_offset": int})
        model = model_from_state(saved_gop, cfg, path).eval()
        entropy, values = None, None
        if "entropy" in saved_gop:
            entropy = EntropyModels(cfg.model.feat_dim, cfg.model.stream_dim, cfg.model.num_offsets)
            try:
                entropy.load_state_dict(saved_gop["entropy"])
            except (RuntimeError, TypeError, AttributeError) as exc:
                raise RunError(f"{path}: entropy models do not match the run's configuration: "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
            with torch.no_grad():
                values, _ = quantised_anchors(model, entropy.eval(), state)
            values = coded_anchor_values(model, entropy, state, values)
        gops.append(SequenceGop(saved_gop["frame_offset"], model, state, values, saved_gop["elapsed"]))
        entropies.append(entropy)
    if not gops:
        raise ConfigError(f"{folder}: no trained GOP (gop_*/{FINAL}); has training finished?")
    return TrainedRun(folder, cfg, saved["capture"], saved.get("rig"), gops, entropies)


@torch.no_grad()
def evaluate(sequence: GaussianSequence, capture: Capture, train_eval_stride: int = 5) -> dict:
    """PSNR/SSIM on the test cameras over every frame, train PSNR every `train_eval_stride` frames, render fps.

    On the test cameras' moving pixels (eval/motion.py): `dynamic_psnr`, `static_psnr`, and `frozen_psnr`, what
    the footage's temporal-median frame scores on the same moving pixels."""
    test = capture.split_indices("test")
    train = capture.split_indices("train")
    frames = min(sequence.num_frames, capture.num_frames)
    motion = {c: CameraMotion.of(capture.frames(c)[:frames]) for c in test}
    split = SplitError()
    test_psnr, test_ssim, train_psnr = [], [], []
    render_seconds, renders = 0.0, 0
    for t in range(frames):
        for cams, is_test in ((test, True), (train if t % train_eval_stride == 0 else [], False)):
            for c in cams:
                camera = capture.cameras[c]
                start = time.perf_counter()
                out = render(sequence.gaussians(t, camera), camera, background=torch.zeros(3))
                render_seconds += time.perf_counter() - start
                renders += 1
                target = torch.from_numpy(capture.frame(c, t))
                if is_test:
                    split.add(out.rgb, target, torch.from_numpy(motion[c].masks[t]))
                    test_psnr.append(psnr(out.rgb, target))
                    test_ssim.append(ssim(out.rgb, target).item())
                else:
                    train_psnr.append(psnr(out.rgb, target))
    mean = lambda xs: float(sum(xs) / len(xs)) if xs else None  # noqa: E731
    return {
        "test_psnr": mean(test_psnr),
        "test_ssim": mean(test_ssim),
        "train_psnr": mean(train_psnr),
        "dynamic_psnr": split.moving_psnr,
        "static_psnr": split.static_psnr,
        "frozen_psnr": SplitError.pooled(m.frozen for m in motion.values()).moving_psnr,
        "moving_fraction": split.moving_count / max(split.moving_count + split.static_count, 1),
        **sequence.statistics(),
        "frames": frames,
        "render_fps": renders / max(render_seconds, 1e-9),
        "test_cameras": [capture.cameras[c].name for c in test],
    }


def evaluate_run(run: TrainedRun, capture: Capture | None = None) -> dict:
    capture = capture or load_capture(run.capture_root, downscale=run.cfg.train.downscale)
    return evaluate(run, capture, run.cfg.train.train_eval_stride)


def write_eval(run: TrainedRun, result: dict) -> str:
    path = os.path.join(run.folder, "eval.json")
    with locked(run.folder, "writing eval.json"):
        write_json(path, result)
    return path
