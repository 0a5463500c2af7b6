"""Time to read a block of frames from late in a long video: seeking to its keyframe vs decoding from frame 0.

A GOP g of a capture reads frames [60 g, 60 g + 60) of every camera; decoding from the first frame costs (g + 1) * 60
decodes, seeking about 60 plus the distance to the keyframe before the block.

Usage: python bench/bench_video_read.py [--frames 300] [--width 1352] [--height 1014] [--keyint 30] [--block 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from fractions import Fraction

import av
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.results_io import write_results  # noqa: E402
from gifstream_engine.capture.video import VideoSource  # noqa: E402


def write_test_video(path: str, frames: int, width: int, height: int, keyint: int) -> None:
    """A moving gradient (cheap to make, compresses like footage), H.264 with B-frames, a keyframe every `keyint`."""
    y, x = np.mgrid[0:height, 0:width]
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(30))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(keyint), "preset": "veryfast", "crf": "20"}
        for t in range(frames):
            image = np.stack([(x + 4 * t) % 256, (y + 2 * t) % 256, (x + y + t) % 256], -1).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=1352)
    parser.add_argument("--height", type=int, default=1014)
    parser.add_argument("--keyint", type=int, default=30)
    parser.add_argument("--block", type=int, default=60)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "cam.mp4")
        write_test_video(path, args.frames, args.width, args.height, args.keyint)
        source = VideoSource(path)
        for start in range(0, args.frames, args.block):
            stop = min(start + args.block, args.frames)
            begin = time.perf_counter()
            seeking = source.read(start, stop, args.width, args.height)
            seek_s = time.perf_counter() - begin
            begin = time.perf_counter()
            with av.open(path) as container:
                sequential = np.stack(VideoSource._read_sequential(container, start, stop, args.width, args.height))
            from_start_s = time.perf_counter() - begin
            assert np.array_equal(seeking, sequential)
            rows.append({"block": f"{start}:{stop}", "seek_s": seek_s, "from_first_frame_s": from_start_s})
    print(f"{args.frames} frames {args.width}x{args.height}, keyframe every {args.keyint}")
    print(f"{'block':<10}{'seek s':>9}{'from 0 s':>10}")
    for row in rows:
        print(f"{row['block']:<10}{row['seek_s']:>9.2f}{row['from_first_frame_s']:>10.2f}")
    write_results("bench_video_read", rows)


if __name__ == "__main__":
    main()
