"""A sequence: frame t -> its Gaussians (optionally culled to a camera's view). What every consumer reads.

Implementations:
  - a trained run folder: `train.run_folder.TrainedRun` (the models decoded as the coder will code them);
  - a `.gifs` bitstream: `codec.bitstream.StreamSequence` (decoded on demand);
  - a folder of per-frame 3DGS PLYs (`frame_00000.ply`, ... as `gifstream decode` writes them): `PlySequence`.
The first two are `GopSequence`s: frames tiled by GOPs, each a `GIFStreamModel` with its decode state and
(quantised) anchor values. Consumers -- the encoder, eval, `gifstream render` and `decode`, the Blender add-on
through `gifstream decode` -- take any `Sequence`; `write_frames` and `render_frames` are the exports.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from typing import Callable, Iterator, Protocol

import numpy as np
import torch

from .capture.camera import Camera
from .capture.video import write_video
from .conventions import FRAME_DIGITS, FRAME_PREFIX, PART_SUFFIX
from .errors import ConfigError, SequenceError
from .fileio import atomic_path, input_file
from .imageio import to_uint8, write_png
from .model import AnchorValues, DecodeState, GIFStreamModel
from .plyio import read_gaussian_ply, write_gaussian_ply
from .render import render
from .render.api import camera_tensors
from .render.gaussians import Gaussians
from .render.projection import MAX_EXTEND, reach_image

MAX_PLY_BYTES = 1 << 32  # one frame's PLY: 4 GiB, some 60 million Gaussians
FRAME_FILE = FRAME_PREFIX + "{:0" + str(FRAME_DIGITS) + "d}.{}"  # what `write_frames` writes, `PlySequence` reads
EXPORT_FORMATS = ("ply", "npz")


class Sequence(Protocol):
    num_frames: int  # frames 0..num_frames-1
    fps: float | None  # None: not recorded

    def gaussians(self, frame: int, camera: Camera | None = None) -> Gaussians:
        """The Gaussians of `frame` (0 <= frame < num_frames): N of them, each means (3,), quats (4,) wxyz,
        scales (3,) linear, opacity in [0, 1], colour (3,) RGB in [0, 1]. With `camera`, those that cannot reach
        its image may be left out: cheaper, the same image."""
        ...

    def statistics(self) -> dict:
        """num_anchors, dynamic_fraction, train_seconds (None when unknown), gops: what eval reports besides images."""
        ...


@dataclasses.dataclass
class SequenceGop:
    """One GOP ready to decode: frame t of it is `model.decode(t, camera, state, values=values)`."""

    frame_offset: int  # its first frame in the sequence
    model: GIFStreamModel
    state: DecodeState
    values: AnchorValues | None  # quantised anchor values (None: the model quantises its own with `state`)
    train_seconds: float = 0.0

    @property
    def num_frames(self) -> int:
        return self.model.num_frames

    def gaussians(self, local_t: int, camera: Camera | None) -> Gaussians:
        with torch.no_grad():
            return self.model.decode(local_t, camera, self.state, values=self.values)

    def kept_and_dynamic(self) -> tuple[int, int]:
        masks = self.values.masks if self.values is not None and self.values.masks is not None else self.model.masks(self.state)
        kept = masks["p"] > 0.5
        return int(kept.sum()), int(((masks["de"] > 0) & kept).sum())


class GopSequence:
    """Frames tiled by GOPs in order; `what` names the sequence (a folder, a file) in errors."""

    def __init__(self, gops: list[SequenceGop], what: str, fps: float | None):
        self.gops, self.what, self.fps = gops, what, fps

    @property
    def num_frames(self) -> int:
        return sum(g.num_frames for g in self.gops)

    def gop_for_frame(self, frame: int) -> tuple[SequenceGop, int]:
        """The GOP holding `frame` and the frame's index inside it."""
        for gop in self.gops:
            if gop.frame_offset <= frame < gop.frame_offset + gop.num_frames:
                return gop, frame - gop.frame_offset
        start = self.gops[0].frame_offset if self.gops else 0
        raise ConfigError(f"{self.what}: frame {frame} is outside its range {start}:{start + self.num_frames}")

    def gaussians(self, frame: int, camera: Camera | None = None) -> Gaussians:
        gop, local_t = self.gop_for_frame(frame)
        return gop.gaussians(local_t, camera)

    def statistics(self) -> dict:
        kept, dynamic = map(sum, zip(*(g.kept_and_dynamic() for g in self.gops)))
        return {"num_anchors": kept, "dynamic_fraction": dynamic / max(kept, 1), "train_seconds": None, "gops": len(self.gops)}


def reaching(gaussians: Gaussians, camera: Camera) -> torch.Tensor:
    """(N,) bool, conservative: False only for Gaussians whose 3.33-sigma extent cannot touch `camera`'s image
    (`render.projection.reach_image`), whatever their centre's place (a large one outside the view may reach in)."""
    viewmat, K = camera_tensors(camera, gaussians.device, gaussians.means.dtype)
    n = len(gaussians)
    return reach_image(gaussians.means, MAX_EXTEND * gaussians.scales.amax(-1), viewmat.expand(n, 4, 4),
                       K.expand(n, 3, 3), camera.width, camera.height)


def incomplete_message(folder: str) -> str:
    """What a reader says of a `.part` folder (as the add-on's sequence_files does)."""
    return (f"{folder} is an incomplete sequence: a '{PART_SUFFIX}' folder is one still being written, or left by a "
            f"decode that was stopped or failed (only a whole decode is renamed to its folder); "
            f"decode the stream again")


