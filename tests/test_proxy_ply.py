"""Per-frame Gaussian PLYs (issue 27): 56 bytes per Gaussian, the standard 3DGS property names, binary
little-endian, readable without plyfile (as other 3DGS tools read them) and by the add-on's header check."""

import os
import zlib

import numpy as np

from conftest import addon_module
from gifstream_engine.plyio import read_gaussian_ply, write_gaussian_ply

STANDARD = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3")


def test_gaussian_ply_is_56_bytes_a_gaussian_in_the_standard_layout(tmp_path):
    rng = np.random.default_rng(0)
    n = 1000
    scene = {"means": rng.normal(size=(n, 3)), "quats": rng.normal(size=(n, 4)),
             "scales": rng.uniform(0.01, 0.2, (n, 3)), "opacities": rng.uniform(0.05, 0.95, n),
             "colors": rng.uniform(0, 1, (n, 3))}
    path = str(tmp_path / "frame_00000.ply")
    write_gaussian_ply(path, **scene)
    with open(path, "rb") as f:
        data = f.read()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    crc = zlib.crc32(data[end:])  # issue 29: the body's CRC-32 in a comment, which PLY readers skip
    assert header[:4] == ["ply", "format binary_little_endian 1.0", f"comment gifstream body_crc32 {crc:08x}",
                          f"element vertex {n}"]
    assert header[4:-1] == [f"property float {name}" for name in STANDARD]  # no normals, nothing else
    assert len(data) - end == 56 * n
    # read as a tool without plyfile does: the body is float32 little-endian records in header order
    body = np.frombuffer(data[end:], dtype=[(name, "<f4") for name in STANDARD])
    assert np.allclose(body["x"], scene["means"][:, 0], atol=1e-6)
    assert np.allclose(1 / (1 + np.exp(-body["opacity"].astype(np.float64))), scene["opacities"], atol=1e-6)
    back = read_gaussian_ply(path)
    for key in ("means", "scales", "opacities", "colors"):
        assert np.allclose(back[key], scene[key], rtol=1e-5, atol=1e-5), key
    unit = scene["quats"] / np.linalg.norm(scene["quats"], axis=1, keepdims=True)
    assert np.allclose(back["quats"], unit, atol=1e-6)
    checked = addon_module("core.sequence_files").check_gaussian_ply(path)
    assert (checked.format, checked.vertices, checked.properties) == ("binary_little_endian", n, STANDARD)
    assert (checked.body_start, checked.size, checked.body_crc32) == (end, len(data), crc)
    assert os.path.getsize(path) < 56 * n + 400
