"""Where a command that reads a trained sequence computes: one decision, `run_device`, for evaluation, `render` and
`render-layer` (training decides its own device from `train.device`, train/driver.py).

A run computes on the device it was trained on when this machine has it (a run trained with `auto` or `cuda` on
the GPU, a CPU-trained run on the CPU); a bitstream or a PLY folder records no device and uses the GPU when there
is one. An explicit request (`--device`) wins; asking for CUDA where torch sees none is an error, never a silent
CPU run.
"""

from __future__ import annotations

import torch

from ..errors import RenderError

DEVICES = ("auto", "cpu", "cuda")


def trained_on(sequence) -> str | None:
    """The device a sequence's run was trained with (its `train.device`: auto, cpu or cuda); None for a sequence
    that records none (a bitstream, a PLY folder)."""
    train = getattr(getattr(sequence, "cfg", None), "train", None)
    device = getattr(train, "device", None)
    return device if device in DEVICES else None


def run_device(sequence=None, requested: str | None = None) -> torch.device:
    """The device to evaluate or render `sequence` on: `requested` (auto, cpu or cuda; None or auto: decide here),
    else the run's training device where this machine has it, else the CPU."""
    if requested not in (None, *DEVICES):
        raise RenderError(f"unknown device {requested!r}; expected one of {DEVICES}")
    cuda = torch.cuda.is_available()
    if requested == "cuda" and not cuda:
        raise RenderError("--device cuda, but torch sees no CUDA device (see `gifstream doctor`); use --device cpu or auto")
    if requested in ("cpu", "cuda"):
        return torch.device(requested)
    return torch.device("cuda" if cuda and trained_on(sequence) != "cpu" else "cpu")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (what a timing of asynchronous CUDA work needs); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
