"""A whole sequence as one `.gifs` file: `encode_run` writes it, `DecodedStream` reads it back.

Header (codec/header.py, `StreamHeader`): format, fps, num_frames, scene bounds, the cameras (so the stream can be
viewed without its capture), the model dimensions, the training config it came from, and per GOP the fields
`GopDecoder` needs. Sections per GOP are described in gop_coding.py. The decoder needs numpy, constriction and
CPU torch.
"""

from __future__ import annotations

import time

import torch

from ..capture.camera import Camera, Rig
from ..errors import BitstreamError, ConfigError
from ..frames import FrameRange, check_range
from ..model import ModelConfig
from ..render.gaussians import Gaussians
from ..sequence import GopSequence, SequenceGop
from .container import write_container
from .entropy_models import EntropyModels
from .gop_coding import GopDecoder, encode_gop, required_sections
from .header import StreamHeader


def gop_prefix(g: int) -> str:
    return f"gop_{g:03d}"


class CodableSequence(GopSequence):
    """A trained sequence the encoder can code: its GOPs with the entropy models trained alongside each
    (None: trained by an older engine, not codable), the model configuration and the training settings (what
    was trained, not where: written to the header for reference)."""

    def __init__(self, gops: list[SequenceGop], entropy: list[EntropyModels | None], model_cfg: ModelConfig,
                 train_settings: dict, what: str, fps: float | None):
        super().__init__(gops, what, fps)
        self.entropy, self.model_cfg, self.train_settings = entropy, model_cfg, train_settings


def encode_run(run: CodableSequence, path: str, rig: Rig) -> dict:
    """Code every GOP of `run` into the `.gifs` file `path` (written atomically).

    run: GOPs tiling frames 0..T-1, each with its model (N anchors, C feature and P stream channels, K offsets),
    final decode state and entropy models; rig: the fps, scene bounds and cameras stored in the header.
    Returns {bytes: file size, seconds: encode time, sections: {name: bytes}}."""
    start = time.perf_counter()
    if any(e is None for e in run.entropy):
        raise ConfigError(f"{run.what}: the run was trained without entropy models (an older engine); retrain it")
    sections, gop_headers = {}, []
    for g, (gop, entropy) in enumerate(zip(run.gops, run.entropy)):
        try:
            header, gop_sections = encode_gop(gop.model, entropy, gop.state, gop_prefix(g), gop.frame_offset)
        except ValueError as exc:
            raise ConfigError(f"{run.what}: GOP {g} cannot be encoded: {exc}") from exc
        gop_headers.append(header)
        sections |= gop_sections
    header = StreamHeader(num_frames=run.num_frames, model=run.model_cfg, train=run.train_settings, rig=rig,
                          gops=gop_headers)
    size = write_container(path, header.to_json(), sections)
    return {"bytes": size, "seconds": time.perf_counter() - start, "sections": {k: len(v) for k, v in sections.items()}}


class StreamGop:
    """One GOP of a bitstream: its frames known from the header, its model decoded when a frame of it is asked for
    (`DecodedStream` keeps one GOP decoded at a time; a frame's Gaussians need its stream decoded only through that
    frame); otherwise a `SequenceGop`."""

    def __init__(self, stream: "DecodedStream", index: int, frame_offset: int, num_frames: int):
        self.stream, self.index, self.frame_offset, self.num_frames = stream, index, frame_offset, num_frames

    def decoded(self) -> SequenceGop:
        return self.stream.decoded_gop(self.index)

    def gaussians(self, local_t: int, camera: Camera | None) -> Gaussians:
        return self.stream.decoded_gop(self.index, through=local_t).gaussians(local_t, camera)

    def kept_and_dynamic(self) -> tuple[int, int]:
        return self.decoded().kept_and_dynamic()

    def __getattr__(self, name: str):  # model, state, values: those of the decoded GOP
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.decoded(), name)


class DecodedStream(GopSequence):
    """A `.gifs` bitstream as a sequence. Opening it checks the header and every section's CRC; each GOP decodes
    when a frame of it is first asked for, its stream only as far as the frames asked for (the first frame after the
    GOP's anchors and one stream frame), and only the GOP in use stays decoded (memory of one GOP). `frames`
    (start, stop; stop None: to the end) limits decoding to that range (a stream frame needs the frames before it
    in its GOP, never those after)."""

    def __init__(self, path: str, frames: FrameRange | None = None):
        header, self.container = StreamHeader.read(path)
        self.container.verify()  # a damaged payload fails here, before any frame is decoded or written
        super().__init__([], path, header.fps)
        self.path, self.header = path, header
        self.stream_frames = header.num_frames
        self.model_cfg, self.train_downscale, self.cameras = header.model, header.train_downscale, header.cameras
        self.frames = check_range(frames, header.num_frames, "the stream's", path)
        for g, gh in enumerate(header.gops):
            if gh.frame_offset + gh.num_frames <= self.frames[0] or gh.frame_offset >= self.frames[1]:
                continue
            for name in required_sections(gop_prefix(g), gh, self.frames[1] - 1 - gh.frame_offset):
                if name not in self.container.table:  # a missing section fails here, before any frame is written
                    raise BitstreamError(f"{path}: no section {name!r}; the stream has {len(self.container.table)} "
                                         f"sections")
            self.gops.append(StreamGop(self, g, gh.frame_offset, gh.num_frames))
        self.decode_seconds = 0.0  # spent decoding GOPs (bitstream to anchors and streams) so far
        self._current: tuple[int, SequenceGop] | None = None

    def decoded_gop(self, g: int, through: int | None = None) -> SequenceGop:
        """GOP g with its stream decoded through local frame `through` (None: every frame of the range), replacing
        the GOP decoded before."""
        start = time.perf_counter()
        if self._current is None or self._current[0] != g:
            self._current = None  # the previous GOP's memory goes before the next one's comes
            gh = self.header.gops[g]
            self._current = (g, GopDecoder(self.container, gop_prefix(g), gh, self.model_cfg,
                                           last_frame=self.frames[1] - 1 - gh.frame_offset))
        gop = self._current[1].through(through)
        self.decode_seconds += time.perf_counter() - start
        return gop

    @property
    def num_frames(self) -> int:
        """Frames of the whole stream (those outside `frames` are not decoded)."""
        return self.stream_frames

    @property
    def rig(self) -> Rig:
        return self.header.rig

    def gaussians(self, frame: int, camera: Camera | None = None) -> Gaussians:
        if not self.frames[0] <= frame < self.frames[1]:
            raise BitstreamError(f"{self.path}: frame {frame} is outside the decoded range {self.frames[0]}:{self.frames[1]}")
        with torch.no_grad():
            return super().gaussians(frame, camera)

    def decode_fps(self) -> float:
        """Frames per second of the whole decode: bitstream to anchors and streams, then every frame's Gaussians."""
        self._current = None  # every GOP decodes inside the timing
        start = time.perf_counter()
        for t in range(*self.frames):
            self.gaussians(t)
        return (self.frames[1] - self.frames[0]) / (time.perf_counter() - start)


__all__ = ["CodableSequence", "DecodedStream", "StreamGop", "encode_run", "gop_prefix"]
