"""Train the preview preset on the embedded capture with and without the feature stream; print a table.

Besides whole-image PSNR it reports the test camera's moving pixels (`dynamic_psnr`) next to what the footage's
frozen temporal-median frame scores there (`frozen_psnr`), and the static pixels (`static_psnr`).

Usage: python bench/bench_train.py [--capture DIR] [--out DIR] [--preset preview] [--set train.steps=1500 ...]
Runs whose eval.json already exists under OUT are reused. The capture is rendered first if missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from results_io import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", default="bench_out/capture")
    parser.add_argument("--out", default="bench_out")
    parser.add_argument("--preset", default="preview")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    cli = [sys.executable, "-m", "gifstream_engine.cli"]
    if not os.path.isfile(os.path.join(args.capture, "poses_bounds.npy")):
        subprocess.run(cli + ["capture", "synth", args.capture], check=True)
    rows = []
    for name, extra in (("feature stream", []), ("no stream (ablation)", ["--no-stream"])):
        run = os.path.join(args.out, "stream" if not extra else "no_stream")
        if not os.path.isfile(os.path.join(run, "eval.json")):
            sets = [x for s in args.set for x in ("--set", s)]
            subprocess.run(cli + ["train", args.capture, "--out", run, "--preset", args.preset, *sets, *extra, "--resume"], check=True)
        with open(os.path.join(run, "eval.json")) as f:
            rows.append((name, json.load(f)))
    print(f"\n{'variant':<22}{'test PSNR':>10}{'moving':>8}{'frozen':>8}{'static':>8}{'test SSIM':>10}{'train PSNR':>11}"
          f"{'anchors':>9}{'stream %':>9}{'train s':>9}{'render fps':>11}")
    for name, ev in rows:
        print(f"{name:<22}{ev['test_psnr']:>10.2f}{ev['dynamic_psnr']:>8.2f}{ev['frozen_psnr']:>8.2f}{ev['static_psnr']:>8.2f}"
              f"{ev['test_ssim']:>10.4f}{ev['train_psnr']:>11.2f}{ev['num_anchors']:>9}"
              f"{ev['dynamic_fraction'] * 100:>9.1f}{ev['train_seconds']:>9.0f}{ev['render_fps']:>11.1f}")
    write_results("bench_train", [{"variant": name, **ev} for name, ev in rows])


if __name__ == "__main__":
    main()
