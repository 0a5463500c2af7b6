"""Rate-distortion of the learned codec on the embedded capture, against lossless x265 on the same planes.

Usage: python bench/bench_codec.py [--capture DIR] [--out DIR] [--rates r0 r1 r2 r3] [--preset preview]
Trains `--preset` + each rate preset into OUT/rd/RATE (reused when eval.json exists), encodes it to
OUT/rd/RATE.gifs, decodes and evaluates the bitstream, and prints one table row per rate point:
size, Mbps at the capture's fps, test PSNR/SSIM from the bitstream and from the trained (quantised) model,
the training rate estimate against the bytes written, x265 (lossless, same symbols) against the learned
coder, and decode speed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

from gifstream_engine.capture import load_capture
from gifstream_engine.codec.bitstream import DecodedStream, encode_run
from gifstream_engine.codec.container import Container
from gifstream_engine.codec.describe import bitrate_mbps
from gifstream_engine.codec.gop_coding import encode_gop
from gifstream_engine.codec.rate import estimated_bits
from gifstream_engine.codec.video_planes import x265_sizes
from gifstream_engine.eval.evaluate import evaluate
from gifstream_engine.train.run_folder import load_run
from results_io import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", default="bench_out/capture")
    parser.add_argument("--out", default="bench_out")
    parser.add_argument("--rates", nargs="+", default=["r0", "r1", "r2", "r3"])
    parser.add_argument("--preset", default="preview")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "gifstream_engine.cli"]
    if not os.path.isfile(os.path.join(args.capture, "poses_bounds.npy")):
        subprocess.run(cli + ["capture", "synth", args.capture], check=True)
    rows = []
    for rate in args.rates:
        run_dir = os.path.join(args.out, "rd", rate)
        if not os.path.isfile(os.path.join(run_dir, "eval.json")):
            subprocess.run(cli + ["train", args.capture, "--out", run_dir, "--preset", args.preset, "--preset", rate,
                                  "--set", "train.log_every=250", "--resume"], check=True)  # continues a half-finished run
        with open(os.path.join(run_dir, "eval.json")) as f:
            trained = json.load(f)
        run = load_run(run_dir)
        path = run_dir + ".gifs"
        info = encode_run(run, path, run.rig)
        capture = load_capture(args.capture, downscale=run.cfg.train.downscale)
        start = time.perf_counter()
        stream = DecodedStream(path)
        fps = stream.decode_fps()
        ev = evaluate(stream, capture)
        sizes = Container(path).sizes()
        est = {"anchors": 0.0, "stream": 0.0}
        x265 = {"time_invariant": 0, "stream": 0}
        for g, (gop, entropy) in enumerate(zip(run.gops, run.entropy)):
            for k, v in estimated_bits(gop.model, entropy, gop.state).items():
                est[k] += v
            symbols: dict = {}
            encode_gop(gop.model, entropy, gop.state, f"gop_{g:03d}", gop.frame_offset, symbols)
            for k, v in x265_sizes(symbols).items():
                x265[k] += v
        learned_anchor = sum(v for k, v in sizes.items() if k.endswith("/anchors"))
        learned_stream = sum(v for k, v in sizes.items() if "/stream/" in k)
        rows.append({
            "rate": rate, "bytes": info["bytes"], "mbps": bitrate_mbps(info["bytes"], stream.num_frames, stream.fps),
            "psnr": ev["test_psnr"], "ssim": ev["test_ssim"], "psnr_model": trained["test_psnr"],
            "anchors": ev["num_anchors"], "dynamic": ev["dynamic_fraction"],
            "est_bytes": (est["anchors"] + est["stream"]) / 8, "written": learned_anchor + learned_stream,
            "learned_ti": learned_anchor, "x265_ti": x265["time_invariant"],
            "learned_stream": learned_stream, "x265_stream": x265["stream"], "decode_fps": fps,
            "eval_seconds": time.perf_counter() - start,
            "budget": {k: sum(v for n, v in sizes.items() if n.split("/")[1] == k) for k in
                       ("decoders", "geometry", "anchors", "stream_grid", "stream")},
        })
    print(f"\n{'rate':<5}{'KB':>8}{'Mbps':>7}{'PSNR':>7}{'SSIM':>7}{'model PSNR':>11}{'dPSNR':>7}{'anchors':>8}{'dyn %':>6}"
          f"{'est/written':>12}{'attr KB':>8}{'x265 KB':>8}{'strm KB':>8}{'x265 KB':>8}{'dec fps':>8}")
    for r in rows:
        print(f"{r['rate']:<5}{r['bytes'] / 1024:>8.1f}{r['mbps']:>7.3f}{r['psnr']:>7.2f}{r['ssim']:>7.3f}{r['psnr_model']:>11.2f}"
              f"{r['psnr'] - r['psnr_model']:>7.3f}{r['anchors']:>8}{r['dynamic'] * 100:>6.1f}"
              f"{r['est_bytes'] / max(r['written'], 1):>12.4f}{r['learned_ti'] / 1024:>8.1f}{r['x265_ti'] / 1024:>8.1f}"
              f"{r['learned_stream'] / 1024:>8.1f}{r['x265_stream'] / 1024:>8.1f}{r['decode_fps']:>8.1f}")
    print("\nbyte budget per part (KB):")
    for r in rows:
        print(f"{r['rate']:<5}" + "  ".join(f"{k} {v / 1024:.1f}" for k, v in r["budget"].items()))
    with open(os.path.join(args.out, "rd", "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    write_results("bench_codec", rows)


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
