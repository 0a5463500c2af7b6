"""The `.gifs` header as typed, checked values: `StreamHeader` and one `GopHeader` per GOP.

Every value is checked (type, finiteness, range) before the decoder allocates anything it implies, and what the
values imply together -- anchors x frames x stream channels, model widths -- must fit a memory budget that
grows with the file's size: a few bytes of header cannot ask for gigabytes.
"""

from __future__ import annotations

import dataclasses

from .. import validate
from ..capture.types import Camera
from ..errors import BitstreamError, CaptureError
from ..model.gifstream import ModelConfig
from ..train.config import validate_model

FORMAT = "gifstream-4dgs"
MAX_FRAMES = 1_000_000
MAX_FPS = 1000.0
MAX_CAMERAS = 1024
MAX_IMAGE_SIDE = 16384
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
    ranges: dict[str, tuple[int, int]]
    grid_side: int

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
    fps: float
    num_frames: int
    model: ModelConfig
    train_downscale: float
    cameras: list[Camera]
    gops: list[GopHeader]

    @staticmethod
    def parse(h, path: str, file_size: int) -> "StreamHeader":
        h = validate.mapping(h, f"{path}: header", BitstreamError)
        if h.get("format") != FORMAT:
            raise BitstreamError(f"{path}: header format {h.get('format')!r}, expected {FORMAT!r}")
        get = lambda key: validate.field(h, key, f"{path}: header", BitstreamError)  # noqa: E731
        fps = validate.number(get("fps"), f"{path}: header fps", BitstreamError, above=0.0, maximum=MAX_FPS)
        num_frames = validate.number(get("num_frames"), f"{path}: header num_frames", BitstreamError, integer=True,
                                     minimum=1, maximum=MAX_FRAMES)
        model_fields = validate.mapping(get("model"), f"{path}: header model", BitstreamError)
        known = {f.name for f in dataclasses.fields(ModelConfig)}
        if set(model_fields) - known:
            raise BitstreamError(f"{path}: header model has unknown fields {sorted(set(model_fields) - known)}")
        model = ModelConfig(**model_fields)
        validate_model(model, f"{path}: header model", BitstreamError)
        train = validate.mapping(get("train"), f"{path}: header train", BitstreamError)
        downscale = validate.number(validate.field(train, "downscale", f"{path}: header train", BitstreamError),
                                    f"{path}: header train.downscale", BitstreamError, minimum=1.0, maximum=1024.0)
        cams = validate.sequence(get("cameras"), f"{path}: header cameras", BitstreamError, min_length=1)
        if len(cams) > MAX_CAMERAS:
            raise BitstreamError(f"{path}: header lists {len(cams)} cameras, at most {MAX_CAMERAS} are supported")
        try:
            cameras = [Camera.from_json(c) for c in cams]
        except CaptureError as exc:
            raise BitstreamError(f"{path}: header cameras are invalid: {exc}") from exc
        for cam in cameras:
            if max(cam.width, cam.height) > MAX_IMAGE_SIDE:
                raise BitstreamError(f"{path}: header camera {cam.name!r} is {cam.width}x{cam.height}; "
                                     f"expected sides of at most {MAX_IMAGE_SIDE} pixels")
        if "scene_bounds" in h:
            validate.array(h["scene_bounds"], f"{path}: header scene_bounds", BitstreamError, (2, 3))
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
        header = StreamHeader(fps, num_frames, model, downscale, cameras, gops)
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
