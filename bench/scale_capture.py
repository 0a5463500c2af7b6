"""An N3DV-scale capture made without rendering: a small capture's videos upscaled and played back and forth.

`build(source, out, cameras, frames, width, height)` writes an LLFF capture (camXX.mp4 + poses_bounds.npy) to
`out`: camera k shows source camera k mod S (S source cameras), its footage scaled to width x height and played
forwards then backwards until `frames` frames, with the calibration scaled to the new size. Cameras beyond the
source's repeat its poses (the work per camera is what a bench measures, not the geometry). H.264 `ultrafast`
keeps building quick; a keyframe every 30 frames as cameras record. A folder that already holds the same build
(its `scale_capture.json`) is reused.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from fractions import Fraction

import av
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gifstream_engine.capture import load_capture  # noqa: E402

STAMP = "scale_capture.json"


def played_back_and_forth(num_source: int, frames: int) -> list[int]:
    """Source frame index of each output frame: 0, 1, ..., S-1, S-2, ..., 1, 0, 1, ... (a ping-pong loop)."""
    period = max(1, 2 * num_source - 2)
    return [t % period if t % period < num_source else period - t % period for t in range(frames)]


def write_camera(path: str, footage: np.ndarray, order: list[int], width: int, height: int, fps: float) -> None:
    """footage (S, h, w, 3) uint8 -> `path` (H.264), frames in `order`, each scaled to width x height."""
    scaled = {}
    tmp = path + ".part.mp4"
    with av.open(tmp, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18", "g": "30"}
        for index in order:
            if index not in scaled:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(footage[index]), format="rgb24")
                scaled[index] = frame.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC")
            frame = scaled[index]
            frame.pts = None
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)


def build(source: str, out: str, cameras: int = 20, frames: int = 300, width: int = 1352, height: int = 1014) -> str:
    """The capture folder `out` (built unless it already holds this build)."""
    spec = {"source": os.path.abspath(source), "cameras": cameras, "frames": frames, "width": width, "height": height}
    stamp = os.path.join(out, STAMP)
    if os.path.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == spec:
                return out
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    small = load_capture(source)
    from gifstream_engine.capture.llff import w2c_to_llff  # the one place LLFF rows are made

    order = played_back_and_forth(small.num_frames, frames)
    rows = []
    near, far = 0.5, 20.0
    for k in range(cameras):
        cam = small.cameras[k % len(small.cameras)]
        write_camera(os.path.join(out, f"cam{k:02d}.mp4"), small.frames(k % len(small.cameras)), order, width, height,
                     small.fps)
        focal = float(cam.K[0, 0]) * width / cam.width
        rows.append(w2c_to_llff(cam.w2c, height, width, focal, near, far))
    np.save(os.path.join(out, "poses_bounds.npy"), np.stack(rows))
    with open(stamp, "w") as f:
        json.dump(spec, f)
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="1352x1014")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    print(build(args.source, args.out, args.cameras, args.frames, w, h))
