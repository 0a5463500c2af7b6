"""Lossless anchor positions: integer voxel keys coded as an octree of occupancy bytes (LZMA-compressed).

Anchors sit at voxel centres ((key + 1/2) * voxel), so their integer keys reproduce the positions exactly.
Keys are shifted to the origin, ordered by Morton code, and each octree level contributes one occupancy byte
per occupied node. The decoder returns the keys in Morton order, which is the anchors' coding order.
"""

from __future__ import annotations

import lzma

import numpy as np

from ..errors import BitstreamError
from .container import decompress

MAX_DEPTH = 21  # 3 x 21 bits fit a 63-bit Morton code


def morton(keys: np.ndarray, depth: int) -> np.ndarray:
    code = np.zeros(len(keys), dtype=np.int64)
    k = keys.astype(np.int64)
    for bit in range(depth):
        for axis in range(3):
            code |= ((k[:, axis] >> bit) & 1) << (3 * bit + 2 - axis)
    return code


def unmorton(code: np.ndarray, depth: int) -> np.ndarray:
    keys = np.zeros((len(code), 3), dtype=np.int64)
    for bit in range(depth):
        for axis in range(3):
            keys[:, axis] |= ((code >> (3 * bit + 2 - axis)) & 1) << bit
    return keys


def encode_keys(keys: np.ndarray) -> tuple[bytes, np.ndarray, list[int], int]:
    """(payload, order, origin, depth): order[i] is the input row of the i-th anchor in coding order."""
    if len(keys) == 0:
        raise ValueError("no anchors to code")
    origin = keys.min(0)
    local = keys - origin
    depth = max(1, int(local.max()).bit_length())
    if depth > MAX_DEPTH:
        raise ValueError(f"the anchors span {int(local.max())} voxels, more than the octree's 2^{MAX_DEPTH}")
    codes = morton(local, depth)
    order = np.argsort(codes, kind="stable")
    codes = codes[order]
    if np.any(codes[1:] == codes[:-1]):
        raise ValueError("two anchors share one voxel")
    levels = []
    for level in range(depth - 1, -1, -1):  # children at bit `level`, parents one level up
        child = codes >> (3 * level)
        child = child[np.concatenate([[True], child[1:] != child[:-1]])]
        parent, octant = child >> 3, child & 7
        starts = np.concatenate([[0], np.nonzero(parent[1:] != parent[:-1])[0] + 1])
        levels.append(np.bitwise_or.reduceat((1 << octant).astype(np.uint8), starts).astype(np.uint8))
    payload = lzma.compress(np.concatenate(levels).tobytes(), preset=9 | lzma.PRESET_EXTREME)
    return payload, order, [int(v) for v in origin], depth


def decode_keys(payload: bytes, count: int, origin: list[int], depth: int, what: str) -> np.ndarray:
    """(count, 3) int64 keys in coding (Morton) order."""
    if not 1 <= depth <= MAX_DEPTH:
        raise BitstreamError(f"{what}: octree depth {depth} outside 1..{MAX_DEPTH}")
    # each level holds at most `count` nodes: a larger occupancy cannot be this header's octree
    occupancy = np.frombuffer(decompress(payload, count * depth, f"{what}: octree occupancy"), dtype=np.uint8)
    nodes = np.zeros(1, dtype=np.int64)
    pos = 0
    for _ in range(depth):
        byte = occupancy[pos:pos + len(nodes)]
        if len(byte) != len(nodes) or np.any(byte == 0):
            raise BitstreamError(f"{what}: octree occupancy is truncated or malformed")
        pos += len(nodes)
        bits = np.unpackbits(byte[:, None], axis=1, bitorder="little").astype(bool)  # (nodes, 8) by octant
        parent, octant = np.nonzero(bits)
        nodes = (nodes[parent] << 3) | octant
    if pos != len(occupancy) or len(nodes) != count:
        raise BitstreamError(f"{what}: octree holds {len(nodes)} anchors in {len(occupancy)} bytes, header says {count}")
    return unmorton(nodes, depth) + np.asarray(origin, dtype=np.int64)
