"""Evaluate a sequence of Gaussians -- a trained run, a decoded bitstream, a PLY folder -- on a capture's test
cameras (see sequence.py). A trained run decodes exactly as the coder will: quantised, with the entropy models'
adaptive steps.
"""

from __future__ import annotations

import time

import torch

from ..capture import Capture
from ..render import render
from ..sequence import Sequence
from .metrics import psnr, ssim
from .motion import CameraMotion, SplitError


@torch.no_grad()
def evaluate(sequence: Sequence, capture: Capture, train_eval_stride: int = 5) -> dict:
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


def motion_summary(result: dict) -> str:
    """One phrase on the moving pixels of an `evaluate` result."""
    if result.get("dynamic_psnr") is None:
        return "no moving pixels in the test footage"
    return (f"moving pixels {result['dynamic_psnr']:.2f} dB (frozen background {result['frozen_psnr']:.2f} dB, "
            f"{result['moving_fraction'] * 100:.0f}% of pixels)")
