"""Coding one GOP: the encoder and decoder share every step of the walk, so they cannot disagree.

Sections of GOP g (prefix `gop_{g:03d}/`):
  decoders     LZMA of raw little-endian float16 weights of the four decoder MLPs and of the entropy models (the
               encoder itself codes with the float16-rounded entropy models, as the decoder will)
  geometry     anchor voxel keys, octree-coded (coding order = Morton order)
  anchors      rANS: feature chunks, masks M_de/M_dy/M_knn, log-scales and offsets (adaptive steps)
  stream_grid  the 2D grid of dynamic anchors (cell -> index among them), fixed-width bits
  stream/TTTT  rANS: frame T of the feature stream on that grid, predicted from frames T-1..T-3
Stream frames depend on the three before them: decoding frame T decodes frames 0..T of its GOP.
The entropy models run in float64 on the CPU with snapped (mu, sigma): identical on both sides.
"""

from __future__ import annotations

import copy
import lzma
import math

import numpy as np
import torch

from ..errors import BitstreamError
from ..model import MASK_STEP, AnchorValues, DecodeState, GIFStreamModel, ModelConfig
from . import octree
from .container import Container, decompress, pack_arrays, unpack_arrays
from ..sequence import SequenceGop
from .header import GopHeader
from .entropy_models import CODED_MASKS, MASK_LEVELS, STREAM_CONTEXT, EntropyModels, snap_for_coding
from .rans import SymbolReader, SymbolWriter
from .rate import stream_grid

DECODER_MODULES = ("opacity_mlp", "color_mlp", "cov_mlp", "motion_mlp")


DECODED_STATE = DecodeState(use_stream=True, quantize="none")  # every value is already quantised


