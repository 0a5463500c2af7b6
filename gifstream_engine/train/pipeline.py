"""Train, then evaluate: what `gifstream train` and the demo run, with the result written to RUN/eval.json."""

from __future__ import annotations

from typing import Callable

from ..capture import Capture, load_capture
from ..eval.evaluate import evaluate, motion_summary
from ..events import EventWriter
from ..frames import parse_frame_range
from .config import RunConfig
from .run_folder import RunFolder, TrainedRun
from .driver import Training


def run_capture(root: str, cfg: RunConfig) -> Capture:
    """The capture at `root` as a run with `cfg` sees it: at its training downscale, its frames `train.frames`."""
    return load_capture(root, downscale=cfg.train.downscale, frames=parse_frame_range(cfg.train.frames or None))


def evaluate_run(run: TrainedRun, capture: Capture | None = None) -> dict:
    """`evaluate` on the run's own capture (loaded as it trained, `run_capture`, unless given)."""
    capture = capture or run_capture(run.capture_root, run.cfg)
    return evaluate(run, capture, run.cfg.train.train_eval_stride)


def train_and_evaluate(capture: Capture, cfg: RunConfig, out: str, events: EventWriter, log, resume: bool,
                       overwrite: bool = False, progress_bar: bool = False,
                       train: Callable[[], str] | None = None) -> dict | None:
    """Train every GOP into `out`, then evaluate on the test cameras (None when training was cancelled).
    `train` trains the GOPs elsewhere (e.g. on Ray, scale/ray_backend.py) and returns "finished" or "cancelled";
    by default they train in this process, one after the other."""
    if train is None:
        train = lambda: Training(capture, cfg, out, events, log, progress_bar).run(resume=resume, overwrite=overwrite)  # noqa: E731
    return evaluate_and_report(capture, out, log) if train() == "finished" else None


def evaluate_and_report(capture: Capture, out: str, log) -> dict:
    """Evaluate a trained run on the test cameras, write RUN/eval.json and log the summary."""
    log("evaluating on the test cameras")
    folder = RunFolder(out)
    run = folder.load()
    result = evaluate_run(run, capture)
    folder.write_eval(result)
    log(f"test PSNR {result['test_psnr']:.2f} dB, SSIM {result['test_ssim']:.4f}, train PSNR {result['train_psnr']:.2f} dB, "
        f"{motion_summary(result)}, {result['num_anchors']} anchors ({result['dynamic_fraction'] * 100:.1f}% with a feature stream), "
        f"{result['train_seconds']:.0f} s training, render {result['render_fps']:.1f} fps")
    return result
