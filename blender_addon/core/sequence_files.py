"""Per-frame 3DGS PLY sequences on disk: the naming pattern of a folder and the check that a file holds Gaussians.

Pure Python (no bpy): the Geometry Nodes tree builds each frame's path from a `SequencePattern`, so the
pattern is found once here, at import, and never again while the timeline plays.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re

from .conventions import BODY_CRC32_COMMENT, FRAME_DIGITS, FRAME_PREFIX, PART_SUFFIX

# The engine's `gifstream decode --format ply` writes frame_00000.ply, frame_00001.ply, ... (frame index, 5 digits).
ENGINE_PREFIX, ENGINE_DIGITS = FRAME_PREFIX, FRAME_DIGITS
# what a standard 3D Gaussian Splatting PLY holds per vertex (SH degree 0 at least)
GAUSSIAN_PROPERTIES = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                       "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
PLY_FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")
FRAME_EPSILON = 1e-4  # a scene frame that lands on a stream frame up to float error shows that frame
_NUMBERED = re.compile(r"^(.*?)(\d+)(\.ply)$", re.IGNORECASE)


class SequenceError(ValueError):
    """A folder or file that is not a per-frame Gaussian PLY sequence; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class SequencePattern:
    """Frame t of the sequence is `directory/prefix + str(first + t).zfill(digits) + suffix`."""

    directory: str
    prefix: str
    digits: int  # zero padding; 0: numbers written without padding
    first: int  # number of the sequence's frame 0
    count: int
    suffix: str = ".ply"

    def filename(self, t: int) -> str:
        number = str(self.first + t)
        return self.prefix + (number.zfill(self.digits) if self.digits else number) + self.suffix

    def path(self, t: int) -> str:
        return os.path.join(self.directory, self.filename(t))


@dataclasses.dataclass(frozen=True)
class PlyHeader:
    format: str
    vertices: int
    properties: tuple[str, ...]
    size: int | None = None  # bytes the header and its vertices take (binary, fixed-size properties), else None
    body_start: int = 0  # offset of the first byte after the header
    body_crc32: int | None = None  # the CRC-32 of bytes body_start..size the engine wrote into the header, else None


PLY_TYPE_BYTES = {"char": 1, "int8": 1, "uchar": 1, "uint8": 1, "short": 2, "int16": 2, "ushort": 2, "uint16": 2,
                  "int": 4, "int32": 4, "uint": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}


