"""One GOP's training footage in memory: every training camera's frames (decoded once, into one stack), temporal
median and departing pixels (`capture.footage.CameraFootage`)."""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..capture import Capture
from ..capture.footage import CameraFootage
from ..errors import ConfigError


@dataclasses.dataclass
class GopData:
    capture: Capture
    train_cams: list[int]
    frames: torch.Tensor  # (num_train_cams, T, H, W, 3) uint8
    medians: torch.Tensor  # (num_train_cams, H, W, 3) float32 in [0, 1]: each camera's temporal median over the GOP
    footage: list[CameraFootage]  # per training camera: its frames (views of `frames`) and their departing pixels


LOAD_THREADS = 4  # cameras decoded and measured at once (at most the machine's cores)
MIN_TRAIN_CAMERAS = 2  # one view cannot place anything in depth (SfM needs two; one view's seeds would be random)


def check_training_cameras(capture: Capture) -> list[int]:
    """The training cameras' indices; ConfigError when there are fewer than MIN_TRAIN_CAMERAS."""
    train = capture.split_indices("train")
    if len(train) < MIN_TRAIN_CAMERAS:
        names = [capture.cameras[i].name for i in train]
        raise ConfigError(f"{capture.root}: the capture has {len(train)} training camera{'s' if len(train) != 1 else ''}"
                          f"{' ' + str(names) if names else ''}; training needs at least {MIN_TRAIN_CAMERAS}: one "
                          f"view cannot place the scene in depth (the test cameras are only for evaluation)")
    return train


def load_gop_frames(capture: Capture) -> GopData:
    train = check_training_cameras(capture)
    sizes = {(capture.cameras[i].width, capture.cameras[i].height) for i in train}
    if len(sizes) > 1:
        raise ConfigError(f"{capture.root}: training cameras must share one image size, got {sorted(sizes)}")
    cam = capture.cameras[train[0]]
    capture.release_other_windows()  # the previous GOP's frames, if this process trained it
    frames = np.empty((len(train), capture.num_frames, cam.height, cam.width, 3), np.uint8)
    slots = {i: frames[slot] for slot, i in enumerate(train)}

    def load(i: int) -> CameraFootage:  # decoding and the motion pass release the GIL: cameras load side by side
        footage = capture.footage(i, into=slots.get(i))
        footage.motion
        return footage

    # every camera, the test cameras too: seeding's moving points and SfM read them from the cache
    with ThreadPoolExecutor(max_workers=max(1, min(LOAD_THREADS, os.cpu_count() or 1))) as pool:
        loaded = dict(zip(range(len(capture.cameras)), pool.map(load, range(len(capture.cameras)))))
    footage = [loaded[i] for i in train]
    medians = np.stack([f.median for f in footage])
    for f, median in zip(footage, medians):
        f.motion.median = median  # one copy: the footage's median is a view of the stack
    return GopData(capture, train, torch.from_numpy(frames), torch.from_numpy(medians), footage)


GB = 1 << 30
# the engine, torch, the model, the optimiser and the rasteriser beside the frames: 1.8-2.0 GB in a CPU run's first
# step at 1352x1014 (bench/results/bench_scale*.json: peak less frames, bits and two blocks)
WORKING_BYTES = 2 * GB


@dataclasses.dataclass(frozen=True)
class GopMemory:
    """What training one GOP holds in memory: every camera's frames of the GOP decoded once (uint8; the training
    cameras in one stack, the others in the frame cache for seeding), their motion bits and medians (about 1/24 of
    the frames), one camera's block twice while it decodes, and the working set of training itself."""

    frames: int  # bytes of every camera's frames of the GOP
    largest_block: int  # bytes of one camera's frames of the GOP
    working: int = WORKING_BYTES

    @staticmethod
    def of(capture: Capture) -> "GopMemory":
        blocks = [capture.num_frames * cam.width * cam.height * 3 for cam in capture.cameras]
        return GopMemory(sum(blocks), max(blocks))

    @property
    def total(self) -> int:
        return self.frames + self.frames // 24 + 2 * self.largest_block + self.working


def available_memory() -> int | None:
    """Bytes this process may still use: MemAvailable (Linux), lowered by a cgroup limit where one is set."""
    try:
        with open("/proc/meminfo") as f:
            fields = {line.split(":")[0]: line.split()[1] for line in f}
        available = int(fields["MemAvailable"]) * 1024
    except (OSError, KeyError, ValueError, IndexError):
        return None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f, open(path.replace("memory.max", "memory.current").replace("limit_in_bytes", "usage_in_bytes")) as g:
                limit, used = f.read().strip(), int(g.read().strip())
            if limit.isdigit():
                available = min(available, int(limit) - used)
        except (OSError, ValueError):
            continue
    return available


def check_gop_fits(capture: Capture, gop_length: int, available: int | None = None) -> GopMemory:
    """The memory a GOP of `gop_length` frames of the capture needs (`GopMemory`); a ConfigError naming the sizes
    and the ways out when it is more than this machine has available (`available`, default: measured now)."""
    gop = capture.slice(0, min(gop_length, capture.num_frames))
    need = GopMemory.of(gop)
    available = available_memory() if available is None else available
    if available is not None and need.total > available:
        cam = capture.cameras[0]
        raise ConfigError(
            f"{capture.root}: training a GOP of {gop.num_frames} frames of {len(capture.cameras)} cameras at "
            f"{cam.width}x{cam.height} needs about {need.total / GB:.1f} GB of memory ({need.frames / GB:.1f} GB of "
            f"decoded frames), and this machine has {available / GB:.1f} GB available; train fewer frames at once "
            f"(shorter GOPs: --set train.gop_length=N; part of the capture: --frames START:STOP), smaller images "
            f"(--set train.downscale=2 needs a quarter of the frames' memory) or fewer cameras")
    return need
