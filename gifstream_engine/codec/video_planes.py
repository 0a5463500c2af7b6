"""The traditional-codec path: the same integer symbols as the learned coder, as planes coded by x265.

Time-invariant symbols are laid on the 2D-sorted grid of all kept anchors (sorted by position and feature),
one grey plane per attribute channel: a "video" whose frames are the channels. The feature stream uses the
learned coder's grid of dynamic anchors, its P channels side by side, one video frame per time step. Both
are coded losslessly by libx265 (PyAV) in 8, 10 or 12-bit grey, so the decoded symbols, and therefore the
decoded sequence, are identical to the learned coder's: the sizes compare at equal quality.
"""

from __future__ import annotations

import dataclasses
import io

import av
import numpy as np

from .sort2d import sort_to_grid

MIN_SIDE = 16
BIT_DEPTHS = ((8, "gray"), (10, "gray10le"), (12, "gray12le"))


@dataclasses.dataclass
class PlaneVideo:
    frames: np.ndarray  # (F, H, W) uint16 symbols shifted to >= 0
    offset: int  # the symbol that maps to 0
    bit_depth: int
    pix_fmt: str


def to_plane_video(planes: np.ndarray) -> PlaneVideo:
    """(F, H, W) integer symbols -> unsigned frames of the smallest bit depth that holds them, padded to an
    even size of at least MIN_SIDE (x265 refuses smaller pictures)."""
    lo, hi = int(planes.min()), int(planes.max())
    for depth, pix_fmt in BIT_DEPTHS:
        if hi - lo < (1 << depth):
            break
    else:
        raise ValueError(f"symbols span {hi - lo + 1} values, more than x265's 12 bits")
    f, h, w = planes.shape
    frames = np.zeros((f, max(MIN_SIDE, h + h % 2), max(MIN_SIDE, w + w % 2)), dtype=np.uint16)
    frames[:, :h, :w] = planes - lo
    return PlaneVideo(frames, lo, depth, pix_fmt)


def grid_planes(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values (N, D) of the anchors on `grid` (S, S; -1 empty) -> (D, S, S), empty cells copy a neighbour."""
    filled = grid >= 0
    planes = np.zeros((values.shape[1], *grid.shape), dtype=np.int64)
    planes[:, filled] = values[grid[filled]].T
    rows, cols = np.nonzero(~filled)
    for r, c in zip(rows, cols):  # few cells (at most 2 sqrt(N)): repeat the previous filled cell
        planes[:, r, c] = planes[:, r, c - 1] if c > 0 else planes[:, r - 1, c] if r > 0 else 0
    return planes


def encode_x265_lossless(video: PlaneVideo) -> bytes:
    """The raw HEVC bitstream (Annex B, no container) coding `video` losslessly; `decode_x265` reads it back."""
    out = io.BytesIO()
    with av.open(out, "w", format="hevc") as container:
        stream = container.add_stream("libx265", rate=30)
        stream.width, stream.height = video.frames.shape[2], video.frames.shape[1]
        stream.pix_fmt = video.pix_fmt
        stream.options = {"x265-params": "lossless=1:info=0:log-level=none", "preset": "slow"}
        for plane in video.frames:
            data = plane.astype(np.uint8) if video.bit_depth == 8 else plane.astype("<u2")
            frame = av.VideoFrame.from_ndarray(data, format=video.pix_fmt)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def decode_x265(payload: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(payload), "r", format="hevc") as container:
        return [frame.to_ndarray() for frame in container.decode(video=0)]


def x265_sizes(symbols: dict) -> dict[str, int]:
    """Lossless x265 bytes of the time-invariant planes and of the stream planes (see `encode_gop(symbols=...)`)."""
    anchors, xyz = symbols["anchors"], symbols["xyz"]
    grid = sort_to_grid(np.concatenate([xyz, anchors], 1))
    out = {"time_invariant": len(encode_x265_lossless(to_plane_video(grid_planes(grid, anchors))))}
    if "stream" in symbols:
        stream, cells = symbols["stream"], symbols["stream_grid"]
        d, t, p = stream.shape
        per_frame = [grid_planes(cells, stream[:, i, :]) for i in range(t)]  # (P, S, S) each
        mosaic = np.stack([np.concatenate(list(f), axis=1) for f in per_frame])  # (T, S, P*S)
        out["stream"] = len(encode_x265_lossless(to_plane_video(mosaic)))
    return out
