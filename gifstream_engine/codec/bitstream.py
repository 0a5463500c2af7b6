"""A whole sequence as one `.gifs` file: `encode_run` writes it, `DecodedStream` reads it back.

Header (JSON): format, fps, num_frames, scene bounds, the cameras (so the stream can be viewed without its
capture), the model dimensions, the training config it came from, and per GOP the fields `decode_gop` needs.
Sections per GOP are described in gop_coding.py. The decoder needs numpy, constriction and CPU torch.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from ..capture.types import Camera
from ..errors import BitstreamError, ConfigError
from ..eval.evaluate import SequenceGop, TrainedRun, gop_for_frame
from ..model.gifstream import ModelConfig
from ..render.gaussians import Gaussians
from .container import Container, write_container
from .gop_coding import DECODED_STATE, decode_gop, encode_gop
from .header import FORMAT, StreamHeader


def gop_prefix(g: int) -> str:
    return f"gop_{g:03d}"


def _float32(value):
    """Floats of a JSON value cut to float32 precision (what the renderer uses), for a compact header."""
    if isinstance(value, float):
        return float(repr(np.float32(value)))
    if isinstance(value, dict):
        return {k: _float32(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_float32(v) for v in value]
    return value


def encode_run(run: TrainedRun, path: str, rig: dict) -> dict:
    """Write the run's GOPs to `path`; returns {bytes, seconds, sections}. rig: fps, scene_bounds, cameras."""
    start = time.perf_counter()
    if any(e is None for e in run.entropy):
        raise ConfigError(f"{run.folder}: the run was trained without entropy models (an older engine); retrain it")
    sections, gop_headers = {}, []
    for g, (gop, entropy) in enumerate(zip(run.gops, run.entropy)):
        try:
            header, gop_sections = encode_gop(gop.model, entropy, gop.state, gop_prefix(g))
        except ValueError as exc:
            raise ConfigError(f"{run.folder}: GOP {g} cannot be encoded: {exc}") from exc
        header["frame_offset"] = gop.frame_offset
        gop_headers.append(header)
        sections |= gop_sections
    header = {
        "format": FORMAT,
        "fps": float(rig["fps"]),
        "num_frames": run.num_frames,
        "scene_bounds": _float32(rig["scene_bounds"]),
        "cameras": _float32(rig["cameras"]),
        "model": dataclasses.asdict(run.cfg.model),
        "train": {k: v for k, v in dataclasses.asdict(run.cfg.train).items() if k not in ("device",)},
        "gops": gop_headers,
    }
    size = write_container(path, header, sections)
    return {"bytes": size, "seconds": time.perf_counter() - start, "sections": {k: len(v) for k, v in sections.items()}}


class DecodedStream:
    """A `.gifs` bitstream decoded on demand; `frames` (start, stop) limits decoding to that range."""

    def __init__(self, path: str, frames: tuple[int, int] | None = None):
        self.path = path
        self.container = Container(path)
        header = StreamHeader.parse(self.container.header, path, self.container.size)
        self.header = header
        self.fps, self.num_frames = header.fps, header.num_frames
        self.model_cfg, self.train_downscale, self.cameras = header.model, header.train_downscale, header.cameras
        self.frames = self.check_range(frames) if frames is not None else (0, self.num_frames)
        start = time.perf_counter()
        self.gops: list[SequenceGop] = []
        for g, gh in enumerate(header.gops):
            offset, count = gh.frame_offset, gh.num_frames
            if offset + count <= self.frames[0] or offset >= self.frames[1]:
                continue
            decoded = decode_gop(self.container, gop_prefix(g), gh, self.model_cfg, last_frame=self.frames[1] - 1 - offset)
            self.gops.append(SequenceGop(offset, decoded.model, DECODED_STATE, decoded.values))
        self.decode_seconds = time.perf_counter() - start

    def check_range(self, frames: tuple[int, int]) -> tuple[int, int]:
        start, stop = frames
        if not 0 <= start < stop <= self.num_frames:
            raise BitstreamError(f"{self.path}: frames {start}:{stop} are outside the stream's 0:{self.num_frames}")
        return start, stop

    def camera(self, name: str) -> Camera:
        for camera in self.cameras:
            if camera.name == name:
                return camera
        raise BitstreamError(f"{self.path}: no camera {name!r}; the stream has {[c.name for c in self.cameras]}")

    def gaussians(self, frame: int, camera: Camera | None = None) -> Gaussians:
        if not self.frames[0] <= frame < self.frames[1]:
            raise BitstreamError(f"{self.path}: frame {frame} is outside the decoded range {self.frames[0]}:{self.frames[1]}")
        gop, local_t = gop_for_frame(self.gops, frame, self.path)
        with torch.no_grad():
            return gop.gaussians(local_t, camera)

    def decode_fps(self) -> float:
        """Frames per second of the whole decode: bitstream to anchors and streams, then every frame's Gaussians."""
        start = time.perf_counter()
        for t in range(*self.frames):
            self.gaussians(t)
        return (self.frames[1] - self.frames[0]) / (self.decode_seconds + time.perf_counter() - start)

    def statistics(self) -> dict:
        kept, dynamic = map(sum, zip(*(g.kept_and_dynamic() for g in self.gops)))
        return {"num_anchors": kept, "dynamic_fraction": dynamic / max(kept, 1), "train_seconds": None, "gops": len(self.gops)}
