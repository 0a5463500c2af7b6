"""Paths as Blender stores them: '//' relative to the saved .blend, resolved against it when read."""

from __future__ import annotations

import os

import bpy


def absolute(path: str) -> str:
    """A path as the artist or a datablock gives it ('//' = next to the .blend), absolute."""
    return os.path.abspath(bpy.path.abspath(path))


def relative(path: str) -> str:
    """'//'-relative once the .blend is saved (so it travels with it), else as given."""
    if bpy.data.filepath:
        try:
            return bpy.path.relpath(path)
        except ValueError:  # another drive on Windows
            pass
    return path
