"""Open a sequence by its path -- a trained run folder, a `.gifs` bitstream or a folder of per-frame PLYs --
with the frames a `--frames START:STOP` option asks for, and the rig (cameras, fps) to view it with."""

from __future__ import annotations

import os

from .capture import load_capture
from .capture.types import Camera, Rig
from .codec.bitstream import DecodedStream
from .errors import GIFStreamError
from .frames import parse_frame_range, resolve
from .sequence import PlySequence, Sequence
from .train.run_folder import RunFolder, TrainedRun


def is_bitstream(path: str) -> bool:
    return os.path.isfile(path)


def open_sequence(path: str, frames_text: str | None = None) -> tuple[Sequence, int, int]:
    """(sequence, start, stop): the sequence at `path` and the frames asked for (default: all). A bitstream
    decodes only up to `stop`; its frame count comes from the header, before any decoding."""
    if is_bitstream(path):
        stream = DecodedStream(path, parse_frame_range(frames_text))  # checks the range against its header
        return (stream, *stream.frames)
    folder = RunFolder(path)
    if os.path.isdir(path) and not folder.holds_run():
        sequence, owner = PlySequence(path), "the folder's"
    else:
        sequence, owner = folder.load(), "the run's"
    return (sequence, *resolve(frames_text, sequence.num_frames, owner, path))


def rig_of(sequence: Sequence, path: str) -> Rig:
    """The cameras and frame rate to view `sequence` with: a bitstream's header, a run's saved rig (or, for an
    older run, its capture's)."""
    if isinstance(sequence, DecodedStream):
        return sequence.rig
    if isinstance(sequence, TrainedRun):
        if sequence.rig is not None:
            return sequence.rig
        return load_capture(sequence.capture_root, downscale=sequence.cfg.train.downscale).rig()
    raise GIFStreamError(f"{path} records no cameras: give a free camera with --pose")


def pick_cameras(rig: Rig, names: list[str] | None, what: str) -> list[Camera]:
    """The cameras named (default: the test cameras, or the first one)."""
    names = names or [c.name for c in rig.cameras if c.split == "test"] or [rig.cameras[0].name]
    return [rig.camera(n, what, GIFStreamError) for n in names]
