"""Playback memory: let Blender's allocator keep the arrays a frame change frees, so the next frame change reuses
them instead of asking the kernel for fresh pages (no bpy).

A proxy's frame change allocates and frees the same arrays every frame: the PLY's attributes, the quads'
vertices, edges, corners and carried attributes (about 230 MB at 500k Gaussians). glibc's malloc serves each
array above its mmap threshold (128 KiB, raised dynamically up to 32 MiB) with a fresh mapping and returns the
top of its heap to the kernel above its trim threshold, so every frame change faulted in and zeroed its pages
again. Raising the three limits keeps those pages in the process for reuse: a new frame 61 -> 42 ms at 100k
Gaussians, 257 -> 158-196 ms at 500k on a quiet 2-core machine (docs/blender.md, Cost and fidelity). The price is
memory the process keeps while idle: up to the trim threshold of free heap (about 100 MB more after 16 frames of
500k Gaussians, beside the 900 MB Blender's import cache held).

The add-on applies it once a proxy exists in the session (a sequence imported, a file with one opened), when its
preference "Reuse Memory During Playback" is on (the default). glibc only (Linux): elsewhere `apply` changes
nothing and says so.
"""

from __future__ import annotations

import ctypes
import platform

# mallopt(3) parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
# arrays up to 32 MiB (glibc's largest mmap threshold on 64-bit) come from the heap; up to 512 MiB of freed heap
# is kept; the heap grows 64 MiB at a time
PLAYBACK = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 512 << 20), (M_TOP_PAD, 64 << 20))


def _mallopt():
    """glibc's mallopt in this process, or None where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        function = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return function


def available() -> bool:
    return _mallopt() is not None


def apply() -> bool:
    """Set the allocator for playback; True when glibc took every setting, False where there is no glibc (nothing
    changed). There is no way back short of a new process: setting any of these turns off glibc's dynamic mmap
    threshold, so glibc's defaults set again would play slower than an untouched process (measured: 92 against
    57 ms per new frame at 100k Gaussians)."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return all(mallopt(parameter, value) == 1 for parameter, value in PLAYBACK)
