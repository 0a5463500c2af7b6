"""Small image helpers on PyAV (no extra imaging dependency)."""

from __future__ import annotations

import av
import numpy as np

from .fileio import atomic_path


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] or uint8 (H, W, 3) -> contiguous uint8."""
    if image.dtype != np.uint8:
        image = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


def resize(image: np.ndarray, width: int, height: int, interpolation: str = "BICUBIC") -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(to_uint8(image), format="rgb24")
    return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation=interpolation)


def write_png(path: str, image: np.ndarray, compression: int | None = None) -> None:
    """Write an RGB image atomically (temporary name, then rename); `compression` 0-9 (zlib's level; default: the
    encoder's), 1 for scratch images read once (three times faster than the default at 1352x1014)."""
    image = to_uint8(image)
    with atomic_path(path) as tmp, av.open(tmp, "w", format="image2") as out:
        stream = out.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "rgb24"
        if compression is not None:
            stream.codec_context.options = {"compression_level": str(int(compression))}
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def read_png(path: str) -> np.ndarray:
    with av.open(path) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")
