"""Frame sources decoded with PyAV: a video file per camera, or a folder / list of images."""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Sequence

import av
import numpy as np

from ..errors import CaptureError
from ..fileio import atomic_path, input_file

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".exr", ".bmp", ".tif", ".tiff")


def _to_rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    if frame.width != width or frame.height != height:
        return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    return frame.to_ndarray(format="rgb24")


def _video_stream(container, path: str, what: str):
    """The first picture stream of an opened file, or a CaptureError saying what the file holds instead."""
    if not container.streams.video:
        held = sorted({stream.type for stream in container.streams}) or ["no streams"]
        raise CaptureError(f"{path}: the {what} holds no picture stream (it holds {', '.join(held)}); expected "
                           f"this camera's footage")
    return container.streams.video[0]


def file_identity(path: str) -> dict:
    """A file as a cache key sees it: its absolute path, size and modification time (a changed file is another)."""
    info = os.stat(path)
    return {"file": os.path.abspath(path), "bytes": info.st_size, "mtime_ns": info.st_mtime_ns}


class VideoSource:
    """One camera's video file. A block of frames is decoded from the keyframe at or before its first frame."""

    def __init__(self, path: str):
        if not os.path.lexists(path):
            raise CaptureError(f"missing video {path}: expected a video file for this camera")
        input_file(path, "video", CaptureError)  # a regular file: a FIFO or device is never opened
        self.path = self.footage = os.path.abspath(path)
        self._count: int | None = None
        self._first: int | None = None  # the first frame's timestamp, once `_first_pts` decoded it
        self._first_known = False
        self._probe()

    def _probe(self) -> None:
        try:
            with av.open(self.path) as container:
                stream = _video_stream(container, self.path, "video")
                self.width, self.height = stream.codec_context.width, stream.codec_context.height
                self.fps = float(stream.average_rate or stream.guessed_rate or 0) or None
                self._count = stream.frames or None
        except (av.error.FFmpegError, IndexError) as exc:
            raise CaptureError(f"unreadable video {self.path}: {exc}") from exc
        if not self.width or not self.height:
            raise CaptureError(f"unreadable video {self.path}: no picture size ({self.width}x{self.height})")

    def identity(self, frame: int) -> dict:
        """Frame `frame` named by the file and its index (`file_identity`), without decoding it."""
        return file_identity(self.path) | {"frame": frame}

    def num_frames(self) -> int:
        if self._count is None:  # container does not store a count: decode once to count
            try:
                with av.open(self.path) as container:
                    self._count = sum(1 for _ in container.decode(video=0))
            except av.error.FFmpegError as exc:
                raise CaptureError(f"failed to decode {self.path}: {exc}") from exc
        return self._count

    def read(self, start: int, stop: int, width: int, height: int) -> np.ndarray:
        """Frames [start, stop), decoded from the keyframe at or before `start` where the stream's timestamps say
        which frame is which (a constant frame rate), else from the first frame."""
        try:
            with av.open(self.path) as container:
                out = self._read_seeking(container, start, stop, width, height) if start > 0 else None
            if out is None:
                with av.open(self.path) as container:
                    out = self._read_sequential(container, start, stop, width, height)
        except av.error.FFmpegError as exc:
            raise CaptureError(f"failed to decode {self.path}: {exc}") from exc
        if len(out) != stop - start:
            raise CaptureError(
                f"{self.path}: decoded {len(out)} frames in range {start}:{stop}, expected {stop - start}"
            )
        return np.stack(out)

    @staticmethod
    def _read_sequential(container, start: int, stop: int, width: int, height: int) -> list[np.ndarray]:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        out = []
        for index, frame in enumerate(container.decode(stream)):
            if index >= stop:
                break
            if index >= start:
                out.append(_to_rgb(frame, width, height))
        return out

    def _read_seeking(self, container, start: int, stop: int, width: int, height: int) -> list[np.ndarray] | None:
        """The frames after a seek to the keyframe before `start`, each placed by its timestamp; None where the
        timestamps cannot place them (no rate or time base, a frame without one, or frames that do not follow
        one another one by one): the caller then decodes from the first frame."""
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate, base, first = stream.average_rate, stream.time_base, self._first_pts(container)
        if not rate or not base or first is None:
            return None
        container.seek(int(first + start / (rate * base)), stream=stream, backward=True, any_frame=False)
        out, previous = [], None
        for frame in container.decode(stream):
            if frame.pts is None:
                return None
            index = round((frame.pts - first) * base * rate)
            if (previous is None and index > start) or (previous is not None and index != previous + 1):
                return None  # past the frame asked for, or a gap or a repeat: not a constant rate
            previous = index
            if index >= stop:
                break
            if index >= start:
                out.append(_to_rgb(frame, width, height))
        return out

    def _first_pts(self, container) -> int | None:
        """The timestamp of the first frame shown (decoded once per source), the origin of frame indices."""
        if not self._first_known:
            self._first = next((frame.pts for frame in container.decode(video=0)), None)
            self._first_known = True
        return self._first


