"""The learned codec on a real (small) trained run: round trip, rate accuracy, determinism, bad input."""

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from gifstream_engine.capture import load_capture
from gifstream_engine.codec import octree
from gifstream_engine.codec.bitstream import DecodedStream, encode_run
from gifstream_engine.codec.container import Container, write_container
from gifstream_engine.codec.entropy_models import gaussian_bits
from gifstream_engine.codec.rans import SymbolReader, SymbolWriter
from gifstream_engine.codec.rate import estimated_bits
from gifstream_engine.errors import BitstreamError, FrameRangeError
from gifstream_engine.train.run_folder import load_run
from gifstream_engine.eval.metrics import psnr
from gifstream_engine.render import render
from gifstream_engine.train.config import load_config
from gifstream_engine.train.driver import Training

STEPS = 150


@pytest.fixture(scope="module")
def trained_run(synth_capture, tmp_path_factory):
    cfg = load_config(["preview"], [f"train.steps={STEPS}", "train.max_anchors=1500", "model.voxel_size=0.015",
                                    "train.densify_every=25", "train.log_every=1000", "train.checkpoint_every=1000"])
    capture = load_capture(synth_capture)
    out = str(tmp_path_factory.mktemp("codec") / "run")
    assert Training(capture, cfg, out, log=lambda *_: None).run() == "finished"
    return out, capture


@pytest.fixture(scope="module")
def encoded(trained_run, tmp_path_factory):
    run_dir, capture = trained_run
    run = load_run(run_dir)
    path = str(tmp_path_factory.mktemp("stream") / "seq.gifs")
    info = encode_run(run, path, run.rig)
    return run, path, info, capture


def test_octree_round_trip_and_corruption():
    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(-40, 90, (2000, 3)), axis=0)
    payload, order, origin, depth = octree.encode_keys(keys)
    assert np.array_equal(octree.decode_keys(payload, len(keys), origin, depth, "t"), keys[order])
    with pytest.raises(BitstreamError, match="octree"):
        octree.decode_keys(payload, len(keys) + 1, origin, depth, "t")
    with pytest.raises(BitstreamError):
        octree.decode_keys(payload[:-3], len(keys), origin, depth, "t")


def test_rans_round_trip_with_ranges_and_leftovers():
    rng = np.random.default_rng(2)
    s = rng.integers(-9, 9, 5000)
    mu, sigma = rng.normal(size=5000), rng.uniform(0.2, 5, 5000)
    writer = SymbolWriter()
    writer.add("a", s, mu, sigma)
    writer.add("b", np.full(7, 3), np.zeros(7), np.ones(7))  # one symbol: costs nothing
    payload, ranges = writer.finish()
    assert ranges == {"a": [int(s.min()), int(s.max())], "b": [3, 3]}
    reader = SymbolReader(payload, ranges, "t")
    assert np.array_equal(reader.read("a", mu, sigma), s)
    assert np.array_equal(reader.read("b", np.zeros(7), np.ones(7)), np.full(7, 3))
    reader.finish()
    reader = SymbolReader(payload, ranges, "t")
    reader.read("a", mu[:100], sigma[:100])
    with pytest.raises(BitstreamError, match="left over"):
        reader.finish()


@pytest.mark.parametrize("lo, hi, spread", [(-40, 40, 3.0), (0, 16, 6.0), (-3, 3, 0.5)])
def test_training_bits_are_what_rans_charges(lo, hi, spread):
    """Per-symbol costs incl. far outliers (the coder's 2^-24 floor) and symbols on folded range edges."""
    rng = np.random.default_rng(lo + hi)
    mu = rng.uniform(lo, hi, 20000)
    sigma = np.exp(rng.uniform(np.log(0.11), np.log(20), 20000))
    s = np.clip(np.round(mu + rng.standard_normal(20000) * sigma * spread), lo, hi).astype(np.int64)
    writer = SymbolWriter()
    writer.add("x", s, mu, sigma)
    written = 8 * len(writer.finish({"x": [lo, hi]})[0])
    for dtype in (torch.float32, torch.float64):
        est = gaussian_bits(*(torch.as_tensor(a, dtype=dtype) for a in (s, mu, sigma)), lo, hi)
        assert torch.isfinite(est).all() and float(est.max()) <= 24.01
        assert abs(float(est.sum()) - written) <= 0.005 * written + 32


