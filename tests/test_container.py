import os
import struct

import numpy as np
import pytest

from gifstream_engine.codec.container import Container, pack_arrays, unpack_arrays, write_container
from gifstream_engine.errors import BitstreamError


def sample(tmp_path):
    path = str(tmp_path / "x.gifs")
    arrays = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "idx": np.array([5, -7, 9], dtype=np.int64)}
    sections = {"decoders": pack_arrays(arrays), "gop0/frame0": b"\x01\x02" * 50, "gop0/frame1": bytes(range(200))}
    write_container(path, {"frames": 2, "fps": 30.0}, sections)
    return path, sections, arrays


def test_round_trip_and_random_access(tmp_path):
    path, sections, arrays = sample(tmp_path)
    c = Container(path)
    assert c.header == {"frames": 2, "fps": 30.0}
    assert c.names() == list(sections)
    assert c.read("gop0/frame1") == sections["gop0/frame1"]
    out = unpack_arrays(c.read("decoders"))
    for k in arrays:
        np.testing.assert_array_equal(out[k], arrays[k])
        assert out[k].dtype == arrays[k].dtype
    assert c.sizes()["gop0/frame0"] == 100
    with pytest.raises(BitstreamError, match="no section 'gop1/frame0'"):
        c.read("gop1/frame0")


def test_every_truncation_fails_loudly(tmp_path):
    path, _, _ = sample(tmp_path)
    data = open(path, "rb").read()
    for cut in range(0, len(data)):
        with open(path, "wb") as f:
            f.write(data[:cut])
        with pytest.raises(BitstreamError):
            Container(path).verify()


def test_every_flipped_byte_fails_loudly(tmp_path):
    path, _, _ = sample(tmp_path)
    data = bytearray(open(path, "rb").read())
    rng = np.random.default_rng(0)
    for pos in range(len(data)):
        mutated = bytearray(data)
        mutated[pos] ^= 1 << int(rng.integers(8))
        with open(path, "wb") as f:
            f.write(mutated)
        with pytest.raises(BitstreamError):
            Container(path).verify()


def test_wrong_magic_and_version(tmp_path):
    path, _, _ = sample(tmp_path)
    data = bytearray(open(path, "rb").read())
    bad = bytearray(data)
    bad[:4] = b"RIFF"
    open(path, "wb").write(bad)
    with pytest.raises(BitstreamError, match="not a .gifs bitstream"):
        Container(path)
    bad = bytearray(data)
    bad[4:6] = struct.pack("<H", 9)
    open(path, "wb").write(bad)
    with pytest.raises(BitstreamError, match=r"format version 9\.\d is not supported"):
        Container(path)
    bad = bytearray(data)
    bad[6:8] = struct.pack("<H", 7)
    open(path, "wb").write(bad)
    with pytest.raises(BitstreamError, match=r"format version 1\.7 is newer than this decoder's 1\.1"):
        Container(path)


def test_write_is_atomic(tmp_path):
    path, _, _ = sample(tmp_path)
    assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]  # no temporary left beside it


def test_two_writers_of_one_path_never_share_a_temporary(tmp_path):
    """Ray workers or a retry may write one file at once: each writes its own temporary, the last rename wins,
    nothing is left beside it, and the file has the mode a plain open() gives."""
    from gifstream_engine.errors import OutputError
    from gifstream_engine.fileio import atomic_open

    path = str(tmp_path / "entry.npz")
    with atomic_open(path) as first, atomic_open(path) as second:
        assert first.name != second.name and os.path.dirname(first.name) == str(tmp_path)
        first.write(b"first")
        second.write(b"second")
    assert open(path, "rb").read() == b"first"  # the outer block renamed last
    assert os.listdir(tmp_path) == ["entry.npz"]
    open(tmp_path / "plain", "wb").close()
    assert os.stat(path).st_mode == os.stat(tmp_path / "plain").st_mode
    with pytest.raises(OutputError, match="cannot write"):
        with atomic_open(str(tmp_path / "missing" / "x.bin")) as f:
            f.write(b"never")
    assert sorted(os.listdir(tmp_path)) == ["entry.npz", "plain"]


def test_info_command_prints_budget_or_fails_cleanly(tmp_path, capsys):
    import json

    from gifstream_engine.cli import main

    path, sections, _ = sample(tmp_path)
    assert main(["info", path, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["header"]["frames"] == 2 and info["sections"]["gop0/frame1"] == 200 and info["bytes"] == os.path.getsize(path)
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-5])
    assert main(["info", path]) == 2
    assert "truncated" in capsys.readouterr().err