# --- the walk shared by encoder and decoder ------------------------------------------------------
class _Encoding:
    """Symbol source of the encoder: rounds the true values and records them for the writer."""

    def __init__(self, writer: SymbolWriter):
        self.writer = writer

    def symbols(self, name: str, y: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = torch.round(y)
        self.writer.add(name, s.numpy(), mu.numpy(), sigma.numpy())
        return s


class _Decoding:
    def __init__(self, reader: SymbolReader):
        self.reader = reader

    def symbols(self, name: str, y, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.reader.read(name, mu.numpy(), sigma.numpy()).astype(np.float64)).reshape(mu.shape)


@torch.no_grad()
def _walk_anchors(em: EntropyModels, n: int, feat_step: float, geo_step: float, io, raw: dict | None):
    """Feature chunks, then masks and geometry conditioned on the feature. raw (encoder only) holds float64
    tensors feat (N, C), geo (N, 6 + 3K) and levels (N, 3); returns the quantised values and mask levels."""
    decoded = torch.zeros(n, 0, dtype=torch.float64)
    for j, (a, b) in enumerate(em.feature.chunks):
        mu, sigma, q = em.feature.chunk_params(j, decoded, feat_step)
        mu_s, sigma_s = snap_for_coding(mu / q, sigma / q)
        s = io.symbols("feat", None if raw is None else raw["feat"][:, a:b] / q, mu_s, sigma_s)
        decoded = torch.cat([decoded, s * q], -1)
    (mu, sigma, q), (mask_mu, mask_sigma) = em.geometry.params(decoded, geo_step)
    levels = io.symbols("mask", None if raw is None else raw["levels"], *snap_for_coding(mask_mu, mask_sigma))
    geo = io.symbols("geo", None if raw is None else raw["geo"] / q, *snap_for_coding(mu / q, sigma / q)) * q
    return decoded, geo, levels


@torch.no_grad()
def _walk_stream_frame(em: EntropyModels, history: list[torch.Tensor], de_plane, occupancy, io, raw):
    """One frame (P, S, S) in steps; history holds the previous frames, newest first."""
    zeros = torch.zeros(em.stream.stream_dim, *occupancy.shape, dtype=torch.float64)
    context = [history[i] if i < len(history) else zeros for i in range(STREAM_CONTEXT)]
    mu, sigma = snap_for_coding(*em.stream.params(torch.stack(context), de_plane, occupancy))
    filled = occupancy.bool()
    frame = torch.zeros_like(mu)
    frame[:, filled] = io.symbols("stream", None if raw is None else raw[:, filled], mu[:, filled], sigma[:, filled])
    return frame


class _StreamWalk:
    """The frames of a stream grid in coding order, one `step` at a time: each frame is coded from the frames before
    it (its history), so a decoder can stop at any frame and go on later."""

    def __init__(self, em: EntropyModels, cells: np.ndarray, de_values: torch.Tensor):
        self.em = em
        self.occupancy = torch.as_tensor(cells >= 0, dtype=torch.float64)
        self.idx = torch.as_tensor(np.clip(cells, 0, None))
        self.de_plane = de_values.double()[self.idx] * self.occupancy
        self.history: list[torch.Tensor] = []
        self.t = 0  # the next frame

    def step(self, io, stream_steps: torch.Tensor | None = None) -> torch.Tensor:
        """Code frame `t` through io (the encoder passes the stream in steps, (N, T, P)); returns it (P, S, S)."""
        raw = None if stream_steps is None else stream_steps[self.idx, self.t].permute(2, 0, 1) * self.occupancy
        frame = _walk_stream_frame(self.em, self.history, self.de_plane, self.occupancy, io, raw)
        self.history = [frame, *self.history[:STREAM_CONTEXT - 1]]
        self.t += 1
        return frame


def _code_stream(em: EntropyModels, cells: np.ndarray, de_values: torch.Tensor, count: int, make_io, stream_steps=None):
    """Walk frames 0..count-1 of the stream grid; returns the io object of each."""
    walk = _StreamWalk(em, cells, de_values)
    ios = []
    for t in range(count):
        ios.append(make_io(t))
        walk.step(ios[-1], stream_steps)
    return ios


def _double(entropy: EntropyModels) -> EntropyModels:
    """The entropy models as both sides run them: weights rounded to the stored float16, arithmetic in float64."""
    em = copy.deepcopy(entropy).cpu().eval()
    with torch.no_grad():
        for p in em.parameters():
            p.copy_(p.half().float())
    return em.double()


def _pack_grid(cells: np.ndarray, count: int) -> bytes:
    width = max(1, int(count).bit_length())  # cell values 0..count (0 = empty)
    values = (cells.reshape(-1) + 1).astype(">u4")
    bits = np.unpackbits(values.view(np.uint8).reshape(-1, 4), axis=1)[:, 32 - width:]
    return np.packbits(bits.reshape(-1)).tobytes()


def _unpack_grid(payload: bytes, side: int, count: int, what: str) -> np.ndarray:
    width = max(1, int(count).bit_length())
    bits = np.unpackbits(np.frombuffer(payload, np.uint8))
    if len(payload) != math.ceil(side * side * width / 8):
        raise BitstreamError(f"{what}: stream grid has {len(payload)} bytes, expected {math.ceil(side * side * width / 8)}")
    bits = bits[:side * side * width].reshape(-1, width)
    values = (bits * (1 << np.arange(width - 1, -1, -1))).sum(1) - 1
    filled = values[values >= 0]
    if np.any(values > count - 1) or len(filled) != count or len(np.unique(filled)) != count:
        raise BitstreamError(f"{what}: stream grid is not a placement of the {count} dynamic anchors")
    return values.reshape(side, side)


# --- encoder -----------------------------------------------------------------------------------
@torch.no_grad()
def encode_gop(model: GIFStreamModel, entropy: EntropyModels, state: DecodeState, prefix: str, frame_offset: int,
               symbols: dict | None = None) -> tuple[GopHeader, dict[str, bytes]]:
    """(header, sections) of one trained GOP starting at frame `frame_offset` of its sequence; `state` is the
    run's final (quantised) decode state; section names start with `prefix`.

    `symbols`, when given, receives the integer symbols as coded: `anchors` (N, C + 6 + 3K + 3) in coding order
    with their positions `xyz`, and `stream` (D, T, P) with its grid `stream_grid` (for other coders)."""
    cfg = model.cfg
    masks = {k: v.detach().cpu() for k, v in model.masks(state).items()}
    kept = torch.nonzero(masks["p"] > 0.5).squeeze(1)
    if len(kept) == 0:
        raise ValueError("every anchor of the GOP is pruned (M_p = 0): nothing to encode")
    xyz = model.anchor_xyz.detach().cpu()[kept].numpy()
    keys = np.floor(xyz.astype(np.float64) / cfg.voxel_size).astype(np.int64)
    if not np.array_equal(anchor_positions(keys, cfg.voxel_size), xyz):
        raise ValueError("anchor positions are not voxel centres of model.voxel_size; cannot code them losslessly")
    geometry, order, origin, depth = octree.encode_keys(keys)
    ids = kept[torch.as_tensor(order)]
    em = _double(entropy)
    raw = _raw_anchors(model, masks, ids)
    writer = SymbolWriter()
    _walk_anchors(em, len(ids), state.feat_step, state.geo_step, _Encoding(writer), raw)
    if symbols is not None:
        by_name = {name: [g[1].reshape(len(ids), -1) for g in writer.groups if g[0] == name] for name in ("feat", "geo", "mask")}
        symbols["anchors"] = np.concatenate([*by_name["feat"], *by_name["geo"], *by_name["mask"]], 1)
        symbols["xyz"] = xyz[order]
    ranges = writer.ranges() | {"mask": [0, MASK_LEVELS]}
    anchors_payload, _ = writer.finish(ranges)

    de_levels = raw["levels"][:, 0]
    dynamic = torch.nonzero(de_levels > 0).squeeze(1)
    sections = {f"{prefix}/decoders": lzma.compress(pack_arrays(decoder_arrays(model, entropy))), f"{prefix}/geometry": geometry,
                f"{prefix}/anchors": anchors_payload}
    ranges = {name: tuple(rng) for name, rng in ranges.items()}
    grid_side = 0
    if len(dynamic):
        stream_steps = torch.round(model.stream.detach().cpu()[ids[dynamic]].double() / state.feat_step)  # (D, T, P)
        cells = stream_grid(xyz[order][dynamic.numpy()], stream_steps.numpy())
        grid_side = cells.shape[0]
        if symbols is not None:
            symbols["stream"], symbols["stream_grid"] = stream_steps.numpy().astype(np.int64), cells
        sections[f"{prefix}/stream_grid"] = _pack_grid(cells, len(dynamic))
        ios = _code_stream(em, cells, de_levels[dynamic] * MASK_STEP, model.num_frames,
                              lambda t: _Encoding(SymbolWriter()), stream_steps)
        present = [r for r in (io.writer.ranges().get("stream") for io in ios) if r]
        ranges["stream"] = (min(r[0] for r in present), max(r[1] for r in present)) if present else (0, 0)
        for t, io in enumerate(ios):
            sections[f"{prefix}/stream/{t:04d}"] = io.writer.finish({"stream": list(ranges["stream"])})[0]
    header = GopHeader(frame_offset=frame_offset, num_frames=model.num_frames, num_anchors=len(ids),
                       num_dynamic=len(dynamic), voxel_size=cfg.voxel_size, key_origin=tuple(origin), octree_depth=depth,
                       feat_step=state.feat_step, geo_step=state.geo_step, ranges=ranges, grid_side=grid_side)
    return header, sections


def _raw_anchors(model: GIFStreamModel, masks: dict[str, torch.Tensor], ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """The encoder's float64 inputs of the anchor walk for anchors `ids` (masks on the CPU)."""
    return {
        "feat": model.feat.detach().cpu()[ids].double(),
        "geo": torch.cat([model.log_scale.detach().cpu()[ids], model.offsets.detach().cpu()[ids].reshape(len(ids), -1)], -1).double(),
        "levels": torch.stack([torch.round(masks[name][ids].double() / MASK_STEP) for name in CODED_MASKS], -1),
    }


@torch.no_grad()
def coded_anchor_values(model: GIFStreamModel, entropy: EntropyModels, state: DecodeState,
                        values: AnchorValues) -> AnchorValues:
    """`values` (the training path's quantised anchors) with every kept anchor replaced by what the bitstream
    carries: the coder's float64 walk with float16-rounded entropy models. The float32 training arithmetic
    can round a value on the other side of a half step or snap an adaptive step to the neighbouring 1/64
    octave; the trained run is evaluated with the coded values so that it renders what its bitstream decodes."""
    masks = {k: v.detach().cpu() for k, v in model.masks(state).items()}
    kept = torch.nonzero(masks["p"] > 0.5).squeeze(1)
    feat, geo, _ = _walk_anchors(_double(entropy), len(kept), state.feat_step, state.geo_step,
                                 _Encoding(SymbolWriter()), _raw_anchors(model, masks, kept))
    out = AnchorValues(values.feat.detach().clone(), values.log_scale.detach().clone(), values.offsets.detach().clone(),
                       values.masks)
    device = out.feat.device
    kept = kept.to(device)
    out.feat[kept] = feat.to(device, out.feat.dtype)
    out.log_scale[kept] = geo[:, :6].to(device, out.log_scale.dtype)
    out.offsets[kept] = geo[:, 6:].reshape(len(kept), *out.offsets.shape[1:]).to(device, out.offsets.dtype)
    return out


def decoder_arrays(model: GIFStreamModel, entropy: EntropyModels) -> dict[str, np.ndarray]:
    arrays = {f"render.{k}": v for k, v in model.state_dict().items() if k.split(".")[0] in DECODER_MODULES}
    arrays |= {f"entropy.{k}": v for k, v in entropy.state_dict().items()}
    out = {k: v.detach().cpu().half().numpy() for k, v in arrays.items()}
    bad = [k for k, v in out.items() if not np.all(np.isfinite(v))]
    if bad:
        raise ValueError(f"decoder weights {bad} do not fit float16")
    return out


def anchor_positions(keys: np.ndarray, voxel: float) -> np.ndarray:
    """float32 voxel centres, computed exactly as the trainer places anchors."""
    return ((keys + 0.5) * voxel).astype(np.float32)


# --- decoder -----------------------------------------------------------------------------------
def required_sections(prefix: str, gh, last_frame: int | None = None) -> list[str]:
    """The sections `GopDecoder` reads for GOP `prefix` (header `gh`) up to `last_frame`: a reader checks they are
    all there before decoding anything."""
    names = [f"{prefix}/geometry", f"{prefix}/decoders", f"{prefix}/anchors"]
    if gh.num_dynamic:
        count = gh.num_frames if last_frame is None else min(gh.num_frames, last_frame + 1)
        names += [f"{prefix}/stream_grid"] + [f"{prefix}/stream/{t:04d}" for t in range(count)]
    return names


class GopDecoder:
    """GOP `prefix` of a container rebuilt progressively: making it decodes the geometry, the decoders and the
    anchors' values; `through(t)` decodes the stream's frames up to t (each needs only those before it), so the
    first frame can show before the GOP's last is decoded. Frames after `last_frame` are never decoded.
    `gh` has been checked (header.py): every size below is bounded before it is allocated."""

    def __init__(self, container: Container, prefix: str, gh: GopHeader, model_cfg: ModelConfig,
                 last_frame: int | None = None):
        what = self.what = f"{container.path} [{prefix}]"
        self.container, self.prefix = container, prefix
        n, d, frames = gh.num_anchors, gh.num_dynamic, gh.num_frames
        keys = octree.decode_keys(container.read(f"{prefix}/geometry"), n, list(gh.key_origin), gh.octree_depth, what)
        xyz = anchor_positions(keys, gh.voxel_size)
        model = GIFStreamModel(xyz, None, frames, model_cfg)
        entropy = EntropyModels(model_cfg.feat_dim, model_cfg.stream_dim, model_cfg.num_offsets)
        expected = _decoder_bytes(model, entropy)
        arrays = unpack_arrays(decompress(container.read(f"{prefix}/decoders"), expected, f"{what}: decoder weights"),
                               f"{what} decoders")
        _load(model, arrays, "render.", DECODER_MODULES, what)
        _load(entropy, arrays, "entropy.", None, what)
        em = _double(entropy)
        self.ranges = {name: list(rng) for name, rng in gh.ranges.items()}
        reader = SymbolReader(container.read(f"{prefix}/anchors"), self.ranges, f"{what} anchors")
        feat, geo, levels = _walk_anchors(em, n, gh.feat_step, gh.geo_step, _Decoding(reader), None)
        reader.finish()
        if levels.min() < 0 or levels.max() > MASK_LEVELS:
            raise BitstreamError(f"{what}: mask levels outside 0..{MASK_LEVELS}")
        dynamic = torch.nonzero(levels[:, 0] > 0).squeeze(1)
        if len(dynamic) != d:
            raise BitstreamError(f"{what}: {len(dynamic)} anchors have M_de > 0, the header says {d}")
        model.stream = torch.nn.Parameter(torch.zeros(n, frames, model_cfg.stream_dim), requires_grad=False)
        self.count = 0  # stream frames to decode (none without dynamic anchors)
        if d:
            if "stream" not in self.ranges:
                raise BitstreamError(f"{what}: the header gives no symbol range for 'stream'")
            cells = _unpack_grid(container.read(f"{prefix}/stream_grid"), gh.grid_side, d, what)
            self.count = frames if last_frame is None else min(frames, last_frame + 1)
            self.walk = _StreamWalk(em, cells, levels[dynamic, 0] * MASK_STEP)
            self.filled = torch.as_tensor(cells >= 0)
            self.rows = dynamic[torch.as_tensor(cells)[self.filled]]
        self.feat_step = gh.feat_step
        masks = {name: (levels[:, i] * MASK_STEP).float() for i, name in enumerate(CODED_MASKS)}
        masks["p"] = torch.ones(n)
        values = AnchorValues(feat.float(), geo[:, :6].float().contiguous(),
                              geo[:, 6:].float().reshape(n, model_cfg.num_offsets, 3).contiguous(), masks)
        self.gop = SequenceGop(gh.frame_offset, model.eval().requires_grad_(False), DECODED_STATE, values)

    @torch.no_grad()
    def through(self, t: int | None = None) -> SequenceGop:
        """The GOP with its stream decoded through local frame t (None: every frame it decodes)."""
        stop = self.count if t is None else min(t + 1, self.count)
        while self.count and self.walk.t < stop:
            frame_t = self.walk.t
            io = _Decoding(SymbolReader(self.container.read(f"{self.prefix}/stream/{frame_t:04d}"),
                                        {"stream": self.ranges["stream"]}, f"{self.what} stream frame {frame_t}"))
            frame = self.walk.step(io)
            io.reader.finish()
            self.gop.model.stream[self.rows, frame_t] = (frame[:, self.filled].T * self.feat_step).float()
        return self.gop


def _decoder_bytes(model: GIFStreamModel, entropy: EntropyModels) -> int:
    """The most the decoders section may decompress to: float16 weights plus a generous JSON index."""
    tensors = [v for k, v in model.state_dict().items() if k.split(".")[0] in DECODER_MODULES] + list(entropy.state_dict().values())
    return 2 * sum(t.numel() for t in tensors) + 4 + 256 * len(tensors) + 4096


def _load(module: torch.nn.Module, arrays: dict, prefix: str, modules, what: str) -> None:
    expected = {k: v for k, v in module.state_dict().items() if modules is None or k.split(".")[0] in modules}
    for key, target in expected.items():
        a = arrays.get(prefix + key)
        if a is None or tuple(a.shape) != tuple(target.shape):
            raise BitstreamError(f"{what}: decoder weights {prefix + key} missing or of shape "
                                 f"{None if a is None else a.shape}, expected {tuple(target.shape)}")
        if not np.all(np.isfinite(a)):
            raise BitstreamError(f"{what}: decoder weights {prefix + key} are not finite")
        if a.dtype != np.float16:
            raise BitstreamError(f"{what}: decoder weights {prefix + key} are {a.dtype}, expected float16")
        target.copy_(torch.from_numpy(a.astype(np.float32)))