def _render(g, camera):
    return render(g, camera, background=torch.zeros(3)).rgb


def test_encode_decode_render_matches_the_quantised_model(encoded):
    run, path, info, capture = encoded
    stream = DecodedStream(path)
    assert stream.num_frames == capture.num_frames and stream.fps == capture.fps
    assert [c.name for c in stream.cameras] == [c.name for c in capture.cameras]
    header = Container(path).header
    assert header["gops"][0]["num_dynamic"] > 0 and header["gops"][0]["grid_side"] > 0
    test = capture.split_indices("test")[0]
    camera = capture.cameras[test]
    for t in range(capture.num_frames):
        target = torch.from_numpy(capture.frame(test, t))
        from_run, from_stream = _render(run.gaussians(t, camera), camera), _render(stream.gaussians(t, camera), camera)
        assert abs(psnr(from_run, target) - psnr(from_stream, target)) <= 0.05
        assert psnr(from_run, from_stream) > 50  # only the float16 decoder weights differ


def test_training_rate_matches_bytes_written(encoded):
    run, path, info, _ = encoded
    gop = run.gops[0]
    est = estimated_bits(gop.model, run.entropy[0], gop.state)
    sizes = Container(path).sizes()
    stream_sections = [k for k in sizes if "/stream/" in k]
    written_anchor_bits = 8 * sizes["gop_000/anchors"]
    written_stream_bits = 8 * sum(sizes[k] for k in stream_sections)
    # each section ends with the flush of constriction's 64-bit ANS state in 32-bit words: up to 64 bits on top of the
    # information content (measured on 300 random sections of 20-300 symbols: 12 to 53 bits, 35 on average)
    assert abs(written_anchor_bits - est["anchors"]) <= 0.02 * est["anchors"] + 64
    assert abs(written_stream_bits - est["stream"]) <= 0.02 * est["stream"] + 64 * len(stream_sections)


def test_stream_coding_is_exact_and_thread_independent(encoded, tmp_path):
    """Random streams exercise the autoregressive coder; encode and decode with different thread counts."""
    run = copy.deepcopy(encoded[0])
    gop = run.gops[0]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        gop.model.stream.copy_(torch.randn(gop.model.stream.shape, generator=generator) * 3)
    threads = torch.get_num_threads()
    paths = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            paths.append(str(tmp_path / f"t{n}.gifs"))
            encode_run(run, paths[-1], run.rig)
        assert open(paths[0], "rb").read() == open(paths[1], "rb").read()
        decoded = []
        for n in (2, 1):
            torch.set_num_threads(n)
            s = DecodedStream(paths[0])
            decoded.append([s.gaussians(t) for t in range(s.num_frames)])
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*decoded):
        assert all(torch.equal(x, y) for x, y in zip(a.tensors(), b.tensors()))
    s = DecodedStream(paths[0])
    dg = s.gops[0]
    de = dg.values.masks["de"] > 0
    assert int(de.sum()) > 0 and Container(paths[0]).header["gops"][0]["ranges"]["stream"][1] > 0
    # every dynamic anchor's decoded stream equals the rounded original, found through its exact position
    step = gop.state.feat_step
    original = {tuple(x): i for i, x in enumerate(gop.model.anchor_xyz.numpy().tolist())}
    rows = [original[tuple(x)] for x in dg.model.anchor_xyz[de].numpy().tolist()]
    expected = torch.round(gop.model.stream[rows].double() / step) * step
    assert torch.equal(dg.model.stream[de].double(), expected)