class ImageSequenceSource:
    """One camera's frames as an ordered list of image files."""

    def __init__(self, paths: Sequence[str], label: str):
        if not paths:
            raise CaptureError(f"{label}: no images found (expected {', '.join(IMAGE_EXTENSIONS)} files)")
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            if os.path.exists(missing[0]):
                input_file(missing[0], f"{label}: image", CaptureError)  # says what it is instead
            raise CaptureError(f"{label}: missing image {missing[0]} ({len(missing)} missing in all)")
        self.paths = list(paths)
        self.footage = os.path.abspath(self.paths[0])
        self.label = label
        try:
            with av.open(self.paths[0]) as container:
                ctx = _video_stream(container, self.paths[0], "image").codec_context
                self.width, self.height = ctx.width, ctx.height
        except (av.error.FFmpegError, IndexError) as exc:
            raise CaptureError(f"{label}: unreadable image {self.paths[0]}: {exc}") from exc
        if not self.width or not self.height:
            raise CaptureError(f"{label}: image {self.paths[0]} has no size ({self.width}x{self.height})")

    @classmethod
    def from_folder(cls, folder: str) -> "ImageSequenceSource":
        if not os.path.isdir(folder):
            raise CaptureError(f"missing image folder {folder}")
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
        return cls([os.path.join(folder, n) for n in names], folder)

    def identity(self, frame: int) -> dict:
        return file_identity(self.paths[frame])

    def num_frames(self) -> int:
        return len(self.paths)

    def read(self, start: int, stop: int, width: int, height: int) -> np.ndarray:
        out = []
        for path in self.paths[start:stop]:
            try:
                with av.open(path) as container:
                    frame = next(container.decode(video=0))
            except (av.error.FFmpegError, StopIteration) as exc:
                raise CaptureError(f"unreadable image {path}: {exc}") from exc
            out.append(_to_rgb(frame, width, height))
        return np.stack(out)


def write_video(path: str, frames: np.ndarray, fps: float, crf: int = 14) -> None:
    """Encode uint8 RGB frames (T, H, W, 3) as H.264 (yuv444p keeps colours exact enough for tests).

    Written to a temporary name and renamed so a reader never sees a half-written file.
    """
    height, width = frames.shape[1:3]
    with atomic_path(path) as tmp, av.open(tmp, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def check_equal_lengths(sources: Sequence, names: Sequence[str], root: str) -> int:
    """The common frame count of all cameras, or a CaptureError naming the odd one out."""
    counts = [s.num_frames() for s in sources]
    if len(set(counts)) > 1:
        majority = max(set(counts), key=counts.count)
        odd = [f"{n} ({c} frames)" for n, c in zip(names, counts) if c != majority]
        raise CaptureError(
            f"{root}: cameras have unequal frame counts; expected {majority} frames like most cameras, "
            f"but {', '.join(odd)}"
        )
    return counts[0]


def check_equal_fps(sources: Sequence, names: Sequence[str], root: str, tolerance: float = 1e-3) -> float | None:
    """The common frame rate of the cameras that store one (None if none does), or a CaptureError naming the odd one."""
    rates = [(n, s.fps) for n, s in zip(names, sources) if getattr(s, "fps", None)]
    if not rates:
        return None
    first_name, first = rates[0]
    odd = [f"{n} ({r:g} fps)" for n, r in rates if abs(r / first - 1) > tolerance]
    if odd:
        raise CaptureError(f"{root}: cameras have different frame rates; expected {first:g} fps like {first_name}, "
                           f"but {', '.join(odd)}")
    return first
