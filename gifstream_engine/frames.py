"""Frame ranges: `START:STOP` parsed and checked here only, every fault a `FrameRangeError`.

A range is half-open, in the numbering of what it selects from (a capture, a run, a stream).
"""

from __future__ import annotations

from .errors import FrameRangeError

FrameRange = tuple[int, int | None]  # (start, stop); stop None: to the end


def parse_frame_range(text: str | None) -> FrameRange | None:
    """'a:b' -> (a, b); 'a:' -> (a, None); ':b' -> (0, b); None -> None. A lone number is refused: '2' could mean
    frame 2 alone or frames 2 to the end."""
    if text is None:
        return None
    start, colon, stop = text.partition(":")
    try:
        if not colon:
            raise ValueError("no colon")
        rng = int(start) if start.strip() else 0, (int(stop) if stop.strip() else None)
    except ValueError as exc:
        raise FrameRangeError(f"frame range {text!r} is not of the form START:STOP (e.g. 2:3 for frame 2 alone, "
                              f"2: for frame 2 to the end)") from exc
    if rng[0] < 0 or (rng[1] is not None and rng[1] <= rng[0]):
        raise FrameRangeError(f"frame range {text!r}: expected 0 <= START < STOP")
    return rng


def check_range(frames: FrameRange | None, num_frames: int, owner: str, where: str = "") -> tuple[int, int]:
    """(start, stop) of `frames` (None: all) within 0:num_frames; `owner` names whose frames ("the capture's"),
    `where` prefixes the message with the file it concerns."""
    start, stop = frames if frames is not None else (0, None)
    stop = num_frames if stop is None else stop
    if not 0 <= start < stop <= num_frames:
        raise FrameRangeError(f"{where + ': ' if where else ''}frames {start}:{stop} are outside {owner} 0:{num_frames}")
    return start, stop


def resolve(text: str | None, num_frames: int, owner: str, where: str = "") -> tuple[int, int]:
    """A `--frames` option (None: all) as a checked (start, stop)."""
    return check_range(parse_frame_range(text), num_frames, owner, where)
