"""The exact compositing layer's formats and pixel rules: a sequence rasterised from a scene camera into a
multilayer EXR sequence that Blender's compositor reads as a render pass (RGBA + Z), so CG and capture occlude
each other by depth. `gifstream render-layer` (gifstream_engine/layer.py) runs it over a sequence.

Input, a cameras JSON (the Blender add-on writes it; `read_cameras` checks it):
    {"format": "gifstream-layer-cameras", "version": 1,
     "start_frame": 1, "scene_fps": 24.0, "stream_fps": 30.0,      # the proxy's frame mapping (sequence_files)
     "capture_to_world": 4x4,                                        # the capture's placement (similarity only)
     "frames": [{"frame": 1, "width": W, "height": H, "K": 3x3, "w2c": 4x4 (world, OpenCV axes),
                 "capture_to_world": 4x4 (optional: this frame's placement, when the capture is animated)}, ...]}
Scene frame f shows stream frame floor((f - start_frame) * stream_fps / scene_fps + 1e-4), held at the first and
last frame outside the stream: the same mapping as the add-on's Geometry Nodes proxy.

Output, one file per scene frame, `<out>/<prefix><frame:04d>.exr` (written atomically), float32, ZIP:
    ViewLayer.Combined.R/G/B/A  premultiplied, scene-linear Rec.709. The rasteriser blends display-encoded colours
                                (as 3DGS trains them); the blended colour is unpremultiplied, decoded with the sRGB
                                curve and premultiplied again, so the pixel is what the engine shows, in linear light.
    ViewLayer.Depth.Z           planar distance along the camera's view axis in world units (Blender's Z pass): the
                                rasteriser's expected depth (alpha-weighted camera z / alpha) times the capture's
                                scale; BACKGROUND_DEPTH where no Gaussian covers the pixel.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np

from .. import validate
from ..capture.camera import Camera
from ..errors import GIFStreamError
from ..fileio import atomic_path, read_input

CAMERAS_FORMAT, CAMERAS_VERSION = "gifstream-layer-cameras", 1
LAYER, COMBINED, DEPTH = "ViewLayer", "Combined", "Depth"
CHANNELS = tuple(f"{LAYER}.{COMBINED}.{c}" for c in "RGBA") + (f"{LAYER}.{DEPTH}.Z",)
BACKGROUND_DEPTH = 1e10  # what Blender's Z pass holds where nothing was hit
MIN_ALPHA = 1e-6  # below this a pixel is background: its depth would be noise
FRAME_EPSILON = 1e-4  # as blender_addon/core/sequence_files.py: a scene frame landing on a stream frame up to float error
DEFAULT_PREFIX = "layer_"
SIMILARITY_TOLERANCE = 1e-4


class LayerError(GIFStreamError):
    """The compositing layer's inputs (cameras file, sequence, placement) are not what it needs."""


@dataclasses.dataclass(frozen=True)
class LayerCameras:
    frames: list[tuple[int, Camera, np.ndarray]]  # (scene frame, camera in world coordinates, (4, 4) capture_to_world)
    start_frame: int
    scene_fps: float
    stream_fps: float | None  # None: the sequence's own rate


def stream_frame(scene_frame: int, start_frame: int, stream_fps: float, scene_fps: float, count: int) -> int:
    """The stream frame shown at a scene frame: fps mapping, start offset, hold outside the range."""
    t = math.floor((scene_frame - start_frame) * stream_fps / scene_fps + FRAME_EPSILON)
    return min(max(t, 0), count - 1)


MAX_CAMERAS_BYTES = 256 << 20  # a cameras file: about 1 KiB per scene frame, at most 10**6 + 1 frames