def test_cli_encode_info_decode_render_eval(encoded, synth_capture, tmp_path):
    run, _, _, capture = encoded
    cli = [sys.executable, "-m", "gifstream_engine.cli"]
    path = str(tmp_path / "cli.gifs")
    out = subprocess.run(cli + ["encode", run.folder, "-o", path, "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    enc = json.loads(out.stdout)
    assert enc["bytes"] == os.path.getsize(path) and enc["mbps"] > 0
    info = json.loads(subprocess.run(cli + ["info", path, "--json"], capture_output=True, text=True, check=True).stdout)
    assert "gop_000/anchors" in info["sections"] and info["header"]["num_frames"] == capture.num_frames
    text = subprocess.run(cli + ["info", path], capture_output=True, text=True, check=True).stdout
    stream_bytes = sum(v for k, v in info["sections"].items() if k.startswith("gop_000/stream/"))
    assert any(line.split()[:2] == ["gop_000/stream", str(stream_bytes)] and line.split()[-1] == str(capture.num_frames)
               for line in text.splitlines())  # per-frame sections summed: bytes, then their count
    assert text.splitlines()[-1].split() == ["total", str(info["bytes"])]
    plys = str(tmp_path / "ply")
    out = subprocess.run(cli + ["decode", path, "--frames", "2:4", "--out", plys], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(plys)) == ["frame_00002.ply", "frame_00003.ply"]
    from gifstream_engine.plyio import read_gaussian_ply

    ply = read_gaussian_ply(os.path.join(plys, "frame_00003.ply"))
    g = DecodedStream(path).gaussians(3)
    assert np.allclose(ply["means"], g.means.numpy(), atol=1e-6)
    assert np.allclose(ply["colors"], g.colors.numpy(), atol=1e-5)
    assert np.allclose(ply["scales"], g.scales.numpy(), rtol=1e-5)
    out = subprocess.run(cli + ["decode", path, "--frames", "0:99", "--out", plys], capture_output=True, text=True)
    assert out.returncode == 2 and "outside" in out.stderr
    frames = str(tmp_path / "frames")
    out = subprocess.run(cli + ["render", path, "--frames", "0:2", "--out", frames], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert os.path.isfile(os.path.join(frames, "cam00_00001.png"))
    out = subprocess.run(cli + ["eval", path, "--capture", synth_capture, "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    ev = json.loads(out.stdout)
    out = subprocess.run(cli + ["eval", run.folder, "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    trained = json.loads(out.stdout)
    assert set(trained) - {"train_seconds"} <= set(ev) and ev["bytes"] == os.path.getsize(path)
    assert abs(ev["test_psnr"] - trained["test_psnr"]) <= 0.05 and ev["decode_fps"] > 0
    assert ev["mbps"] == pytest.approx(ev["bytes"] * 8 / (capture.num_frames / capture.fps) / 1e6)


def test_mutated_bitstreams_always_fail_loudly(encoded):
    _, path, _, _ = encoded
    data = open(path, "rb").read()
    rng = np.random.default_rng(3)
    tmp = path + ".bad"
    mutations = [data[:cut] for cut in rng.integers(0, len(data), 40)]
    for pos in rng.integers(0, len(data), 120):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(8))
        mutations.append(bytes(flipped))
    for pos in rng.integers(0, len(data) - 8, 40):
        mutations.append(data[:pos] + bytes(rng.integers(0, 256, 8, dtype=np.uint8)) + data[pos + 8:])
    for bad in mutations:
        with open(tmp, "wb") as f:
            f.write(bad)
        with pytest.raises(BitstreamError):
            s = DecodedStream(tmp)
            s.gaussians(s.num_frames - 1)


def test_bad_headers_versions_and_ranges(encoded, tmp_path):
    _, path, _, _ = encoded
    container = Container(path)
    sections = {name: container.read(name) for name in container.names()}
    with pytest.raises(FrameRangeError, match="outside the stream"):
        DecodedStream(path, (0, 999))
    with pytest.raises(BitstreamError, match="outside the decoded range"):
        DecodedStream(path, (0, 2)).gaussians(4)
    data = open(path, "rb").read()
    for bad, message in ((b"RIFF" + data[4:], "not a .gifs"), (data[:4] + b"\x07\x00" + data[6:], "version 7")):
        p = str(tmp_path / "bad.gifs")
        open(p, "wb").write(bad)
        with pytest.raises(BitstreamError, match=message):
            DecodedStream(p)
    # headers that pass their CRC but lie: a consistent container written with wrong fields
    cases = [
        (lambda h: h["gops"][0].update(num_anchors=h["gops"][0]["num_anchors"] + 1), "octree"),
        (lambda h: h["gops"][0].update(num_dynamic=h["gops"][0]["num_dynamic"] + 1), "M_de|stream grid"),
        (lambda h: h.update(num_frames=h["num_frames"] + 3), "cover"),
        (lambda h: h["model"].update(feat_dim=8), "decoder weights|shape"),
        (lambda h: h.update(format="other"), "format"),
        (lambda h: h["gops"][0]["ranges"].update(feat=[0, 1]), "rANS|left over|range|M_de|mask"),
    ]
    for mutate, message in cases:
        header = json.loads(json.dumps(container.header))
        mutate(header)
        p = str(tmp_path / "lie.gifs")
        write_container(p, header, sections)
        with pytest.raises(BitstreamError, match=message):
            s = DecodedStream(p)
            s.gaussians(s.num_frames - 1)
    missing = dict(sections)
    del missing["gop_000/stream/0003"]
    p = str(tmp_path / "missing.gifs")
    write_container(p, container.header, missing)
    with pytest.raises(BitstreamError, match="no section"):
        DecodedStream(p)
    assert DecodedStream(p, (0, 3)).gaussians(2) is not None  # earlier frames stay decodable


def test_x265_planes_are_lossless_and_sized(encoded):
    from gifstream_engine.codec.gop_coding import encode_gop
    from gifstream_engine.codec.sort2d import sort_to_grid
    from gifstream_engine.codec.video_planes import decode_x265, encode_x265_lossless, grid_planes, to_plane_video, x265_sizes

    run = encoded[0]
    gop = run.gops[0]
    symbols: dict = {}
    encode_gop(gop.model, run.entropy[0], gop.state, "gop_000", 0, symbols)
    anchors = symbols["anchors"]
    cfg = run.cfg.model
    assert anchors.shape == (len(symbols["xyz"]), cfg.feat_dim + 6 + 3 * cfg.num_offsets + 3)
    grid = sort_to_grid(np.concatenate([symbols["xyz"], anchors], 1))
    video = to_plane_video(grid_planes(grid, anchors))
    decoded = decode_x265(encode_x265_lossless(video))
    assert all(np.array_equal(d.astype(np.int64) + video.offset, f.astype(np.int64) + video.offset)
               for d, f in zip(decoded, video.frames))
    filled = grid >= 0
    assert np.array_equal(np.stack(decoded)[:, :grid.shape[0], :grid.shape[1]][:, filled].T.astype(np.int64) + video.offset,
                          anchors[grid[filled]])
    sizes = x265_sizes(symbols)
    assert sizes["time_invariant"] > 0 and sizes["stream"] > 0


def test_render_layer_from_the_bitstream_is_the_engines_render(encoded, tmp_path):
    """`gifstream render-layer X.gifs` (frame rate from the header) writes what `render()` shows, in linear light,
    with its expected depth as Z; the run folder gives the same layer."""
    from gifstream_engine.cli import main
    from gifstream_engine.render.exr_layer import read_exr

    run, path, _, capture = encoded
    camera = capture.cameras[capture.split_indices("test")[0]]
    cams = {"format": "gifstream-layer-cameras", "version": 1, "start_frame": 1, "scene_fps": capture.fps,
            "frames": [{"frame": f, **camera.to_json()} for f in (1, 4)]}
    with open(tmp_path / "cams.json", "w") as f:
        json.dump(cams, f)
    layers = {}
    for name, source in (("gifs", path), ("run", run.folder)):
        assert main(["render-layer", source, "--cameras", str(tmp_path / "cams.json"), "--out", str(tmp_path / name)]) == 0
        layers[name] = read_exr(str(tmp_path / name / "layer_0004.exr"))
    with torch.no_grad():
        expected = render(DecodedStream(path).gaussians(3, camera), camera)  # scene frame 4 = stream frame 3
    exr = layers["gifs"]
    alpha = exr["ViewLayer.Combined.A"]
    assert np.allclose(alpha, expected.alpha[..., 0].numpy(), atol=1e-5) and (alpha > 0.5).mean() > 0.5
    linear = np.stack([exr[f"ViewLayer.Combined.{c}"] for c in "RGB"], -1)
    covered = alpha > 1e-3
    straight = np.clip(linear[covered] / alpha[covered, None], 0, 1)
    display = np.where(straight <= 0.0031308, 12.92 * straight, 1.055 * straight ** (1 / 2.4) - 0.055)
    assert np.allclose(display * alpha[covered, None], expected.rgb.numpy()[covered], atol=2e-4)
    assert np.allclose(exr["ViewLayer.Depth.Z"][covered], expected.depth[..., 0].numpy()[covered], rtol=1e-5)
    assert np.abs(layers["run"]["ViewLayer.Combined.A"] - alpha).max() < 0.02  # the model renders what the stream does
