"""The `.gifs` container: one file, random access to named sections, every byte covered by a CRC32.

Layout (little-endian):
  magic b"GIFS" | u16 major | u16 minor | u32 header length | header JSON (UTF-8) | u32 CRC32(all of these)
  u32 section count | per section: u16 name length, name, u64 offset, u64 length, u32 CRC32(payload)
  u32 CRC32(section table) | payloads | trailer b"SFIG" + u64 file length
Offsets are absolute. A reader checks magic, version, header and table CRCs and the trailer on open, and each
payload's CRC when it is read, so truncation or corruption raises `BitstreamError` instead of decoding garbage.
"""

from __future__ import annotations

import io
import json
import lzma
import struct
import zlib

import numpy as np

from ..errors import BitstreamError
from ..fileio import atomic_open, read_input

MAGIC, TRAILER = b"GIFS", b"SFIG"
VERSION = (1, 1)  # 1.1: the header's model records knn_rule (1.0 streams decode with the legacy rule)
_TRAILER_SIZE = 12
MAX_FILE_BYTES = 1 << 32  # a reader holds the whole file in memory: a .gifs of at most 4 GiB


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def write_container(path: str, header: dict, sections: dict[str, bytes]) -> int:
    """Write atomically (temporary name, fsync, rename); returns the file size."""
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    names = list(sections)
    table_size = 4 + sum(2 + len(n.encode()) + 20 for n in names) + 4
    offset = 4 + 4 + 4 + len(head) + 4 + table_size
    table = io.BytesIO()
    table.write(struct.pack("<I", len(names)))
    for name in names:
        raw = name.encode()
        payload = sections[name]
        table.write(struct.pack("<H", len(raw)) + raw + struct.pack("<QQI", offset, len(payload), _crc(payload)))
        offset += len(payload)
    table_bytes = table.getvalue()
    total = offset + _TRAILER_SIZE
    with atomic_open(path) as f:
        preamble = MAGIC + struct.pack("<HHI", *VERSION, len(head)) + head
        f.write(preamble + struct.pack("<I", _crc(preamble)))
        f.write(table_bytes + struct.pack("<I", _crc(table_bytes)))
        for name in names:
            f.write(sections[name])
        f.write(TRAILER + struct.pack("<Q", total))
    return total


