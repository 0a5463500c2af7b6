"""Open a sequence by its path -- a trained run folder, a `.gifs` bitstream or a folder of per-frame PLYs --
with the frames a `--frames START:STOP` option asks for, and the rig (cameras, fps) to view it with."""

from __future__ import annotations

import os

from .capture import load_capture
from .capture.camera import Camera, Rig
from .codec.bitstream import DecodedStream
from .codec.describe import bitrate_mbps
from .eval.evaluate import evaluate
from .errors import GIFStreamError
from .fileio import Input, kind_of
from .frames import FrameRange, check_range, parse_frame_range
from .sequence import PlySequence, Sequence
from .train.pipeline import evaluate_run, run_capture
from .train.run_folder import CONFIG, EVAL, GOP_GLOB, LOCK, RunFolder, TrainedRun


# what of a run folder is the run's own: no output of a command that reads the run may replace it
RUN_OWNS = (CONFIG, EVAL, LOCK, GOP_GLOB)


def is_bitstream(path: str) -> bool:
    return os.path.isfile(path)


def check_source(path: str) -> None:
    """GIFStreamError unless `path` is a file or a folder (a device, FIFO or socket is never read)."""
    if not os.path.exists(path):
        raise GIFStreamError(f"{path}: the sequence does not exist (expected a .gifs file, a run folder or a PLY folder)")
    if not (os.path.isfile(path) or os.path.isdir(path)):
        raise GIFStreamError(f"{path} is {kind_of(os.stat(path).st_mode)}, not a .gifs file, a run folder or a PLY "
                             f"folder; it is not read")


def source_input(path: str) -> Input:
    """A sequence a command reads (`fileio.Input`): a file, a run folder (its own files) or a PLY folder (its files)."""
    if os.path.isdir(path):
        if RunFolder(path).holds_run():
            return Input(path, "the run folder", RUN_OWNS)
        return Input(path, "the PLY folder", Input.EXISTING)
    return Input(path, "the bitstream" if path.lower().endswith(".gifs") else "the input")


def capture_input(path: str) -> Input:
    """A capture folder a command reads: none of its files is replaced by an output."""
    return Input(path, "the capture folder", Input.EXISTING if os.path.isdir(path) else None)


def is_ply_folder(path: str) -> bool:
    """A folder of numbered PLYs that is not a run folder."""
    return PlySequence.holds_frames(path) and not RunFolder(path).holds_run()


def open_sequence(path: str, frames_text: str | None = None) -> tuple[Sequence, int, int]:
    """(sequence, start, stop): the sequence at `path` and the frames a `--frames START:STOP` option asks for
    (default: all)."""
    return open_frames(path, parse_frame_range(frames_text))


def open_frames(path: str, frames: FrameRange | None = None) -> tuple[Sequence, int, int]:
    """(sequence, start, stop): the sequence at `path` and the range `frames` of it, checked (default: all).
    A bitstream decodes only up to `stop`; its frame count comes from the header, before any decoding."""
    check_source(path)
    if is_bitstream(path):
        stream = DecodedStream(path, frames)  # checks the range against its header
        return (stream, *stream.frames)
    if is_ply_folder(path):
        sequence, owner = PlySequence(path), "the folder's"
    else:
        sequence, owner = RunFolder(path).load(), "the run's"
    return (sequence, *check_range(frames, sequence.num_frames, owner, path))


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


def evaluate_source(path: str, capture_path: str | None) -> dict:
    """`gifstream eval`: a bitstream (with its size, bitrate and decode speed) or a PLY folder against the capture
    at `capture_path` (required), or a trained run against its own capture (or `capture_path`), the result
    written to RUN/eval.json."""
    check_source(path)
    if is_bitstream(path) or is_ply_folder(path):
        if not capture_path:
            kind = "a bitstream" if is_bitstream(path) else "a PLY folder"
            raise GIFStreamError(f"evaluating {kind} needs --capture CAPTURE (the footage to compare with)")
        if not is_bitstream(path):
            sequence = PlySequence(path)
            capture = load_capture(capture_path)
            return evaluate(sequence, capture)
        stream = DecodedStream(path)
        capture = load_capture(capture_path, downscale=stream.train_downscale)
        capture.check_matches(stream.cameras, stream.num_frames, path)
        result = evaluate(stream, capture)
        size = os.path.getsize(path)
        return result | {"bytes": size, "mbps": bitrate_mbps(size, stream.num_frames, stream.fps),
                         "decode_fps": stream.decode_fps()}
    folder = RunFolder(path)
    run = folder.load()
    capture = run_capture(capture_path, run.cfg) if capture_path else None
    if capture is not None and run.rig is not None:
        capture.check_matches(run.rig.cameras, run.num_frames, path)
    result = evaluate_run(run, capture)
    folder.write_eval(result)
    return result


def pick_cameras(rig: Rig, names: list[str] | None, what: str) -> list[Camera]:
    """The cameras named (default: the test cameras, or the first one)."""
    names = names or [c.name for c in rig.cameras if c.split == "test"] or [rig.cameras[0].name]
    return [rig.camera(n, what, GIFStreamError) for n in names]
