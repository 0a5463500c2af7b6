"""Evaluate a sequence of Gaussians -- a trained run, a decoded bitstream, a PLY folder -- on a capture's test
cameras (see sequence.py). A trained run decodes exactly as the coder will: quantised, with the entropy models'
adaptive steps.

Evaluation streams: it walks the frames block by block (the sequence's GOPs; `BLOCK_FRAMES` for a sequence without
them) on the device `render.device.run_device` chooses, one GOP's model on the device at a time (`OnDevice`). Each
camera's footage of a block is read once, and each frame is scored from it and dropped, so memory holds one
camera's block of uint8 frames and one frame's floats whatever the number of frames. Moving pixels are measured
against their block's temporal median (the median the trainer's motion weight uses for that GOP).
"""

from __future__ import annotations

import dataclasses
import time

import torch

from ..capture import Capture
from ..capture.types import FrameCache
from ..render import render
from ..render.device import run_device, synchronize
from ..sequence import GopSequence, Sequence
from .metrics import psnr, ssim
from .motion import BlockMotion, SplitError
from .placement import OnDevice

BLOCK_FRAMES = 60  # frames read at a time from a sequence that has no GOPs (a PLY folder)


def frame_blocks(sequence: Sequence, frames: int) -> list[tuple[int, int]]:
    """(start, stop) blocks tiling frames 0..frames-1: the sequence's GOPs where they tile them, else runs of
    `BLOCK_FRAMES`."""
    if isinstance(sequence, GopSequence):
        blocks = [(g.frame_offset, min(g.frame_offset + g.num_frames, frames)) for g in sequence.gops
                  if g.frame_offset < frames]
        if blocks and blocks[0][0] == 0 and blocks[-1][1] == frames and all(
                a[1] == b[0] for a, b in zip(blocks, blocks[1:])):
            return blocks
    return [(s, min(s + BLOCK_FRAMES, frames)) for s in range(0, frames, BLOCK_FRAMES)]


def footage_blocks(capture: Capture, blocks: list[tuple[int, int]]):
    """Each block of `capture` as a capture of its own whose frame cache keeps one camera's block: reading a
    camera's block decodes it once and drops the block read before it."""
    for start, stop in blocks:
        yield start, stop, dataclasses.replace(capture.slice(start, stop), cache=FrameCache(max_bytes=0))


@dataclasses.dataclass
class _Scores:
    test_psnr: list = dataclasses.field(default_factory=list)
    test_ssim: list = dataclasses.field(default_factory=list)
    train_psnr: dict = dataclasses.field(default_factory=dict)  # (t, camera) -> PSNR, averaged in that order
    split: SplitError = dataclasses.field(default_factory=SplitError)
    frozen: list = dataclasses.field(default_factory=list)  # a SplitError per (block, test camera)
    render_seconds: float = 0.0
    renders: int = 0


@torch.no_grad()
def evaluate(sequence: Sequence, capture: Capture, train_eval_stride: int = 5,
             device: torch.device | str | None = None) -> dict:
    """PSNR/SSIM on the test cameras over every frame, train PSNR every `train_eval_stride` frames, render fps;
    on `device` (default: `run_device(sequence)`).

    On the test cameras' moving pixels (eval/motion.py): `dynamic_psnr`, `static_psnr`, and `frozen_psnr`, what
    the footage's temporal-median frame scores on the same moving pixels."""
    device = run_device(sequence) if device is None else torch.device(device)
    test = capture.split_indices("test")
    train = capture.split_indices("train")
    frames = min(sequence.num_frames, capture.num_frames)
    placed = OnDevice(sequence, device)
    background = torch.zeros(3, device=device)
    scores = _Scores()

    def rendered(c: int, t: int):
        camera = capture.cameras[c]
        start = time.perf_counter()
        out = render(placed.gaussians(t, camera), camera, background=background)
        synchronize(device)
        scores.render_seconds += time.perf_counter() - start
        scores.renders += 1
        return out.rgb

    try:
        for start, stop, block in footage_blocks(capture, frame_blocks(sequence, frames)):
            for c in test:
                motion = BlockMotion(block.frames(c), device)
                for t in range(start, stop):
                    target, moving = motion.frame(t - start)
                    rgb = rendered(c, t)
                    scores.split.add(rgb, target, moving)
                    scores.test_psnr.append(psnr(rgb, target))
                    scores.test_ssim.append(ssim(rgb, target).item())
                scores.frozen.append(motion.frozen)
            scored = [t for t in range(start, stop) if t % train_eval_stride == 0]
            for c in train if scored else []:
                footage = block.frames(c)
                for t in scored:
                    target = torch.from_numpy(footage[t - start]).to(device).float() / 255.0
                    scores.train_psnr[(t, c)] = psnr(rendered(c, t), target)
    finally:
        placed.release()
    mean = lambda xs: float(sum(xs) / len(xs)) if xs else None  # noqa: E731
    split = scores.split
    return {
        "test_psnr": mean(scores.test_psnr),
        "test_ssim": mean(scores.test_ssim),
        "train_psnr": mean([scores.train_psnr[k] for k in sorted(scores.train_psnr)]),
        "dynamic_psnr": split.moving_psnr,
        "static_psnr": split.static_psnr,
        "frozen_psnr": SplitError.pooled(scores.frozen).moving_psnr,
        "moving_fraction": split.moving_count / max(split.moving_count + split.static_count, 1),
        **sequence.statistics(),
        "frames": frames,
        "render_fps": scores.renders / max(scores.render_seconds, 1e-9),
        "test_cameras": [capture.cameras[c].name for c in test],
    }


def motion_summary(result: dict) -> str:
    """One phrase on the moving pixels of an `evaluate` result."""
    if result.get("dynamic_psnr") is None:
        return "no moving pixels in the test footage"
    return (f"moving pixels {result['dynamic_psnr']:.2f} dB (frozen background {result['frozen_psnr']:.2f} dB, "
            f"{result['moving_fraction'] * 100:.0f}% of pixels)")
