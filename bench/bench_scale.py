"""What each stage of the engine costs at real capture size, and how the costs grow with frames and cameras.

python bench/bench_scale.py [--cameras 20] [--frames 300] [--size 1352x1014] [--grow frames cameras]
                            [--steps 10] [--skip-gop] [--skip-run] [--no-base] [--preset n3dv] [--work /tmp/gifstream_scale] [--anchors 10000 100000 300000]

An N3DV-scale capture is made without rendering (`bench/scale_capture.py`: the demo capture upscaled and played
back and forth; built once into --work and reused), then each stage runs in a process of its own, so that its peak
memory (ru_maxrss) is its own:
- load: open the capture (probe every camera);
- gop: `Training.train_gop(0)` for its first --steps steps at the preset with train.downscale=1 and a fresh SfM cache: the
  seeding (SfM and moving points), the set-up until the first step begins, the peak memory of each phase (frames
  loaded, seeding, set-up, first step, later steps), and per step the seconds of the whole step and of its
  host-side draws (the training image and the windows on moving pixels); frames decoded;
- eval, encode, decode: a one-GOP run (`train.frames=0:GOP`, at --short-downscale) evaluated on the test camera,
  encoded, and decoded to per-frame PLYs (time to the first frame on disk, bytes per Gaussian).
--grow repeats the stages at twice the frames (the eval/encode/decode run then has two GOPs) and twice the cameras.
The anchor table (stream-grid order, KNN, growth at --anchors) comes from `bench/bench_scale_anchors.py` when it is
there. Rows go to bench/results/bench_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, ROOT)
sys.path.insert(0, BENCH)

from results_io import write_results  # noqa: E402

GB = 2**30


# ---- stages, each in a process of its own (this file with --worker STAGE) -----------------------------------------

class DecodeCounter:
    """Counts frames decoded from the footage (every frame PyAV hands over passes `video._to_rgb`)."""

    def __init__(self):
        from gifstream_engine.capture import video

        self.count, original = 0, video._to_rgb

        def counted(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)

        video._to_rgb = counted


class PhasePeaks:
    """Peak resident memory of each phase of a stage (sampled every 0.1 s from /proc/self/statm), so the table
    says which phase sets the stage's peak; `phase` names the phase in progress."""

    def __init__(self):
        import threading

        self.phase, self.peaks, self._page = "start", {}, os.sysconf("SC_PAGE_SIZE")
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * self._page / GB
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), rss)
            time.sleep(0.1)


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB


def stage_load(spec: dict) -> dict:
    from gifstream_engine.capture import load_capture

    start = time.perf_counter()
    capture = load_capture(spec["capture"])
    return {"seconds": time.perf_counter() - start, "cameras": len(capture.cameras), "frames": capture.num_frames}


