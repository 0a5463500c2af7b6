"""PLY files: point clouds (x, y, z, red, green, blue) and standard 3D Gaussian Splatting scenes."""

from __future__ import annotations

import zlib

import numpy as np
from plyfile import PlyData, PlyElement

from .conventions import BODY_CRC32_COMMENT
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


SH_C0 = 0.28209479177387814  # degree-0 spherical harmonic: colour = 0.5 + SH_C0 * f_dc
# The reference 3DGS code also writes three zero normals (nx, ny, nz); no 3DGS tool reads them, so they are left out:
# 14 float32 = 56 bytes per Gaussian (issue 27).
GAUSSIAN_FIELDS = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                   "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def write_gaussian_ply(path: str, means, quats, scales, opacities, colors) -> None:
    """The standard 3D Gaussian Splatting PLY (binary little-endian, the reference 3DGS code's property names, SH
    degree 0, without its unused normals): positions, colour as f_dc, opacity as a logit, log scales, rotation
    quaternion (w, x, y, z); 56 bytes per Gaussian, and a header comment with the CRC-32 of those bytes."""
    means, quats, scales = (np.asarray(a, dtype=np.float64) for a in (means, quats, scales))
    opacities, colors = np.asarray(opacities, dtype=np.float64), np.asarray(colors, dtype=np.float64)
    vertex = np.empty(len(means), dtype=[(name, "<f4") for name in GAUSSIAN_FIELDS])
    for i, axis in enumerate("xyz"):
        vertex[axis] = means[:, i]
    for i in range(3):
        vertex[f"f_dc_{i}"] = (colors[:, i] - 0.5) / SH_C0
        vertex[f"scale_{i}"] = np.log(np.maximum(scales[:, i], 1e-12))
    o = np.clip(opacities, 1e-6, 1 - 1e-6)
    vertex["opacity"] = np.log(o / (1 - o))
    q = quats / np.maximum(np.linalg.norm(quats, axis=1, keepdims=True), 1e-12)
    for i in range(4):
        vertex[f"rot_{i}"] = q[:, i]
    comment = f"{BODY_CRC32_COMMENT} {zlib.crc32(vertex.tobytes()):08x}"
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(vertex, "vertex")], byte_order="<", comments=[comment]).write(tmp)


def read_gaussian_ply(path: str) -> dict[str, np.ndarray]:
    """means, quats, scales, opacities, colors from a 3DGS PLY (the inverse of `write_gaussian_ply`)."""
    v = PlyData.read(path)["vertex"]
    stack = lambda names: np.stack([np.asarray(v[n], dtype=np.float64) for n in names], 1)  # noqa: E731
    return {
        "means": stack(["x", "y", "z"]),
        "quats": stack([f"rot_{i}" for i in range(4)]),
        "scales": np.exp(stack([f"scale_{i}" for i in range(3)])),
        "opacities": 1 / (1 + np.exp(-np.asarray(v["opacity"], dtype=np.float64))),
        "colors": 0.5 + SH_C0 * stack([f"f_dc_{i}" for i in range(3)]),
    }
