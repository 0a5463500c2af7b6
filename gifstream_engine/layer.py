"""`gifstream render-layer`: a sequence, opened by path (sources.py), rasterised from the scene cameras of a
cameras file into the compositing layer's EXR sequence (the format and the pixel rules: render/exr_layer.py)."""

from __future__ import annotations

import os
import re
import time

import torch

from .codec.header import StreamHeader
from .errors import RenderError
from .eval.placement import OnDevice
from .fileio import Input, output_dir
from .render import render
from .render.device import run_device
from .render.exr_layer import (DEFAULT_PREFIX, LayerError, capture_camera, frame_path, layer_channels, read_cameras,
                               stream_frame, write_exr)
from .sources import is_bitstream, open_frames, source_input


def render_layer(sequence: str, cameras_path: str, out: str, events=None, backend: str = "auto",
                 device: str = "auto", prefix: str = DEFAULT_PREFIX, log=print) -> dict:
    """Rasterise `sequence` (a .gifs file, a run folder or a PLY folder) from every camera of `cameras_path` into
    `out`; returns a summary for the caller. `events` (an EventWriter) gets one progress event per frame; else
    `log` gets a line per frame. `device` (auto, cpu or cuda) as `run_device` decides it."""
    spec = read_cameras(cameras_path)
    if not re.fullmatch(r"[A-Za-z0-9_.-]*", prefix):
        raise LayerError(f"prefix {prefix!r}: use letters, digits, '_', '.' or '-'")
    output_dir(out, "compositing layer folder",
               inputs=[source_input(sequence), Input(cameras_path, "the cameras file")])
    cameras = []
    for frame, camera, placement in spec.frames:
        try:
            cameras.append((frame, *capture_camera(camera, placement)))
        except LayerError as exc:
            raise LayerError(f"scene frame {frame}: {exc}") from exc
    if os.path.exists(sequence) and is_bitstream(sequence):
        # a stream: its length and rate from the header, decoded once the frames are known
        header, _ = StreamHeader.read(sequence)
        source, count, fps = None, header.num_frames, header.fps
    else:
        source, _, count = open_frames(sequence)
        fps = source.fps
    stream_fps = spec.stream_fps or fps
    if stream_fps is None:
        raise LayerError(f"{cameras_path}: stream_fps is needed for {sequence} (a PLY folder has no frame rate)")
    mapped = [(frame, stream_frame(frame, spec.start_frame, stream_fps, spec.scene_fps, count), cam, scale)
              for frame, cam, scale in cameras]
    if source is None:  # decoding is autoregressive within a GOP: up to the last frame shown
        source, _, _ = open_frames(sequence, (0, max(t for _, t, _, _ in mapped) + 1))
    placed = OnDevice(source, run_device(source, device))
    total, start = len(mapped), time.perf_counter()
    written = []
    try:
        for i, (frame, t, camera, scale) in enumerate(mapped):
            with torch.no_grad():
                gaussians = placed.gaussians(t, camera)
                try:
                    result = render(gaussians, camera, background=None, backend=backend)
                except RenderError as exc:
                    raise LayerError(f"scene frame {frame}: {exc}") from exc
            channels = layer_channels(result.rgb.cpu().numpy(), result.alpha.cpu().numpy(), result.depth.cpu().numpy(), scale)
            path = frame_path(out, frame, prefix)
            write_exr(path, channels)
            written.append(path)
            if events is not None:
                events.progress("layer", i + 1, total, frame=frame, stream_frame=t, path=path)
            elif log is not None:
                log(f"scene frame {frame} (stream frame {t}): {len(gaussians)} Gaussians -> {path}")
    finally:
        placed.release()
    return {"frames": total, "out": out, "first": written[0], "seconds": time.perf_counter() - start,
            "stream_fps": stream_fps, "stream_frames": count}
