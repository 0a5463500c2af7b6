"""Time the rasteriser: forward and forward+backward of random Gaussians, printed as a table.

Usage: python bench/bench_rasterizer.py [--gaussians 20000] [--size 128x96] [--repeats 5] [--backend torch]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from gifstream_engine.capture.camera import Camera
from gifstream_engine.render import Gaussians, render
from results_io import write_results


def random_scene(n: int, seed: int, device: str) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([1.0, 0.8, 0.5]) + torch.tensor([0.0, 0.0, 4.0])
    parts = (means, torch.randn(n, 4, generator=g), torch.rand(n, 3, generator=g) * 0.04 + 0.01,
             torch.rand(n, generator=g) * 0.9 + 0.05, torch.rand(n, 3, generator=g))
    return Gaussians(*(p.to(device).requires_grad_(True) for p in parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, nargs="+", default=[20000])
    parser.add_argument("--size", nargs="+", default=["128x96"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"{'gaussians':>10} {'size':>10} {'backend':>8} {'visible':>8} {'fwd ms':>9} {'fwd+bwd ms':>11}")
    rows = []
    for size in args.size:
        width, height = map(int, size.split("x"))
        focal = 100.0 * width / 128
        camera = Camera("bench", width, height, np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]]), np.eye(4))
        for n in args.gaussians:
            scene = random_scene(n, 0, args.device)
            fwd, both = [], []
            for _ in range(args.repeats + 1):  # the first run warms up and is not counted
                sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
                start = time.perf_counter()
                out = render(scene, camera, backend=args.backend)
                sync()
                mid = time.perf_counter()
                out.rgb.sum().backward()
                sync()
                end = time.perf_counter()
                fwd.append(mid - start)
                both.append(end - start)
            fwd, both = fwd[1:], both[1:]
            print(f"{n:>10} {size:>10} {out.meta.backend:>8} {int(out.meta.visible.sum()):>8} "
                  f"{statistics.median(fwd) * 1e3:>9.1f} {statistics.median(both) * 1e3:>11.1f}")
            rows.append({"gaussians": n, "size": size, "backend": out.meta.backend, "device": args.device,
                         "threads": torch.get_num_threads(), "repeats": args.repeats,
                         "visible": int(out.meta.visible.sum()), "forward_ms": statistics.median(fwd) * 1e3,
                         "forward_backward_ms": statistics.median(both) * 1e3})
    write_results("bench_rasterizer", rows)


if __name__ == "__main__":
    main()