def stage_gop(spec: dict) -> dict:
    """Train GOP 0 for spec['steps'] steps: seeding, set-up until the first step begins, seconds per step."""
    import torch

    from gifstream_engine.capture import load_capture
    from gifstream_engine.train import seeding
    from gifstream_engine.train.config import load_config
    from gifstream_engine.train.driver import Training
    from gifstream_engine.train.gop_data import GopMemory
    from gifstream_engine.train.motion_patches import MotionPatchSampler
    from gifstream_engine.train.trainer import GopTrainer

    counter = DecodeCounter()
    torch.set_num_threads(spec["threads"])
    # the preset's own schedule (its first steps, not a whole schedule squeezed into a few steps), stopped after
    # spec['steps'] steps
    cfg = load_config([spec["preset"]], ["train.downscale=1", "train.device=cpu"])
    marks, host = {}, []
    phases = PhasePeaks()
    begin = time.perf_counter()
    capture = load_capture(spec["capture"])

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            start, phases.phase = time.perf_counter(), name
            try:
                return fn(*args, **kwargs)
            finally:
                marks[name] = marks.get(name, 0.0) + time.perf_counter() - start
                marks[f"{name}_frames_decoded"] = counter.count
                phases.phase = f"after {name}"
        return wrapper

    seeding.initial_model = timed("seeding", seeding.initial_model)
    import gifstream_engine.train.driver as driver
    driver.initial_model = seeding.initial_model
    driver.load_gop_frames = timed("load_frames", driver.load_gop_frames)
    sample = MotionPatchSampler.sample

    def timed_sample(self, generator):
        start = time.perf_counter()
        try:
            return sample(self, generator)
        finally:
            host.append(time.perf_counter() - start)

    MotionPatchSampler.sample = timed_sample
    steps = []
    train_step = GopTrainer.train_step

    def marked_step(self, *args, **kwargs):
        if "first_step_start" not in marks:
            marks["first_step_start"], phases.phase = time.perf_counter(), "first step"
        try:
            return train_step(self, *args, **kwargs)
        finally:
            phases.phase = "steps"

    GopTrainer.train_step = marked_step
    shutil.rmtree(spec["run"], ignore_errors=True)  # a fresh GOP, never a resumed checkpoint
    training = Training(capture, cfg, spec["run"], log=lambda *_: None, handle_signals=False)
    def step_done(_done) -> None:
        steps.append(time.perf_counter())
        if len(steps) >= spec["steps"]:
            training.request_stop()

    training.step_callbacks.append(step_done)
    training.begin()
    training.train_gop(0)
    first = steps[0] - begin
    per_step = (steps[-1] - steps[0]) / (len(steps) - 1) if len(steps) > 1 else first - (marks["first_step_start"] - begin)
    windows = cfg.train.motion_patches
    return {"setup_s": marks["first_step_start"] - begin, "first_step_end_s": first,
            "peak_gb_by_phase": {name: round(gb, 3) for name, gb in phases.peaks.items()}, "seeding_s": marks.get("seeding"),
            "load_frames_s": marks.get("load_frames"), "step_s": per_step,
            "host_draws_ms_per_step": 1000 * sum(host) / max(len(steps), 1),
            "host_draw_ms_per_window": 1000 * sum(host) / max(len(host), 1) if windows else None,
            "frames_decoded": counter.count, "frames_decoded_by_seeding_end": marks.get("seeding_frames_decoded"),
            "gop_frames_gb": GopMemory.of(training.gops[0]).frames / GB,
            "estimate_gb": GopMemory.of(training.gops[0]).total / GB}


def stage_cli(spec: dict) -> dict:
    """One `gifstream` command in this process (argv spec['argv']); for decode, when its first frame is on disk."""
    from gifstream_engine.cli import main as cli_main

    counter = DecodeCounter()
    first = {}
    if spec.get("watch"):
        import threading

        def watch():
            folder, start = spec["watch"], time.perf_counter()
            while "s" not in first:
                names = []
                for root, _, files in os.walk(os.path.dirname(folder)):
                    names += [n for n in files if n.endswith(".ply") and os.path.basename(root).startswith(os.path.basename(folder))]
                if names:
                    first["s"] = time.perf_counter() - start
                time.sleep(0.05)

        threading.Thread(target=watch, daemon=True).start()
    start = time.perf_counter()
    status = cli_main(spec["argv"])
    if status:
        raise SystemExit(status)
    out = {"seconds": time.perf_counter() - start, "frames_decoded": counter.count}
    if spec.get("watch"):
        out["first_frame_s"] = first.get("s")
    return out


STAGES = {"load": stage_load, "gop": stage_gop, "cli": stage_cli}


def worker(stage: str, spec_json: str) -> None:
    result = STAGES[stage](json.loads(spec_json))
    result["peak_gb"] = peak_gb()
    print("RESULT " + json.dumps(result))