class Container:
    """A validated container in memory-light form: header and table parsed, payloads read on demand."""

    def __init__(self, path: str):
        self.path = path
        self._data = read_input(path, "bitstream", BitstreamError, MAX_FILE_BYTES)  # a regular file, bounded
        self.size = len(self._data)
        self.header, self.table = self._parse()

    def _fail(self, what: str) -> BitstreamError:
        return BitstreamError(f"{self.path}: {what}")

    def _parse(self):
        d = self._data
        if len(d) < 12 + _TRAILER_SIZE:
            raise self._fail(f"file is {len(d)} bytes, too short to be a .gifs bitstream")
        if d[:4] != MAGIC:
            raise self._fail(f"not a .gifs bitstream (magic {d[:4]!r}, expected {MAGIC!r})")
        major, minor, head_len = struct.unpack_from("<HHI", d, 4)
        self.version = (major, minor)
        if major != VERSION[0]:
            raise self._fail(f"format version {major}.{minor} is not supported (this decoder reads {VERSION[0]}.x)")
        if minor > VERSION[1]:  # a later minor version may decode differently (1.1 changed the neighbour rule)
            raise self._fail(f"format version {major}.{minor} is newer than this decoder's {VERSION[0]}.{VERSION[1]}; "
                             "update GIFStream to read it")
        if d[-_TRAILER_SIZE:-8] != TRAILER or struct.unpack("<Q", d[-8:])[0] != len(d):
            raise self._fail(f"truncated or extended: trailer missing or length field != {len(d)} bytes")
        pos = 12
        head = d[pos:pos + head_len]
        pos += head_len
        if len(head) != head_len or pos + 4 > len(d) or struct.unpack_from("<I", d, pos)[0] != _crc(d[:pos]):
            raise self._fail("header is corrupted (CRC mismatch)")
        pos += 4
        table_start = pos
        try:
            (count,) = struct.unpack_from("<I", d, pos)
            pos += 4
            table = {}
            for _ in range(count):
                (name_len,) = struct.unpack_from("<H", d, pos)
                name = d[pos + 2:pos + 2 + name_len].decode()
                pos += 2 + name_len
                offset, length, crc = struct.unpack_from("<QQI", d, pos)
                pos += 20
                table[name] = (offset, length, crc)
            (table_crc,) = struct.unpack_from("<I", d, pos)
        except (struct.error, UnicodeDecodeError) as exc:
            raise self._fail(f"section table is corrupted: {exc}") from exc
        if table_crc != _crc(d[table_start:pos]):
            raise self._fail("section table is corrupted (CRC mismatch)")
        for name, (offset, length, _) in table.items():
            if offset < pos + 4 or offset + length > len(d) - _TRAILER_SIZE:
                raise self._fail(f"section {name!r} lies outside the file")
        try:
            header = json.loads(head)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._fail(f"header is not valid JSON: {exc}") from exc
        return header, table

    def names(self) -> list[str]:
        return list(self.table)

    def read(self, name: str) -> bytes:
        if name not in self.table:
            raise self._fail(f"no section {name!r}; the stream has {sorted(self.table)}")
        offset, length, crc = self.table[name]
        payload = self._data[offset:offset + length]
        if _crc(payload) != crc:
            raise self._fail(f"section {name!r} is corrupted (CRC mismatch)")
        return payload

    def verify(self) -> None:
        """Check every section's CRC."""
        for name in self.table:
            self.read(name)

    def sizes(self) -> dict[str, int]:
        return {name: length for name, (_, length, _) in self.table.items()}


def pack_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """Raw little-endian arrays with a JSON index (no pickles): u32 index length | index | data."""
    index, chunks, offset = {}, [], 0
    for name, array in arrays.items():
        a = np.ascontiguousarray(array)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        raw = a.tobytes()
        index[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset, "length": len(raw)}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(index).encode()
    return struct.pack("<I", len(head)) + head + b"".join(chunks)


def unpack_arrays(payload: bytes, what: str = "arrays") -> dict[str, np.ndarray]:
    try:
        (head_len,) = struct.unpack_from("<I", payload, 0)
        index = json.loads(payload[4:4 + head_len])
        data = payload[4 + head_len:]
        out = {}
        for name, spec in index.items():
            raw = data[spec["offset"]:spec["offset"] + spec["length"]]
            dtype = np.dtype(spec["dtype"])
            if len(raw) != spec["length"] or spec["length"] != dtype.itemsize * int(np.prod(spec["shape"])):
                raise BitstreamError(f"{what}: array {name!r} has {len(raw)} bytes, expected shape {spec['shape']} of {dtype}")
            out[name] = np.frombuffer(raw, dtype=dtype).reshape(spec["shape"]).astype(dtype.newbyteorder("="))
        return out
    except (struct.error, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BitstreamError(f"{what}: malformed array section: {exc}") from exc


def decompress(payload: bytes, limit: int, what: str) -> bytes:
    """LZMA data that must decompress to at most `limit` bytes: a small section cannot expand without bound."""
    decompressor = lzma.LZMADecompressor()
    try:
        out = decompressor.decompress(payload, max_length=limit + 1)
    except lzma.LZMAError as exc:
        raise BitstreamError(f"{what} cannot be decompressed: {exc}") from exc
    if len(out) > limit:
        raise BitstreamError(f"{what} decompresses to more than the {limit} bytes its header allows")
    if not decompressor.eof:
        raise BitstreamError(f"{what} cannot be decompressed: the data is truncated")
    if decompressor.unused_data:
        raise BitstreamError(f"{what}: {len(decompressor.unused_data)} bytes follow the compressed data")
    return out
