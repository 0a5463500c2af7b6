"""How training shows its progress: a live bar in a terminal, plain lines in logs and pipes.

Both receive every step; the bar redraws (with PSNR averaged over the last steps, anchors, phase and ETA), the
line reporter writes one line every `log_every` steps.
"""

from __future__ import annotations

import collections
import sys
from typing import Callable, Protocol


class StepReporter(Protocol):
    def step(self, gop: int, num_gops: int, step: int, steps: int, info: dict, eta: float) -> None: ...

    def close(self) -> None: ...


class LineReporter:
    def __init__(self, log: Callable[[str], None], every: int):
        self.log, self.every = log, every

    def step(self, gop, num_gops, step, steps, info, eta) -> None:
        if step % self.every == 0 or step == steps:
            terms = " ".join(f"{name} {float(value):.4f}" for name, value in info.get("terms", {}).items())
            self.log(f"GOP {gop} step {step}/{steps} {info['phase']:<9} loss {info['loss']:.4f} ({terms}) "
                     f"psnr {info['psnr']:.2f} anchors {info['anchors']} gaussians {info['gaussians']} eta {eta:.0f}s")

    def close(self) -> None:
        pass


class BarReporter:
    """tqdm bar per GOP; the PSNR shown is the mean of the last 25 steps (one image per step is noisy)."""

    def __init__(self, stream=None, window: int = 25):
        self.stream = stream or sys.stderr
        self.bar = None
        self.gop = None
        self.recent = collections.deque(maxlen=window)

    def step(self, gop, num_gops, step, steps, info, eta) -> None:
        from tqdm import tqdm

        if self.bar is None or gop != self.gop:
            self.close()
            self.gop = gop
            self.recent.clear()
            self.bar = tqdm(total=steps, initial=step - 1, desc=f"GOP {gop + 1}/{num_gops}", unit="step",
                            file=self.stream, dynamic_ncols=True, smoothing=0.05)
        self.recent.append(info["psnr"])
        self.bar.update(1)
        if step % 5 == 0 or step == steps:
            self.bar.set_postfix_str(f"{info['phase']} psnr {sum(self.recent) / len(self.recent):.2f} "
                                     f"anchors {info['anchors']} total ETA {eta:.0f}s", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def reporter_for(log: Callable[[str], None], log_every: int, interactive: bool) -> StepReporter:
    """A bar when a person watches a terminal (and no JSON events are asked for), else plain lines."""
    return BarReporter() if interactive else LineReporter(log, log_every)