def read_ply_header(path: str) -> PlyHeader:
    """The vertex element of a PLY header; `SequenceError` for anything that is not a PLY."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError as exc:
        raise SequenceError(f"{path}: cannot be read ({exc.strerror})") from exc
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise SequenceError(f"{path}: not a PLY file (no 'ply' magic and 'end_header')")
    fmt, vertices, properties, element, crc32 = "", -1, [], None, None
    record, before = 0, 0  # bytes of one vertex; of the elements before the vertices (None: not fixed-size)
    counts: dict[str, int] = {}
    for line in head[:end].decode("ascii", errors="replace").splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "format" and len(words) >= 2:
            fmt = words[1]
        elif words[0] == "comment" and " ".join(words[1:-1]) == BODY_CRC32_COMMENT:
            crc32 = int(words[-1], 16) if re.fullmatch(r"[0-9a-fA-F]{8}", words[-1]) else None
        elif words[0] == "element" and len(words) == 3:
            element = words[1]
            counts[element] = int(words[2]) if words[2].isdigit() else -1
            if element == "vertex":
                vertices = counts[element]
        elif words[0] == "property" and len(words) >= 3:
            size = PLY_TYPE_BYTES.get(words[1]) if len(words) == 3 else None  # a list property has no fixed size
            if element == "vertex":
                properties.append(words[-1])
                record = None if record is None or size is None else record + size
            elif vertices < 0 and element is not None:  # an element stored before the vertices
                before = None if before is None or size is None else before + size * max(counts[element], 0)
    if fmt not in PLY_FORMATS:
        raise SequenceError(f"{path}: PLY format {fmt!r}, expected one of {', '.join(PLY_FORMATS)}")
    if vertices < 0:
        raise SequenceError(f"{path}: the PLY has no vertex element")
    body = end + len(b"end_header") + 1  # and its newline
    fixed = fmt != "ascii" and record is not None and before is not None
    return PlyHeader(fmt, vertices, tuple(properties), body + before + vertices * record if fixed else None, body,
                     crc32 if fixed else None)


def check_gaussian_ply(path: str) -> PlyHeader:
    header = read_ply_header(path)
    missing = [name for name in GAUSSIAN_PROPERTIES if name not in header.properties]
    if missing:
        raise SequenceError(
            f"{path}: not a 3D Gaussian Splatting PLY: the vertices lack {', '.join(missing)} "
            f"(expected x y z, f_dc_0..2, opacity (logit), scale_0..2 (log), rot_0..3 (w x y z))"
        )
    return header


def check_complete(directory: str) -> None:
    """`SequenceError` for a folder still being written or left incomplete: a `.part` folder (the engine's decode
    stages its frames in `<folder>.<pid>-<random>.part`, the add-on's jobs in `<folder>.part`; only a whole decode
    is renamed to its folder)."""
    if os.path.basename(os.path.normpath(directory)).endswith(PART_SUFFIX):
        raise SequenceError(f"{directory} is an incomplete sequence: a '{PART_SUFFIX}' folder is one still being "
                            f"written, or left by a decode that was stopped or failed (only a whole decode is renamed "
                            f"to its folder); decode the stream again")


def find_pattern(directory: str) -> SequencePattern:
    """The one numbered run of `*.ply` files in a folder (the longest if several prefixes share it); a `.part`
    folder is refused (`check_complete`)."""
    if not os.path.isdir(directory):
        raise SequenceError(f"{directory}: the folder does not exist")
    check_complete(directory)
    groups: dict[tuple[str, str], list[str]] = {}
    for name in os.listdir(directory):
        match = _NUMBERED.match(name)
        if match:
            groups.setdefault((match.group(1), match.group(3)), []).append(match.group(2))
    if not groups:
        raise SequenceError(f"{directory}: no numbered .ply files (expected e.g. frame_00000.ply, frame_00001.ply, ...)")
    (prefix, suffix), numbers = max(groups.items(), key=lambda item: (len(item[1]), item[0]))
    values = sorted(int(n) for n in numbers)
    widths = {len(n) for n in numbers}
    digits = widths.pop() if len(widths) == 1 else 0  # one width: zero-padded to it; several: unpadded
    if digits == 0 and any(n != str(int(n)) for n in numbers):
        raise SequenceError(f"{directory}: {prefix}*{suffix} mixes zero-padded and unpadded frame numbers")
    first, last = values[0], values[-1]
    gaps = sorted(set(range(first, last + 1)) - set(values))
    if gaps:
        raise SequenceError(f"{directory}: {len(gaps)} frame(s) missing from {prefix}{numbers[0]}..{suffix}, "
                            f"first the number {gaps[0]} (a sequence needs every frame from {first} to {last})")
    return SequencePattern(directory, prefix, digits, first, last - first + 1, suffix)


def check_sequence(pattern: SequencePattern) -> list[int]:
    """Checks every frame's header; returns the vertex count per frame."""
    return [check_gaussian_ply(pattern.path(t)).vertices for t in range(pattern.count)]


def engine_pattern(directory: str, count: int) -> SequencePattern:
    """The naming `gifstream decode --format ply` uses (cli.cmd_decode): frame_%05d.ply from frame 0."""
    return SequencePattern(directory, ENGINE_PREFIX, ENGINE_DIGITS, 0, count)


def stream_frame(scene_frame: float, start_frame: int, stream_fps: float, scene_fps: float, count: int) -> int:
    """The stream frame shown at a scene frame: the fps mapping with hold outside the range. The Geometry
    Nodes tree computes the same (proxy_nodes); this is its reference for tests and tools."""
    t = math.floor((scene_frame - start_frame) * stream_fps / scene_fps + FRAME_EPSILON)
    return min(max(t, 0), count - 1)
