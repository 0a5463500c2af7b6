"""Periodic per-anchor work of training at real size (issue 27 item 3): the rate's stream grid, the motion KNN and
a growth step, at 10k / 100k / 300k anchors.

Per size N, on a synthetic GOP (N anchors on voxel centres, an N3DV-like stream of 60 frames x 4 channels):
- `stream_grid`: `TrainingStreamGrid.of` with all N anchors dynamic (what training re-sorts every `knn_every` steps
  and after every growth), with its grid's `neighbour_difference` (mean |attribute difference| of grid neighbours,
  lower is smoother); where N <= --exact-max also the coder's exact `sort_to_grid` on the same attributes, its time
  and its grid's neighbour difference;
- `knn`: `GIFStreamModel.update_knn` (10% of the anchors pruned);
- `grow_candidates`: the new anchors' voxels from the growth statistics (~5% of child slots over the threshold);
- `growth_step`: `GrowthPolicy`'s whole grow-and-prune (candidates, pruning, `AnchorState.extend/select` with Adam's
  moments, one KNN build), as training meets it: the second one of the run (`first_growth_step`, the first, also
  gives the per-anchor tables their buffers with room to grow; a GOP grows about every 100 steps).
Each row has wall and CPU seconds (CPU: this process's, all its threads; `sys_s` the kernel's part of it, mostly
zeroing the fresh pages of new tables) and the 1-minute load average when it was measured: on a loaded machine the
wall time can be many times the CPU time.

Usage: python bench/bench_scale_anchors.py [--sizes 10000 100000 300000] [--exact-max 10000]
`run(sizes)` returns the rows, for a larger scale bench to include.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from typing import Callable, Sequence

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.results_io import write_results  # noqa: E402
from gifstream_engine.codec.rate import TrainingStreamGrid  # noqa: E402
from gifstream_engine.codec.sort2d import neighbour_difference, sort_to_grid  # noqa: E402
from gifstream_engine.model import DecodeState, GIFStreamModel, ModelConfig  # noqa: E402
from gifstream_engine.train.anchors import PER_ANCHOR_LR, AnchorState  # noqa: E402
from gifstream_engine.train.config import TrainConfig  # noqa: E402
from gifstream_engine.train.densify import GrowthStats, grow_candidates  # noqa: E402
from gifstream_engine.train.growth import GrowthPolicy  # noqa: E402

FRAMES, STREAM_DIM, VOXEL = 60, 4, 0.01
STATE = DecodeState(use_stream=True, quantize="round", feat_step=1.0, geo_step=0.04)


def synthetic_model(n: int, seed: int = 0) -> GIFStreamModel:
    """n anchors on distinct voxel centres of a cube, every one dynamic, with smooth noisy streams (in steps), 10%
    pruned, and offsets spread over about a voxel (so growth finds new voxels)."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil((2 * n) ** (1 / 3)))
    flat = rng.choice(side**3, n, replace=False)
    keys = np.stack([flat // side**2, flat // side % side, flat % side], 1)
    xyz = ((keys + 0.5) * VOXEL).astype(np.float32)
    cfg = ModelConfig(voxel_size=VOXEL, stream_dim=STREAM_DIM)
    model = GIFStreamModel(xyz, None, FRAMES, cfg)
    t = np.linspace(0, 1, FRAMES)
    phase = keys / side @ rng.normal(size=(3, STREAM_DIM))
    stream = 4 * np.sin(2 * np.pi * (t[None, :, None] + phase[:, None, :])) + rng.normal(size=(n, FRAMES, STREAM_DIM))
    with torch.no_grad():
        model.stream.copy_(torch.as_tensor(np.round(stream), dtype=torch.float32))
        model.mask_logits[:, 0] = 3.0  # M_de open: every anchor has a stream
        model.mask_logits[:, 3] = torch.as_tensor(np.where(rng.random(n) < 0.1, -3.0, 3.0), dtype=torch.float32)
        model.offsets.normal_(0, 1.0, generator=torch.Generator().manual_seed(seed))
    return model


def synthetic_stats(n: int, k: int, seed: int = 0) -> GrowthStats:
    """Growth statistics where ~5% of child slots pass the default threshold and ~5% of anchors are transparent."""
    g = torch.Generator().manual_seed(seed)
    stats = GrowthStats.zeros(n, k, "cpu")
    stats.grad_sum = torch.rand(n, k, generator=g) * 3 * TrainConfig().grad_threshold
    stats.grad_max = torch.where(torch.rand(n, k, generator=g) < 0.05, 40.0, 0.5) * TrainConfig().grad_threshold
    stats.seen = torch.full((n, k), 10.0)
    stats.anchor_seen = torch.full((n,), 10.0)
    stats.opacity_sum = torch.where(torch.rand(n, generator=g) < 0.05, 0.0, 5.0) * k
    stats.opacity_max = stats.opacity_sum / (10 * k)
    return stats


def anchor_state(model: GIFStreamModel, stats: GrowthStats) -> AnchorState:
    """The trainer's per-anchor owner with an Adam optimiser whose moments exist (one zero-gradient step)."""
    params = model.per_anchor_parameters()
    optimizer = torch.optim.Adam([{"params": [p], "lr": 1e-3, "name": name} for name, p in params.items()
                                  if name in PER_ANCHOR_LR])
    for p in params.values():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return AnchorState(model, optimizer, stats)


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    wall, cpu, sys_before = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_stime
    out = fn()
    timed.sys_s = resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys_before  # the kernel's share of cpu
    return out, time.perf_counter() - wall, time.process_time() - cpu


def load() -> float:
    """The machine's 1-minute load average: timings are comparable only under similar load."""
    return os.getloadavg()[0]


def run(sizes: Sequence[int], exact_max: int = 10000) -> list[dict]:
    rows = []
    for n in sizes:
        model = synthetic_model(n)
        attributes = np.concatenate([model.anchor_xyz.numpy(), model.stream.detach().numpy().reshape(n, -1)], 1)
        grid, wall, cpu = timed(lambda: TrainingStreamGrid.of(model, STATE))
        row = {"op": "stream_grid", "anchors": n, "wall_s": wall, "cpu_s": cpu, "sys_s": timed.sys_s, "load": load(),
               "neighbour_difference": neighbour_difference(grid.cells.numpy(), attributes)}
        if n <= exact_max:
            exact, exact_wall, exact_cpu = timed(lambda: sort_to_grid(attributes))
            row |= {"exact_wall_s": exact_wall, "exact_cpu_s": exact_cpu,
                    "exact_neighbour_difference": neighbour_difference(exact, attributes)}
        rows.append(row)
        _, wall, cpu = timed(model.update_knn)
        rows.append({"op": "knn", "anchors": n, "wall_s": wall, "cpu_s": cpu, "sys_s": timed.sys_s, "load": load()})
        stats = synthetic_stats(n, model.cfg.num_offsets)
        cfg = TrainConfig(max_anchors=10 * n)
        (centres, _), wall, cpu = timed(lambda: grow_candidates(model, stats, cfg.grad_threshold, cfg.time_mix_alpha))
        rows.append({"op": "grow_candidates", "anchors": n, "wall_s": wall, "cpu_s": cpu, "sys_s": timed.sys_s, "load": load(),
                     "new_anchors": 0 if centres is None else len(centres)})
        anchors = anchor_state(model, stats)
        for seed, op in enumerate(("first_growth_step", "growth_step")):
            # a growth step starts its statistics over: fresh ones, so that the second step grows and prunes too
            anchors.stats = synthetic_stats(anchors.model.num_anchors, model.cfg.num_offsets, seed)
            report, wall, cpu = timed(lambda: GrowthPolicy(cfg)._grow_and_prune(anchors))
            rows.append({"op": op, "anchors": n, "wall_s": wall, "cpu_s": cpu, "sys_s": timed.sys_s, "load": load(),
                         "grown": report.grown, "pruned": report.pruned})
        del model, anchors, attributes, grid
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'op':<18} {'anchors':>8} {'wall s':>8} {'cpu s':>8} {'of it sys':>9} {'load':>6}  notes")
    for r in rows:
        notes = ""
        if r["op"] == "stream_grid":
            notes = f"neighbour difference {r['neighbour_difference']:.4f}"
            if "exact_wall_s" in r:
                notes += (f"; exact sort {r['exact_wall_s']:.2f} s wall, {r['exact_cpu_s']:.2f} s cpu, "
                          f"neighbour difference {r['exact_neighbour_difference']:.4f}")
        elif r["op"] == "grow_candidates":
            notes = f"{r['new_anchors']} new voxels"
        elif r["op"] in ("first_growth_step", "growth_step"):
            notes = f"{r['grown']} grown, {r['pruned']} pruned"
        print(f"{r['op']:<18} {r['anchors']:>8} {r['wall_s']:>8.3f} {r['cpu_s']:>8.3f} {r['sys_s']:>9.3f} {r['load']:>6.1f}  {notes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000, 300000])
    parser.add_argument("--exact-max", type=int, default=10000, help="largest size the coder's exact sort is timed at")
    args = parser.parse_args()
    rows = run(args.sizes, args.exact_max)
    print_table(rows)
    write_results("bench_scale_anchors", rows)


if __name__ == "__main__":
    main()
