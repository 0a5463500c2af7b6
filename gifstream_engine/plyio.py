"""PLY writing for point clouds (standard binary little-endian x, y, z, red, green, blue)."""

from __future__ import annotations

import numpy as np
from plyfile import PlyData, PlyElement

from .fileio import atomic_path


def write_point_ply(path: str, points: np.ndarray, colors: np.ndarray) -> None:
    vertex = np.empty(len(points), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, axis in enumerate("xyz"):
        vertex[axis] = points[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        vertex[channel] = colors[:, i]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(vertex, "vertex")]).write(tmp)


def read_point_ply(path: str) -> tuple[np.ndarray, np.ndarray]:
    v = PlyData.read(path)["vertex"]
    return np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64), np.stack([v["red"], v["green"], v["blue"]], 1)
