"""The `.gifs` format on a freshly built random model and entropy models (no capture, no training: seconds).

- round trip: what the decoder rebuilds is what the encoder's model decodes with the coded values;
- golden bytes: the encoder's output for a fixed model is pinned (format 1.1). When the format changes on
  purpose, regenerate with GIFSTREAM_REGENERATE_GOLDEN=1 and bump the container version;
- older formats still decode: format 1.0's golden file (its header has no knn_rule) decodes with the legacy
  neighbour rule, as the same random model built with that rule.
"""

import dataclasses
import os

import numpy as np
import pytest
import torch

from gifstream_engine.codec.bitstream import CodableSequence, DecodedStream, encode_run
from gifstream_engine.codec.container import VERSION, Container
from gifstream_engine.codec.entropy_models import EntropyModels
from gifstream_engine.codec.gop_coding import anchor_positions, coded_anchor_values
from gifstream_engine.codec.rate import quantised_anchors
from gifstream_engine.model import DecodeState, GIFStreamModel, ModelConfig
from gifstream_engine.sequence import SequenceGop
from gifstream_engine.capture.camera import Rig

from conftest import pinhole

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "golden_1_1.gifs")
GOLDEN_1_0 = os.path.join(os.path.dirname(__file__), "data", "golden_1_0.gifs")
REGENERATE = "GIFSTREAM_REGENERATE_GOLDEN"
SMALL = ModelConfig(feat_dim=6, stream_dim=2, num_offsets=2, hidden=8, knn=3, time_freqs=2, voxel_size=0.25)
STATE = DecodeState(use_stream=True, quantize="round", feat_step=0.5, geo_step=0.1)


