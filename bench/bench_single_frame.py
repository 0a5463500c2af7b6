"""What a plain per-Gaussian 3DGS fit of ONE frame reaches on a capture: a reference for the trained sequence.

No anchors, no decoders, no stream, no quantisation: free means, scales, rotations, opacities and colours,
initialised on the frame's SfM points plus random points in their bounds, fitted with Adam (L1) on the training
cameras of that frame with the engine's own rasteriser. Prints train and test PSNR (and the test camera's moving
pixels of that frame) as the steps go. A sequence model that shares one representation over all frames, at the
same step budget, is not expected to beat it on the static set.

    python bench/bench_single_frame.py [--capture DIR] [--frame 0] [--steps 1500] [--random 10000]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gifstream_engine.capture import load_capture  # noqa: E402
from gifstream_engine.capture.sfm_init import initial_point_cloud  # noqa: E402
from gifstream_engine.eval.motion import moving_pixels  # noqa: E402
from gifstream_engine.render.api import render  # noqa: E402
from gifstream_engine.render.gaussians import Gaussians, gaussians_from_points  # noqa: E402
from results_io import write_results  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", default=None, help="capture folder (default: render the embedded demo capture)")
    ap.add_argument("--frame", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--random", type=int, default=10_000, help="random points added in the SfM cloud's bounds")
    ap.add_argument("--report-every", type=int, default=250)
    args = ap.parse_args()
    torch.manual_seed(0)
    root = args.capture
    if root is None:
        from gifstream_engine.capture.synth import SynthConfig, render_synthetic_capture

        root = render_synthetic_capture(os.path.join(tempfile.mkdtemp(), "capture"), SynthConfig())
    capture = load_capture(root).slice(args.frame, args.frame + 1)
    cloud = initial_point_cloud(capture)
    lo, hi = np.quantile(cloud.points, 0.02, 0), np.quantile(cloud.points, 0.98, 0)
    rng = np.random.default_rng(0)
    points = np.concatenate([cloud.points, lo + rng.random((args.random, 3)) * (hi - lo)])
    colors = np.concatenate([cloud.colors, np.full((args.random, 3), 128)])
    init = gaussians_from_points(points, colors, opacity=0.1)
    means = init.means.clone().requires_grad_()
    log_scales = torch.log(init.scales.clamp(1e-3, 0.3)).requires_grad_()
    quats = init.quats.clone().requires_grad_()
    opacity_logits = torch.logit(init.opacities).requires_grad_()
    color_logits = torch.logit(init.colors.clamp(0.05, 0.95)).requires_grad_()
    extent = float(np.linalg.norm(hi - lo))
    optimizer = torch.optim.Adam([
        {"params": [means], "lr": 8e-4 * extent}, {"params": [log_scales], "lr": 5e-3}, {"params": [quats], "lr": 1e-3},
        {"params": [opacity_logits], "lr": 5e-2}, {"params": [color_logits], "lr": 1e-2}])

    def gaussians() -> Gaussians:
        return Gaussians(means, quats, torch.exp(log_scales), torch.sigmoid(opacity_logits), torch.sigmoid(color_logits))

    train, test = capture.split_indices("train"), capture.split_indices("test")
    images = {c: torch.as_tensor(capture.frame(c, 0), dtype=torch.float32) for c in train + test}
    full = load_capture(root)
    moving = {c: torch.as_tensor(moving_pixels(full.frames(c))[args.frame]) for c in test}
    black = torch.zeros(3)
    print(f"{len(points)} Gaussians ({len(cloud.points)} SfM points of frame {args.frame}), {len(train)} training cameras")
    rows = []
    print("| step | train PSNR | test PSNR | test moving-pixel PSNR | seconds |")
    print("|---|---|---|---|---|")
    start = time.time()
    for step in range(args.steps):
        c = train[step % len(train)]
        loss = (render(gaussians(), capture.cameras[c], background=black).rgb - images[c]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % args.report_every == 0 or step + 1 == args.steps:
            with torch.no_grad():
                err = {c: ((render(gaussians(), capture.cameras[c], background=black).rgb - images[c]) ** 2).mean(-1)
                       for c in train + test}
            psnr = lambda e: -10 * math.log10(float(e))  # noqa: E731
            train_psnr = np.mean([psnr(err[c].mean()) for c in train])
            test_psnr = np.mean([psnr(err[c].mean()) for c in test])
            moving_psnr = np.mean([psnr(err[c][moving[c]].mean()) for c in test if moving[c].any()] or [float("nan")])
            print(f"| {step + 1} | {train_psnr:.2f} | {test_psnr:.2f} | {moving_psnr:.2f} | {time.time() - start:.0f} |",
                  flush=True)
            rows.append({"step": step + 1, "train_psnr": train_psnr, "test_psnr": test_psnr, "moving_psnr": moving_psnr,
                         "seconds": time.time() - start, "frame": args.frame, "gaussians": len(points),
                         "sfm_points": len(cloud.points), "capture": root})
            write_results("bench_single_frame", rows)  # after every report: a run stopped early keeps its rows


if __name__ == "__main__":
    main()