def read_cameras(path: str) -> LayerCameras:
    data = read_input(path, "the cameras file", LayerError, MAX_CAMERAS_BYTES)  # a regular file, bounded
    try:
        spec = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LayerError(f"{path}: not JSON ({exc})") from exc
    spec = validate.mapping(spec, path, LayerError)
    if spec.get("format") != CAMERAS_FORMAT or spec.get("version") != CAMERAS_VERSION:
        raise LayerError(f"{path}: expected \"format\": \"{CAMERAS_FORMAT}\", \"version\": {CAMERAS_VERSION}, got "
                         f"{spec.get('format')!r} version {spec.get('version')!r}")
    start = validate.number(spec.get("start_frame", 1), f"{path}: start_frame", LayerError, integer=True)
    scene_fps = validate.number(validate.field(spec, "scene_fps", path, LayerError), f"{path}: scene_fps", LayerError,
                                above=0.0, maximum=1000.0)
    stream_fps = spec.get("stream_fps")
    if stream_fps is not None:
        stream_fps = validate.number(stream_fps, f"{path}: stream_fps", LayerError, above=0.0, maximum=1000.0)
    placement = validate.array(spec.get("capture_to_world", np.eye(4).tolist()), f"{path}: capture_to_world",
                               LayerError, (4, 4))
    entries = validate.sequence(validate.field(spec, "frames", path, LayerError), f"{path}: frames", LayerError)
    if not entries:
        raise LayerError(f"{path}: frames is empty; expected one camera per scene frame to render")
    frames, seen = [], set()
    for i, entry in enumerate(entries):
        what = f"{path}: frames[{i}]"
        entry = validate.mapping(entry, what, LayerError)
        frame = validate.number(validate.field(entry, "frame", what, LayerError), f"{what}.frame", LayerError,
                                integer=True, minimum=0, maximum=10**6)
        if frame in seen:
            raise LayerError(f"{what}: scene frame {frame} appears twice")
        seen.add(frame)
        try:
            camera = Camera.from_json({**entry, "name": f"frame {frame}"})
        except GIFStreamError as exc:
            raise LayerError(f"{what}: {exc}") from exc
        if "capture_to_world" in entry:
            here = validate.array(entry["capture_to_world"], f"{what}.capture_to_world", LayerError, (4, 4))
        else:
            here = placement
        frames.append((frame, camera, here))
    return LayerCameras(frames, start, scene_fps, stream_fps)


def capture_camera(camera: Camera, capture_to_world: np.ndarray) -> tuple[Camera, float]:
    """The world camera seen from the capture's own coordinates, and the capture's scale (world units per capture
    unit). With capture_to_world = [s R | b] a world point is X = s R x + b, so camera z in world units is s times
    the z of the camera [R_c R | (R_c b + t_c) / s] in capture units, which projects every point identically."""
    linear, offset = capture_to_world[:3, :3], capture_to_world[:3, 3]
    if abs(capture_to_world[3] - [0, 0, 0, 1]).max() > SIMILARITY_TOLERANCE:
        raise LayerError(f"the capture's placement has a projective last row {capture_to_world[3].tolist()}")
    det = np.linalg.det(linear)
    if det <= 0:
        raise LayerError(f"the capture's placement is mirrored or flat (determinant {det:.4g}); scale it by "
                         f"positive values")
    scale = det ** (1 / 3)
    rotation = linear / scale
    if np.abs(rotation.T @ rotation - np.eye(3)).max() > SIMILARITY_TOLERANCE * 10:
        sizes = np.linalg.norm(linear, axis=0)
        raise LayerError(f"the capture is scaled unevenly (axis scales {np.round(sizes, 4).tolist()}) or sheared; "
                         f"the compositing layer needs one uniform scale on the sequence's empty")
    w2c = np.eye(4)
    w2c[:3, :3] = camera.w2c[:3, :3] @ rotation
    w2c[:3, 3] = (camera.w2c[:3, :3] @ offset + camera.w2c[:3, 3]) / scale
    return dataclasses.replace(camera, w2c=w2c), float(scale)


# -- pixels and files ------------------------------------------------------------------------------------------

def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """The sRGB transfer function's inverse (IEC 61966-2-1), on values clamped to [0, 1]."""
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def layer_channels(rgb: np.ndarray, alpha: np.ndarray, depth: np.ndarray, scale: float = 1.0) -> dict[str, np.ndarray]:
    """The EXR channels of one frame from the rasteriser's premultiplied display colour (H, W, 3), alpha (H, W, 1)
    and expected depth (H, W, 1) in capture units."""
    alpha = np.clip(alpha[..., 0].astype(np.float64), 0.0, 1.0)
    covered = alpha >= MIN_ALPHA
    straight = np.where(covered[..., None], rgb / np.maximum(alpha, MIN_ALPHA)[..., None], 0.0)
    linear = srgb_to_linear(straight) * alpha[..., None]
    z = np.where(covered, depth[..., 0].astype(np.float64) * scale, BACKGROUND_DEPTH)
    planes = [linear[..., 0], linear[..., 1], linear[..., 2], alpha, z]
    return {name: np.ascontiguousarray(p, dtype=np.float32) for name, p in zip(CHANNELS, planes)}


def write_exr(path: str, channels: dict[str, np.ndarray]) -> None:
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with atomic_path(path) as tmp:
        with OpenEXR.File(header, channels) as exr:
            exr.write(tmp)
        fd = os.open(tmp, os.O_RDONLY)  # on disk before the rename makes it visible
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_exr(path: str) -> dict[str, np.ndarray]:
    """Every channel of an EXR by its full name (H, W) -- the inverse of `write_exr`, for checks and tests."""
    import OpenEXR

    with OpenEXR.File(path, separate_channels=True) as exr:
        return {name: np.array(channel.pixels) for name, channel in exr.channels().items()}


def frame_path(out: str, frame: int, prefix: str = DEFAULT_PREFIX) -> str:
    return os.path.join(out, f"{prefix}{frame:04d}.exr")
