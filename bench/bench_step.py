"""Time training steps from a run's GOP checkpoint (a realistic anchor count and phase); print a table.

Each variant restores the same checkpoint, takes a few warm-up steps, then times `--steps` steps (growth and
pruning off, so every variant times the same anchors). Variants are timed in turn, `--rounds` times over, so a
machine whose speed drifts (this one's varies by 1.6x over a day) slows all of them alike.

Usage: python bench/bench_step.py RUN [--capture DIR] [--gop 0] [--step 1000] [--steps 30] [--rounds 2]
                                  [--threads 2] [--variant NAME=section.key=value,section.key=value ...]
With no --variant it times the run's own configuration ("as trained").
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gifstream_engine.capture import load_capture
from gifstream_engine.train.config import apply_section
from gifstream_engine.train.run_folder import RunFolder
from gifstream_engine.train.gop_data import load_gop_frames
from gifstream_engine.train.trainer import GopTrainer
from results_io import write_results


def parse_variant(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    name, _, sets = text.partition("=")
    overrides = []
    for item in filter(None, sets.split(",")):
        key, _, value = item.partition("=")
        section, _, field = key.partition(".")
        overrides.append((section, field, value))
    return name, overrides


def time_steps(folder: RunFolder, gop, data, overrides, start_step: int, steps: int, warmup: int = 3) -> list[float]:
    cfg = folder.read_config()
    for section, field, value in overrides:
        apply_section(cfg, {section: {field: value}}, "--variant")
    trainer = GopTrainer.restore(folder.checkpoint(gop), cfg, data, torch.device("cpu"))
    trainer.step = start_step
    trainer.tc.densify_every = 10**9  # the same anchors throughout
    for _ in range(warmup):
        trainer.train_step()
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        trainer.train_step()
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--capture", default=None, help="the capture the run trained on (default: its config.json's)")
    parser.add_argument("--gop", type=int, default=0)
    parser.add_argument("--step", type=int, default=1000, help="the schedule step the timed steps take (its phase)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", action="append", default=[])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = RunFolder(args.run)
    saved = folder.read_saved()
    cfg = saved.run_config()
    capture = load_capture(args.capture or saved.capture)
    data = load_gop_frames(capture.gops(cfg.train.gop_length)[args.gop])
    variants = [parse_variant(v) for v in args.variant] or [("as trained", [])]
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    for _ in range(args.rounds):
        for name, overrides in variants:
            times[name] += time_steps(folder, args.gop, data, overrides, args.step, args.steps)
    print(f"torch {torch.__version__}, {args.threads} threads; {args.rounds} x {args.steps} steps from "
          f"{folder.checkpoint(args.gop)} at step {args.step}")
    print(f"{'variant':<28}{'median s':>10}{'mean s':>9}{'min s':>8}")
    rows = []
    for name, seconds in times.items():
        print(f"{name:<28}{statistics.median(seconds):>10.3f}{statistics.fmean(seconds):>9.3f}{min(seconds):>8.3f}")
        rows.append({"variant": name, "overrides": [f"{s}.{k}={v}" for s, k, v in dict(variants)[name]],
                     "median_s": statistics.median(seconds), "mean_s": statistics.fmean(seconds),
                     "min_s": min(seconds), "timed_steps": len(seconds), "threads": args.threads,
                     "run": args.run, "gop": args.gop, "step": args.step})
    write_results("bench_step", rows)


if __name__ == "__main__":
    main()
