"""A sequence whose frames come out on a device (`OnDevice`): what evaluation, `render` and `render-layer` read
once `render.device.run_device` has chosen where they compute.

A GOP-tiled sequence (a trained run, a decoded bitstream) decodes on the device: the GOP whose frame is asked for
has its model and quantised anchor values moved there, and the GOP before it moved back to the CPU, so one GOP at a
time occupies the device. Other sequences (a PLY folder) are read on the CPU and their Gaussians moved.
"""

from __future__ import annotations

import dataclasses

import torch

from ..model import AnchorValues
from ..render.gaussians import Gaussians
from ..sequence import GopSequence, Sequence, SequenceGop

CPU = torch.device("cpu")


def _values_to(values: AnchorValues | None, device: torch.device) -> AnchorValues | None:
    if values is None:
        return None
    masks = None if values.masks is None else {k: v.to(device) for k, v in values.masks.items()}
    return dataclasses.replace(values, feat=values.feat.to(device), log_scale=values.log_scale.to(device),
                               offsets=values.offsets.to(device), masks=masks)


def _gop_to(gop: SequenceGop, device: torch.device) -> None:
    gop.model.to(device)
    gop.values = _values_to(gop.values, device)


class OnDevice:
    """`sequence` with every frame's Gaussians on `device` (see the module's docstring); `release()` moves the GOP
    on the device back to the CPU."""

    def __init__(self, sequence: Sequence, device: torch.device):
        self.sequence, self.device = sequence, torch.device(device)
        self._held: SequenceGop | None = None

    @property
    def num_frames(self) -> int:
        return self.sequence.num_frames

    @property
    def fps(self) -> float | None:
        return self.sequence.fps

    def gaussians(self, frame: int, camera=None) -> Gaussians:
        if isinstance(self.sequence, GopSequence):
            if self.device != CPU:
                self._hold(self.sequence.gop_for_frame(frame)[0])
            return self.sequence.gaussians(frame, camera)
        return self.sequence.gaussians(frame, camera).to(self.device)

    def statistics(self) -> dict:
        return self.sequence.statistics()

    def _hold(self, gop: SequenceGop) -> None:
        if gop is self._held:
            return
        self.release()
        _gop_to(gop, self.device)
        self._held = gop

    def release(self) -> None:
        if self._held is not None:
            _gop_to(self._held, CPU)
            self._held = None
