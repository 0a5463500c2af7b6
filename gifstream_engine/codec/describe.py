"""A human-readable summary of a `.gifs` file for `gifstream info`: the header's essentials and the byte budget.

Per-frame sections (`gop_000/stream/0007`) are summed per part; `--sections` lists each one instead.
"""

from __future__ import annotations

import dataclasses

from .header import StreamHeader


def bitrate_mbps(num_bytes: int, num_frames: int, fps: float) -> float:
    """Megabits per second of `num_bytes` spread over `num_frames` played at `fps`."""
    return num_bytes * 8 / (num_frames / fps) / 1e6


def _part(name: str) -> str:
    head, _, last = name.rpartition("/")
    return head if head and last.isdigit() else name


def budget_rows(sizes: dict[str, int], each_section: bool) -> list[tuple[str, int, int]]:
    """(part, bytes, sections) in file order; per-frame sections summed unless `each_section`."""
    rows: dict[str, list[int]] = {}
    for name, size in sizes.items():
        row = rows.setdefault(name if each_section else _part(name), [0, 0])
        row[0] += size
        row[1] += 1
    return [(name, size, count) for name, (size, count) in rows.items()]


def describe(header: StreamHeader | None, kind: str, version: tuple[int, int] | None, sizes: dict[str, int],
             total: int, each_section: bool = False) -> str:
    """The summary of a container whose format is `kind`; `header` is its checked GIFStream header (None for a
    container of another format: only its byte budget is described)."""
    lines = []
    title = kind + (f" v{version[0]}.{version[1]}" if version else "")
    if header is not None:
        frames, fps = header.num_frames, header.fps
        title += (f": {frames} frames at {fps:g} fps ({frames / fps:.2f} s), {total} bytes = "
                  f"{bitrate_mbps(total, frames, fps):.3f} Mbps")
    else:
        title += f": {total} bytes"
    lines.append(title)
    if header is not None:
        lines.extend(_stream_lines(header))
    lines.append(f"{'part':<32}{'bytes':>10}{'share':>8}  sections")
    listed = 0
    for name, size, count in budget_rows(sizes, each_section):
        listed += size
        lines.append(f"{name:<32}{size:>10}{100 * size / max(total, 1):>7.1f}%  {count}")
    lines.append(f"{'header, table, trailer':<32}{total - listed:>10}{100 * (total - listed) / max(total, 1):>7.1f}%")
    lines.append(f"{'total':<32}{total:>10}")
    return "\n".join(lines)


def _stream_lines(header: StreamHeader) -> list[str]:
    lines = ["model: " + ", ".join(f"{k} {v}" for k, v in sorted(dataclasses.asdict(header.model).items()))]
    bounds = header.rig.scene_bounds
    if bounds is not None:
        lines.append("scene bounds: " + " .. ".join("(" + ", ".join(f"{x:.2f}" for x in corner) + ")" for corner in bounds))
    cameras = header.cameras
    lines.append(f"cameras ({len(cameras)}): " + ", ".join(f"{c.name} {c.width}x{c.height} [{c.split}]" for c in cameras))
    for g, gop in enumerate(header.gops):
        start, count, side = gop.frame_offset, gop.num_frames, gop.grid_side
        lines.append(f"GOP {g}: frames {start}-{start + count - 1}, {gop.num_anchors} anchors, "
                     f"{gop.num_dynamic} with a feature stream" + (f" on a {side}x{side} grid" if side else "")
                     + f", steps: feature {gop.feat_step}, geometry {gop.geo_step}")
    return lines