def run_stage(stage: str, spec: dict, env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", stage, json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"stage {stage} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


# ---- the driver ------------------------------------------------------------------------------------------------

def measure(capture: str, work: str, label: str, args) -> list[dict]:
    env = dict(os.environ, GIFSTREAM_CACHE=os.path.join(work, f"sfm_cache_{label}_{time.time_ns()}"))
    rows = []

    def row(stage: str, result: dict) -> None:
        rows.append({"scale": label, "stage": stage, **result})
        print(json.dumps(rows[-1]), flush=True)

    row("load", run_stage("load", {"capture": capture}, env))
    if not args.skip_gop:
        run = os.path.join(work, f"run_{label}")
        gop = run_stage("gop", {"capture": capture, "run": run, "steps": args.steps, "preset": args.preset,
                                "threads": args.threads}, env)
        row("gop", gop)
    if args.skip_run:
        return rows
    # a run of one GOP (two at twice the frames) for evaluation, encoding and decoding
    frames = args.gop_frames * (2 if label == "2x frames" else 1)
    short = os.path.join(work, f"short_{label}")
    train = ["train", capture, "--out", short, "--preset", args.preset, "--set", f"train.downscale={args.short_downscale}", "--steps",
             str(args.short_steps), "--frames", f"0:{frames}", "--overwrite", "--threads", str(args.threads), "--device", "cpu"]
    if not os.path.isfile(os.path.join(short, "eval.json")):
        run_stage("cli", {"argv": train}, env)
    row("eval", run_stage("cli", {"argv": ["eval", short]}, env) | {"downscale": args.short_downscale, "run_frames": frames})
    gifs = os.path.join(work, f"short_{label}.gifs")
    row("encode", run_stage("cli", {"argv": ["encode", short, "-o", gifs]}, env))
    plys = os.path.join(work, f"ply_{label}")
    decode = run_stage("cli", {"argv": ["decode", gifs, "--out", plys, "--format", "ply"], "watch": plys}, env)
    names = sorted(n for n in os.listdir(plys) if n.endswith(".ply"))
    from gifstream_engine.plyio import read_gaussian_ply

    count = len(read_gaussian_ply(os.path.join(plys, names[0]))["means"])
    decode["ply_bytes_per_gaussian"] = os.path.getsize(os.path.join(plys, names[0])) / max(count, 1)
    decode["frames"] = len(names)
    decode["downscale"] = args.short_downscale
    row("decode", decode)
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=None, help="the small capture to scale (default: rendered demo in --work)")
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="1352x1014")
    parser.add_argument("--grow", nargs="*", default=["frames", "cameras"], choices=["frames", "cameras"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--short-steps", type=int, default=10,
                        help="steps of the run that eval, encode and decode measure (its size, not its quality, matters)")
    parser.add_argument("--gop-frames", type=int, default=60)
    parser.add_argument("--short-downscale", type=float, default=1.0,
                        help="train.downscale of the run that eval, encode and decode measure (a CPU trains a "
                             "1352x1014 step in minutes)")
    parser.add_argument("--preset", default="n3dv")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default="/tmp/gifstream_scale")
    parser.add_argument("--skip-gop", action="store_true", help="leave out the full-size GOP stage")
    parser.add_argument("--no-base", action="store_true", help="only the --grow scales (e.g. to add them to a base run's "
                        "results under another --results name)")
    parser.add_argument("--skip-run", action="store_true", help="leave out the one-GOP run's eval, encode and decode")
    parser.add_argument("--results", default="bench_scale", help="the results file's name")
    parser.add_argument("--anchors", type=int, nargs="*", default=[10000, 100000, 300000])
    args = parser.parse_args()
    from scale_capture import build

    os.makedirs(args.work, exist_ok=True)
    source = args.source
    if source is None:
        source = os.path.join(args.work, "demo_capture")
        if not os.path.isdir(source):
            subprocess.run([sys.executable, "-m", "gifstream_engine.cli", "capture", "synth", source], check=True)
    width, height = (int(v) for v in args.size.split("x"))
    scales = [] if args.no_base else [("base", args.cameras, args.frames)]
    if "frames" in args.grow:
        scales.append(("2x frames", args.cameras, 2 * args.frames))
    if "cameras" in args.grow:
        scales.append(("2x cameras", 2 * args.cameras, args.frames))
    rows = []
    for label, cameras, frames in scales:
        capture = build(source, os.path.join(args.work, f"capture_{cameras}x{frames}x{args.size}"), cameras, frames,
                        width, height)
        for r in measure(capture, args.work, label, args):
            rows.append(r | {"cameras": cameras, "frames": frames, "size": args.size})
        write_results(args.results, rows)
    if args.anchors and os.path.isfile(os.path.join(BENCH, "bench_scale_anchors.py")):
        from bench_scale_anchors import run as anchor_rows

        rows += [{"stage": "anchors", **r} for r in anchor_rows(args.anchors)]
        write_results(args.results, rows)


if __name__ == "__main__":
    main()