def random_gop(seed: int, num_frames: int, n: int = 40, cfg: ModelConfig = SMALL):
    """(model, entropy models) with every parameter random, anchors on voxel centres, some pruned, some dynamic."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(-6, 6, (3 * n, 3)), axis=0)[:n]
    xyz = anchor_positions(keys, cfg.voxel_size)
    model = GIFStreamModel(xyz, rng.integers(0, 256, (len(xyz), 3)), num_frames, cfg)
    with torch.no_grad():
        model.feat.normal_(0, 2)
        model.stream.normal_(0, 1.5)
        model.log_scale.normal_(-2, 0.5)
        model.offsets.normal_(0, 0.7)
        model.mask_logits.normal_(0, 2)
        model.mask_logits[:, 3] = 3.0
        model.mask_logits[:4, 3] = -3.0  # pruned: never coded
        model.mask_logits[4:12, 0] = 3.0  # a stream to code
        for p in model.decoder_parameters():
            p.normal_(0, 0.3)
        model.opacity_mlp[2].bias.fill_(1.5)  # opacities well above 0: float16 weights do not drop a Gaussian
    model.update_knn()
    entropy = EntropyModels(cfg.feat_dim, cfg.stream_dim, cfg.num_offsets)
    with torch.no_grad():
        for p in entropy.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval(), entropy.eval()


# the training settings a header records (informational): fixed here, so that a new TrainConfig field does not
# change the golden bytes
TRAIN_SETTINGS = {"steps": 100, "gop_length": 3, "downscale": 1.0, "seed": 0, "feat_step": STATE.feat_step,
                  "geo_step": STATE.geo_step}


def random_run(seed: int = 0, gop_frames=(3, 2), cfg: ModelConfig = SMALL) -> CodableSequence:
    gops, entropies, offset = [], [], 0
    for g, frames in enumerate(gop_frames):
        model, entropy = random_gop(seed + g, frames, cfg=cfg)
        with torch.no_grad():
            values, _ = quantised_anchors(model, entropy, STATE)
        gops.append(SequenceGop(offset, model, STATE, coded_anchor_values(model, entropy, STATE, values)))
        entropies.append(entropy)
        offset += frames
    cameras = [pinhole(32, 24, name="c0"), pinhole(32, 24, f=28.0, name="c1")]
    rig = Rig(24.0, np.array([[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]]), cameras)
    run = CodableSequence(gops, entropies, cfg, TRAIN_SETTINGS, "random", rig.fps)
    run.rig = rig
    return run


@pytest.fixture(scope="module")
def random_stream(tmp_path_factory):
    run = random_run()
    path = str(tmp_path_factory.mktemp("format") / "random.gifs")
    encode_run(run, path, run.rig)
    return run, path


def assert_decodes_as(run: CodableSequence, path: str) -> None:
    """The decoder holds the kept anchors in coding order: compare each frame as sets of Gaussians sorted by position;
    only the float16-rounded decoder weights differ."""
    stream = DecodedStream(path)
    for t in range(run.num_frames):
        expected, decoded = run.gaussians(t), stream.gaussians(t)
        assert len(expected) == len(decoded) > 0
        order = lambda g: np.lexsort(g.means.numpy().T[::-1])  # noqa: E731
        e, d = order(expected), order(decoded)
        for a, b in zip(expected.tensors(), decoded.tensors()):
            assert torch.allclose(a[e], b[d], atol=0.05, rtol=0.05), (t, (a[e] - b[d]).abs().max())
        torch.testing.assert_close(expected.means[e], decoded.means[d], atol=0.02, rtol=0.0)


def test_random_model_round_trip(random_stream):
    run, path = random_stream
    stream = DecodedStream(path)
    assert stream.num_frames == run.num_frames == 5 and stream.fps == 24.0
    assert [c.name for c in stream.cameras] == ["c0", "c1"]
    header = Container(path).header
    assert [g["num_dynamic"] > 0 for g in header["gops"]] == [True, True]
    assert [g["num_anchors"] for g in header["gops"]] == [36, 36]  # the 4 pruned anchors are not coded
    assert header["model"]["knn_rule"] == "canonical"
    assert_decodes_as(run, path)


def test_a_frame_decodes_its_stream_only_through_itself(random_stream):
    """The first frame shows after the GOP's anchors and one stream frame (not the GOP's whole stream), and frames
    decoded as they come equal those of a GOP decoded whole."""
    _, path = random_stream
    progressive, whole = DecodedStream(path), DecodedStream(path)
    whole.decoded_gop(0)
    first = progressive.gaussians(0)
    assert progressive._current[1].walk.t == 1
    for t in range(5):
        a, b = progressive.gaussians(t), whole.gaussians(t)
        for x, y in zip(a.tensors(), b.tensors()):
            assert torch.equal(x, y), t
    assert torch.equal(first.means, whole.gaussians(0).means)


def test_golden_bytes_pin_format_1_1(random_stream):
    _, path = random_stream
    data = open(path, "rb").read()
    assert VERSION == (1, 1)
    if os.environ.get(REGENERATE) == "1":
        os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
        with open(GOLDEN, "wb") as f:
            f.write(data)
    golden = open(GOLDEN, "rb").read()
    assert data == golden, (f"the encoder's bytes changed ({len(data)} vs {len(golden)} golden bytes): a format change "
                            f"needs a new version; regenerate with {REGENERATE}=1 only on purpose")
    # and the golden file still decodes
    stream = DecodedStream(GOLDEN)
    assert stream.num_frames == 5 and len(stream.gaussians(4)) > 0


def test_format_1_0_decodes_with_its_neighbour_rule():
    """A 1.0 stream's anchors were trained with the KD tree's neighbours: its decoder finds those, not 1.1's (the
    random model's lattice anchors tie everywhere, so the two rules differ on it)."""
    old, new = Container(GOLDEN_1_0), Container(GOLDEN)
    header = old.header
    assert old.version == (1, 0) and "knn_rule" not in header["model"]
    # 1.1 is 1.0 plus the rule's name: the same model codes to the same payloads, section by section
    assert list(old.table) == list(new.table) and all(old.read(name) == new.read(name) for name in old.table)
    assert {**header["model"], "knn_rule": "canonical"} == new.header["model"]
    legacy = dataclasses.replace(SMALL, knn_rule="kdtree")
    assert DecodedStream(GOLDEN_1_0).header.model.knn_rule == "kdtree"
    assert_decodes_as(random_run(cfg=legacy), GOLDEN_1_0)
    gop = random_gop(0, 3)[0]
    assert not np.array_equal(gop.knn_index.numpy(), random_gop(0, 3, cfg=legacy)[0].knn_index.numpy())
