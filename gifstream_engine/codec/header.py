"""The `.gifs` header as typed, checked values: `StreamHeader` and one `GopHeader` per GOP.

The encoder builds both whole and writes `StreamHeader.to_json()`; the decoder, `gifstream info` and the CLI read
them with `StreamHeader.read` / `parse`, the one place a header is checked. Every value is checked (type, finiteness, range) before the decoder allocates anything it implies, and what the
values imply together -- anchors x frames x stream channels, model widths -- must fit a memory budget that
grows with the file's size: a few bytes of header cannot ask for gigabytes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import validate
from ..capture.camera import Camera, Rig
from ..errors import BitstreamError
from ..model import ModelConfig, validate_model
from ..model.config import LEGACY_KNN_RULE
from .container import Container

FORMAT = "gifstream-4dgs"
MAX_FRAMES = 1_000_000
MAX_FPS = 1000.0
MAX_CAMERAS = 1024
MAX_IMAGE_SIDE = validate.MAX_IMAGE_SIDE  # cameras are bounded where they are made (`Camera`, `validate.image_size`)
MAX_SYMBOL = 2**30  # rANS symbol ranges (int32 on the coder's side)
MAX_KEY = 2**40  # octree key origin
BASE_BUDGET = 512 * 2**20  # bytes any stream may use to decode ...
BYTES_PER_FILE_BYTE = 4096  # ... plus this many per byte of the file


@dataclasses.dataclass(frozen=True)
class GopHeader:
    frame_offset: int
    num_frames: int
    num_anchors: int
    num_dynamic: int
    voxel_size: float
    key_origin: tuple[int, int, int]
    octree_depth: int
    feat_step: float
    geo_step: float
    ranges: dict[str, tuple[int, int]]  # rANS symbol range [lo, hi] of each coded group (feat, geo, mask, stream)
    grid_side: int  # side of the stream grid of dynamic anchors (0: none)

    def to_json(self) -> dict:
        return {"frame_offset": self.frame_offset, "num_frames": self.num_frames, "num_anchors": self.num_anchors,
                "num_dynamic": self.num_dynamic, "voxel_size": self.voxel_size, "key_origin": list(self.key_origin),
                "octree_depth": self.octree_depth, "feat_step": self.feat_step, "geo_step": self.geo_step,
                "ranges": {name: list(rng) for name, rng in self.ranges.items()}, "grid_side": self.grid_side}

    @staticmethod
    def parse(gh, what: str) -> "GopHeader":
        gh = validate.mapping(gh, what, BitstreamError)
        get = lambda key: validate.field(gh, key, what, BitstreamError)  # noqa: E731
        num = lambda key, **rule: validate.number(get(key), f"{what}: {key}", BitstreamError, **rule)  # noqa: E731
        n = num("num_anchors", integer=True, minimum=1)
        origin = validate.sequence(get("key_origin"), f"{what}: key_origin", BitstreamError)
        if len(origin) != 3:
            raise BitstreamError(f"{what}: key_origin: expected 3 integers, got {len(origin)}")
        ranges = {}
        for name, rng in validate.mapping(get("ranges"), f"{what}: ranges", BitstreamError).items():
            pair = validate.sequence(rng, f"{what}: ranges.{name}", BitstreamError)
            if len(pair) != 2:
                raise BitstreamError(f"{what}: ranges.{name}: expected [lo, hi], got {pair}")
            lo, hi = (validate.number(v, f"{what}: ranges.{name}", BitstreamError, integer=True, minimum=-MAX_SYMBOL,
                                      maximum=MAX_SYMBOL) for v in pair)
            if lo > hi:
                raise BitstreamError(f"{what}: ranges.{name}: expected lo <= hi, got [{lo}, {hi}]")
            ranges[name] = (lo, hi)
        return GopHeader(
            frame_offset=num("frame_offset", integer=True, minimum=0, maximum=MAX_FRAMES),
            num_frames=num("num_frames", integer=True, minimum=1, maximum=MAX_FRAMES),
            num_anchors=n,
            num_dynamic=num("num_dynamic", integer=True, minimum=0, maximum=n),
            voxel_size=num("voxel_size", above=0.0, maximum=1e6),
            key_origin=tuple(validate.number(v, f"{what}: key_origin", BitstreamError, integer=True, minimum=-MAX_KEY,
                                             maximum=MAX_KEY) for v in origin),
            octree_depth=num("octree_depth", integer=True, minimum=1, maximum=21),
            feat_step=num("feat_step", above=0.0, maximum=1e6),
            geo_step=num("geo_step", above=0.0, maximum=1e6),
            ranges=ranges,
            grid_side=num("grid_side", integer=True, minimum=0, maximum=2**20),
        )


@dataclasses.dataclass(frozen=True)
class StreamHeader:
    num_frames: int
    model: ModelConfig
    train: dict  # the training configuration the stream came from (informational; `downscale` is checked)
    rig: Rig  # fps, scene bounds and cameras (float32 precision): the stream is viewable without its capture
    gops: list[GopHeader]  # tiling frames 0..num_frames-1 in order

    @property
    def fps(self) -> float:
        return self.rig.fps

    @property
    def cameras(self) -> list[Camera]:
        return self.rig.cameras

    @property
    def train_downscale(self) -> float:
        """The image downscale the model was trained at: the capture resolution to compare it with."""
        return self.train["downscale"]

    def to_json(self) -> dict:
        """The header as the container stores it (floats of the rig cut to float32: compact, what rendering uses)."""
        rig = self.rig.to_json()
        out = {"format": FORMAT, "fps": rig["fps"], "num_frames": self.num_frames, "cameras": _float32(rig["cameras"]),
               "model": dataclasses.asdict(self.model), "train": self.train, "gops": [g.to_json() for g in self.gops]}
        if rig["scene_bounds"] is not None:
            out["scene_bounds"] = _float32(rig["scene_bounds"])
        return out

    @staticmethod
    def read(path: str) -> tuple["StreamHeader", Container]:
        """The checked header of the `.gifs` file at `path`, and its container (sections read on demand)."""
        container = Container(path)
        return StreamHeader.parse(container.header, path, container.size), container

    @staticmethod
    def parse(h, path: str, file_size: int) -> "StreamHeader":
        h = validate.mapping(h, f"{path}: header", BitstreamError)
        if h.get("format") != FORMAT:
            raise BitstreamError(f"{path}: header format {h.get('format')!r}, expected {FORMAT!r}")
        get = lambda key: validate.field(h, key, f"{path}: header", BitstreamError)  # noqa: E731
        rig = Rig.from_json(h, f"{path}: header", BitstreamError, sep=" ", max_fps=MAX_FPS, require_bounds=False,
                            max_cameras=MAX_CAMERAS)  # the rig's fields are the header's own
        num_frames = validate.number(get("num_frames"), f"{path}: header num_frames", BitstreamError, integer=True,
                                     minimum=1, maximum=MAX_FRAMES)
        model_fields = validate.mapping(get("model"), f"{path}: header model", BitstreamError)
        known = {f.name for f in dataclasses.fields(ModelConfig)}
        if set(model_fields) - known:
            raise BitstreamError(f"{path}: header model has unknown fields {sorted(set(model_fields) - known)}")
        # format 1.0 headers predate knn_rule: their streams were trained with the legacy rule
        model = ModelConfig(**{"knn_rule": LEGACY_KNN_RULE, **model_fields})
        validate_model(model, f"{path}: header model", BitstreamError)
        train = dict(validate.mapping(get("train"), f"{path}: header train", BitstreamError))
        train["downscale"] = validate.number(validate.field(train, "downscale", f"{path}: header train", BitstreamError),
                                             f"{path}: header train.downscale", BitstreamError, minimum=1.0, maximum=1024.0)
        gop_list = validate.sequence(get("gops"), f"{path}: header gops", BitstreamError, min_length=1)
        if len(gop_list) > num_frames:
            raise BitstreamError(f"{path}: header lists {len(gop_list)} GOPs for {num_frames} frames")
        gops = [GopHeader.parse(gh, f"{path}: header gops[{g}]") for g, gh in enumerate(gop_list)]
        expected = 0
        for gop in gops:
            if gop.frame_offset != expected:
                raise BitstreamError(f"{path}: GOPs do not tile the frames (GOP at {gop.frame_offset} of "
                                     f"{gop.num_frames} frames)")
            expected += gop.num_frames
        if expected != num_frames:
            raise BitstreamError(f"{path}: GOPs cover {expected} frames, the header says {num_frames}")
        header = StreamHeader(num_frames, model, train, rig, gops)
        header.check_budget(path, file_size)
        return header

    def check_budget(self, path: str, file_size: int) -> None:
        """Refuse a header whose GOPs would need more memory to decode than a file of this size can justify."""
        budget = BASE_BUDGET + BYTES_PER_FILE_BYTE * file_size
        m = self.model
        for g, gop in enumerate(self.gops):
            need = decode_bytes(m, gop)
            if need > budget:
                raise BitstreamError(
                    f"{path}: GOP {g} would need {need / 2**20:.0f} MiB to decode ({gop.num_anchors} anchors x "
                    f"{gop.num_frames} frames, feat_dim {m.feat_dim}, hidden {m.hidden}); a {file_size}-byte file "
                    f"justifies at most {budget / 2**20:.0f} MiB")


def decode_bytes(m: ModelConfig, gop: GopHeader) -> int:
    """A generous estimate of the memory one GOP takes to decode (float64 coder temporaries included)."""
    per_anchor = 8 * 8 * (m.feat_dim + 6 + 3 * m.num_offsets + 4 + m.knn) + 4 * gop.num_frames * m.stream_dim
    width = m.feat_dim + m.stream_dim + 2 * m.time_freqs
    decoders = 8 * 4 * (width * m.hidden + m.hidden * 10 * m.num_offsets) + 8 * 64 * m.feat_dim * 16
    grid = 8 * 8 * gop.grid_side ** 2 * m.stream_dim
    return gop.num_anchors * per_anchor + decoders + grid


def _float32(value):
    """Floats of a JSON value cut to float32 precision (what the renderer uses), for a compact header."""
    if isinstance(value, float):
        return float(repr(np.float32(value)))
    if isinstance(value, dict):
        return {k: _float32(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_float32(v) for v in value]
    return value
