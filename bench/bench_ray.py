"""Wall time of a 4-GOP tiny capture trained serially vs on Ray (`--workers ray`) on this machine, and the per-GOP
overhead Ray adds; prints a table.

Serial runs in this process with torch's default thread count (what `gifstream train` does) and, for reference, with
one thread (what each Ray task gets). The Ray run starts a local cluster as `--workers ray` does and includes that
start-up in its wall time. Per GOP task: training seconds, set-up inside the task (config, the GOP's frames), the wait
from submission to start (queueing for a CPU included), the start latency (from when it could start -- submitted and
a CPU free -- to its start: Ray's scheduling and worker start) and the return (its end to the driver having the result).

Usage: python bench/bench_ray.py [--out bench_out/ray] [--steps 150] [--frames 8] [--gop-length 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gifstream_engine.capture import load_capture  # noqa: E402
from gifstream_engine.capture.synth import SynthConfig, render_synthetic_capture  # noqa: E402
from gifstream_engine.train.config import load_config  # noqa: E402
from results_io import write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_out/ray")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--gop-length", type=int, default=2)
    args = parser.parse_args()
    import torch

    from gifstream_engine.scale.ray_backend import ParallelOptions, report_table, start_latencies, train_parallel
    from gifstream_engine.train.driver import Training

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    capture_dir = os.path.join(args.out, "capture")
    if not os.path.isfile(os.path.join(capture_dir, "poses_bounds.npy")):
        render_synthetic_capture(capture_dir, SynthConfig(num_cameras=6, num_frames=args.frames, width=96, height=72,
                                                          samples=8), log=lambda *_: None)
    capture = load_capture(capture_dir)
    cfg = load_config(["preview"], [f"train.steps={args.steps}", f"train.gop_length={args.gop_length}",
                                    "train.max_anchors=2000"])
    gops = len(capture.gops(cfg.train.gop_length))
    quiet = lambda *_: None  # noqa: E731
    rows = []
    default_threads = torch.get_num_threads()
    for threads in (default_threads, 1):
        run = os.path.join(args.out, f"serial_{threads}t")
        shutil.rmtree(run, ignore_errors=True)
        torch.set_num_threads(threads)
        start = time.perf_counter()
        assert Training(capture, cfg, run, log=quiet).run() == "finished"
        rows.append((f"serial, {threads} torch thread{'s' if threads > 1 else ''}", time.perf_counter() - start))
    torch.set_num_threads(default_threads)
    run = os.path.join(args.out, "ray")
    shutil.rmtree(run, ignore_errors=True)
    start = time.perf_counter()
    report = train_parallel(capture, cfg, run, ParallelOptions("ray", threads=1), log=quiet)
    ray_wall = time.perf_counter() - start
    rows.append(("--workers ray (1 thread per GOP)", ray_wall))
    serial = rows[0][1]
    print(f"\n{gops} GOPs x {args.steps} steps, {capture.num_frames} frames of {capture.cameras[0].width}x"
          f"{capture.cameras[0].height}, {len(capture.cameras)} cameras; {os.cpu_count()} CPUs")
    print(f"{'run':<36}{'wall s':>8}{'x serial':>10}")
    for name, seconds in rows:
        print(f"{name:<36}{seconds:>8.1f}{seconds / serial:>10.2f}")
    tasks = report.timings
    print(f"\nRay: cluster start-up {report.connect_seconds:.1f} s (once per run), {len(tasks)} tasks")
    print(report_table(report))
    latency = start_latencies(report)
    overhead = [t.setup + latency[i] + t.returned for i, t in enumerate(tasks)]
    print(f"Ray overhead per GOP task (set-up + start latency + return): mean {sum(overhead) / len(overhead):.2f} s, "
          f"max {max(overhead):.2f} s; plus the cluster's start-up, {report.connect_seconds / gops:.2f} s per GOP of this run")
    setup = {"gops": gops, "steps": args.steps, "frames": capture.num_frames, "cameras": len(capture.cameras),
             "size": f"{capture.cameras[0].width}x{capture.cameras[0].height}", "cpus": os.cpu_count()}
    results = [{"table": "runs", "run": name, "wall_s": seconds, "x_serial": seconds / serial, **setup}
               for name, seconds in rows]
    results.append({"table": "ray", "cluster_start_s": report.connect_seconds, "tasks": len(tasks),
                    "overhead_mean_s": sum(overhead) / len(overhead), "overhead_max_s": max(overhead), **setup})
    results += [{"table": "ray_tasks", "gop": t.gop, "train_s": t.outcome.ended - t.outcome.started, "setup_s": t.setup,
                 "waited_s": t.waited, "start_latency_s": latency[i], "return_s": t.returned,
                 "cuda_visible_devices": t.outcome.cuda_visible_devices} for i, t in enumerate(tasks)]
    write_results("bench_ray", results)

if __name__ == "__main__":
    main()
