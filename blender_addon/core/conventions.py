"""Conventions shared by the engine and the Blender add-on, in plain Python (no bpy, mathutils, numpy or torch).

The add-on cannot import the engine, so this file exists twice, byte for byte: gifstream_engine/conventions.py
(the CLI; the synthetic-scene script, which loads it by path inside Blender) and blender_addon/core/conventions.py
(the add-on). tests/test_layers.py fails when the copies differ: edit one, copy it over the other.
"""

# The first words of every error line the engine's CLI prints on stderr (exit status 2); the add-on shows the rest.
ERROR_PREFIX = "gifstream: error: "

# `gifstream decode` writes frame t of a sequence as FRAME_PREFIX + t in FRAME_DIGITS digits + ".ply" (or ".npz")
FRAME_PREFIX, FRAME_DIGITS = "frame_", 5

# An output still being written ends in PART_SUFFIX: the engine's temporaries `<path>.<pid>-<random>.part` (a file, or
# the folder `gifstream decode` writes its frames into) and the add-on's jobs' `<folder>.part`. Only a whole output
# is renamed to its name; a reader refuses a `.part` folder as an incomplete sequence.
PART_SUFFIX = ".part"

# A Gaussian PLY frame the engine writes carries "comment " + BODY_CRC32_COMMENT + " XXXXXXXX" in its header: the
# CRC-32 (zlib, 8 hex digits) of its vertex data, by which the add-on tells a frame whose bytes changed after it was
# written. A comment line: every PLY reader skips it.
BODY_CRC32_COMMENT = "gifstream body_crc32"

# OpenCV camera axes (x right, y down, z forward) -> Blender camera axes (x right, y up, z backwards)
CV_TO_BLENDER_CAMERA = ((1.0, 0.0, 0.0, 0.0), (0.0, -1.0, 0.0, 0.0), (0.0, 0.0, -1.0, 0.0), (0.0, 0.0, 0.0, 1.0))


def matmul(a, b):
    """4x4 @ 4x4 of nested sequences, as a tuple of row tuples."""
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(4)) for j in range(4)) for i in range(4))


def inverse(m):
    """The inverse of a 4x4 matrix (Gauss-Jordan with partial pivoting), as a tuple of row tuples."""
    rows = [[float(v) for v in m[i]] + [1.0 if i == j else 0.0 for j in range(4)] for i in range(4)]
    for col in range(4):
        pivot = max(range(col, 4), key=lambda r: abs(rows[r][col]))
        if rows[pivot][col] == 0.0:
            raise ValueError("singular 4x4 matrix")
        rows[col], rows[pivot] = rows[pivot], rows[col]
        p = rows[col][col]
        rows[col] = [v / p for v in rows[col]]
        for r in range(4):
            if r != col and rows[r][col] != 0.0:
                f = rows[r][col]
                rows[r] = [a - f * b for a, b in zip(rows[r], rows[col])]
    return tuple(tuple(row[4:]) for row in rows)


def blender_camera_from_c2w(c2w):
    """Blender camera object matrix (matrix_world) of an OpenCV camera-to-world 4x4."""
    return matmul(c2w, CV_TO_BLENDER_CAMERA)


def blender_camera_from_w2c(w2c):
    """Blender camera object matrix (matrix_world) of an OpenCV world-to-camera 4x4 (the engine's `Camera.w2c`)."""
    return blender_camera_from_c2w(inverse(w2c))


def w2c_from_blender_camera(matrix_world):
    """The inverse conversion: OpenCV world-to-camera 4x4 of a Blender camera's matrix_world."""
    return inverse(matmul(matrix_world, CV_TO_BLENDER_CAMERA))  # CV_TO_BLENDER_CAMERA is its own inverse