class PlySequence:
    """A folder of per-frame standard 3DGS PLYs numbered without gaps (frame_00000.ply, ... as `write_frames`
    writes them, or any other prefix: the largest group of numbered files sharing one); its first file is frame 0.
    Culling to a camera keeps the Gaussians whose extent can reach its image (`reaching`)."""

    NUMBERED = re.compile(r"^(.*?)(\d+)\.ply$", re.IGNORECASE)

    @staticmethod
    def holds_frames(folder: str) -> bool:
        """Whether `folder` is a folder holding at least one numbered .ply file."""
        return os.path.isdir(folder) and any(PlySequence.NUMBERED.match(name) for name in os.listdir(folder))

    def __init__(self, folder: str, fps: float | None = None):
        if os.path.basename(os.path.normpath(folder)).endswith(PART_SUFFIX):
            raise SequenceError(incomplete_message(folder))
        groups: dict[str, dict[int, str]] = {}
        for name in os.listdir(folder):
            match = self.NUMBERED.match(name)
            if match:
                groups.setdefault(match.group(1), {})[int(match.group(2))] = name
        if not groups:
            raise SequenceError(f"{folder}: no numbered .ply files (expected e.g. {FRAME_FILE.format(0, 'ply')}, "
                                f"{FRAME_FILE.format(1, 'ply')}, ...)")
        files = max(groups.values(), key=len)
        first, last = min(files), max(files)
        missing = sorted(set(range(first, last + 1)) - set(files))
        if missing:
            raise SequenceError(f"{folder}: frame number {missing[0]} is missing ({len(missing)} gaps between {first} "
                                f"and {last})")
        self.folder, self.fps = folder, fps
        self.paths = [os.path.join(folder, files[n]) for n in range(first, last + 1)]
        self.num_frames = len(self.paths)

    def gaussians(self, frame: int, camera: Camera | None = None) -> Gaussians:
        if not 0 <= frame < self.num_frames:
            raise SequenceError(f"{self.folder}: frame {frame} is outside its range 0:{self.num_frames}")
        path = self.paths[frame]
        input_file(path, "PLY frame", SequenceError, MAX_PLY_BYTES)  # a regular file, bounded, before reading
        try:
            arrays = read_gaussian_ply(path)
        except (OSError, ValueError, KeyError) as exc:
            raise SequenceError(f"{path}: not a 3D Gaussian Splatting PLY ({type(exc).__name__}: {exc}); expected "
                                f"x y z, f_dc_0..2, opacity, scale_0..2, rot_0..3") from exc
        tensors = [torch.as_tensor(arrays[k], dtype=torch.float32) for k in ("means", "quats", "scales", "opacities", "colors")]
        if not all(torch.isfinite(t).all() for t in tensors):
            raise SequenceError(f"{path}: the Gaussians hold NaN or inf")
        g = Gaussians(*tensors)
        return g if camera is None else g.select(reaching(g, camera))

    def statistics(self) -> dict:
        return {"num_anchors": None, "dynamic_fraction": None, "train_seconds": None, "gops": None}


def write_frames(sequence: Sequence, out: str, start: int, stop: int, fmt: str = "ply",
                 on_frame: Callable[[int, float, float], None] | None = None) -> None:
    """Frames start..stop-1 of `sequence` as OUT/frame_NNNNN.{ply,npz} (each written atomically; NNNNN is the
    sequence's frame number). PLY: standard 3DGS (SH degree 0); NPZ: frame, fps and the Gaussians' arrays
    means (N, 3), quats (N, 4), scales (N, 3), opacities (N,), colors (N, 3). `on_frame(t, decode_s, write_s)`
    is called after each frame with the seconds spent getting its Gaussians and writing its file."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown frame format {fmt!r}; expected one of {EXPORT_FORMATS}")
    for t in range(start, stop):
        tick = time.perf_counter()
        g = sequence.gaussians(t)
        arrays = {name: tensor.numpy() for name, tensor in zip(("means", "quats", "scales", "opacities", "colors"), g.tensors())}
        decoded = time.perf_counter()
        path = os.path.join(out, FRAME_FILE.format(t, fmt))
        if fmt == "ply":
            write_gaussian_ply(path, **arrays)
        else:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, frame=t, fps=sequence.fps, **arrays)
        if on_frame is not None:
            on_frame(t, decoded - tick, time.perf_counter() - decoded)


def render_frames(sequence: Sequence, camera: Camera, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
    """(t, image) for frames t = start..stop-1 rendered from `camera` on black; image (H, W, 3) float32 RGB in [0, 1]."""
    with torch.no_grad():
        for t in range(start, stop):
            yield t, render(sequence.gaussians(t, camera), camera, background=torch.zeros(3)).rgb.cpu().numpy()


DEFAULT_VIDEO_FPS = 30.0  # for a sequence that records no frame rate


def render_views(sequence: Sequence, camera: Camera, start: int, stop: int, out: str, fps: float | None) -> int:
    """Frames start..stop-1 rendered from `camera` as OUT/<camera>_NNNNN.png, plus OUT/<camera>.mp4 at `fps`
    (None: DEFAULT_VIDEO_FPS) when there are two frames or more and the image sides are even; the frame count."""
    images = []
    for t, image in render_frames(sequence, camera, start, stop):
        write_png(os.path.join(out, f"{camera.name}_{t:05d}.png"), image)
        images.append(to_uint8(image))
    if len(images) > 1 and images[0].shape[0] % 2 == 0 and images[0].shape[1] % 2 == 0:
        write_video(os.path.join(out, f"{camera.name}.mp4"), np.stack(images), fps or DEFAULT_VIDEO_FPS)
    return len(images)
