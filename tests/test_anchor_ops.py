"""The periodic per-anchor work of training, vectorised (issue 27): the same neighbours and the same grown voxels as
the straightforward implementations kept here as references."""

import os

import numpy as np
import pytest
import torch

from gifstream_engine.model import knn
from gifstream_engine.model.knn import nearest_kept
from gifstream_engine.train.densify import first_in_new_voxels, voxel_ids


def reference_first_in_new_voxels(keys, existing):
    """The growth step's former code: a Python set of every anchor's voxel."""
    taken = {tuple(v) for v in existing}
    _, first = np.unique(keys, axis=0, return_index=True)
    return np.array([i for i in sorted(first) if tuple(keys[i]) not in taken], dtype=np.int64)


def test_new_voxels_are_the_reference_ones():
    rng = np.random.default_rng(0)
    for trial in range(40):
        span = [3, 8, 40, 2**40][trial % 4]  # small boxes (many repeats) to keys far apart
        existing = rng.integers(-span, span, (int(rng.integers(0, 300)), 3))
        keys = rng.integers(-span, span, (int(rng.integers(1, 500)), 3))
        if len(existing) and trial % 3 == 0:
            keys[: len(keys) // 2] = existing[rng.integers(0, len(existing), len(keys) // 2)]  # inside anchors' voxels
        got = first_in_new_voxels(keys, existing)
        assert got.dtype == np.int64
        assert np.array_equal(got, reference_first_in_new_voxels(keys, existing)), trial


def test_voxel_ids_are_equal_exactly_where_voxels_are():
    rng = np.random.default_rng(1)
    extreme = np.array([[-2**62, 0, 5], [2**62, 0, 5], [0, 2**62, -2**62]])  # a box too wide to pack: ranks
    for a, b in ((rng.integers(-4, 4, (300, 3)), rng.integers(-4, 4, (200, 3))),
                 (np.concatenate([extreme, rng.integers(-4, 4, (100, 3))]), extreme[::-1].copy())):
        ia, ib = voxel_ids(a, b)
        rows, ids = np.concatenate([a, b]), np.concatenate([ia, ib])
        same_rows = (rows[:, None, :] == rows[None, :, :]).all(-1)
        assert np.array_equal(same_rows, ids[:, None] == ids[None, :])
    empty = voxel_ids(np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64))
    assert [len(x) for x in empty] == [0, 0]


def brute_force_neighbours(xyz, kept, k):
    d = ((xyz[:, None, :].astype(np.float64) - xyz[None, kept, :]) ** 2).sum(-1)
    d[kept[None, :] == np.arange(len(xyz))[:, None]] = np.inf  # never itself
    return [set(kept[np.argsort(row, kind="stable")[:k]].tolist()) for row in d]


def test_neighbours_are_the_nearest_kept_anchors():
    rng = np.random.default_rng(2)
    xyz = rng.normal(size=(500, 3)).astype(np.float32)  # distinct distances: no ties
    kept = np.sort(rng.choice(500, 350, replace=False))
    for threads in (1, 2):
        torch.set_num_threads(threads)
        idx = nearest_kept(xyz, kept, 6)
        assert idx.shape == (500, 6)
        assert [set(row.tolist()) for row in idx] == brute_force_neighbours(xyz, kept, 6)


def test_neighbours_with_fewer_kept_anchors_than_k():
    xyz = np.array([[0, 0, 0], [1, 0, 0], [3, 0, 0], [7, 0, 0]], np.float32)
    # every other kept anchor, nearest first, the farthest repeated
    assert nearest_kept(xyz, np.array([1, 2]), 4).tolist() == [[1, 2, 2, 2], [2, 2, 2, 2], [1, 1, 1, 1], [2, 1, 1, 1]]
    assert nearest_kept(xyz, np.array([], np.int64), 2).tolist() == [[1, 2], [0, 2], [1, 0], [2, 1]]  # none: all
    # format 1.0's rule asked the tree for k + 1 and dropped itself, else the farthest: kept to decode 1.0 streams
    legacy = nearest_kept(xyz, np.array([1, 2]), 4, rule="kdtree")
    assert legacy.tolist() == [[1, 1, 1, 1], [2, 2, 2, 2], [1, 1, 1, 1], [2, 2, 2, 2]]


def rule_reference(xyz, kept, k, voxel=None):
    """The canonical rule as its definition reads: every kept anchor but itself, by (d2, canonical rank) -- d2 in
    voxel steps for voxel centres, else in float64 of the positions -- the farthest repeated."""
    x = xyz.astype(np.float64) if voxel is None else np.floor(xyz.astype(np.float64) / voxel).astype(np.int64)
    kept = np.arange(len(xyz)) if len(kept) == 0 else kept
    canonical = kept[np.lexsort(xyz[kept].T[::-1])]
    rank = {int(a): r for r, a in enumerate(canonical)}
    rows = []
    for i in range(len(xyz)):
        others = [a for a in canonical if a != i] or [i]
        d2 = [((x[a, 0] - x[i, 0]) ** 2 + (x[a, 1] - x[i, 1]) ** 2) + (x[a, 2] - x[i, 2]) ** 2 for a in others]
        pick = [others[j] for j in sorted(range(len(others)), key=lambda j: (d2[j], rank.get(others[j], 0)))[:k]]
        rows.append(pick + [pick[-1]] * (k - len(pick)))
    return np.array(rows)


def lattice(rng, n, spread, voxel):
    keys = np.unique(rng.integers(-spread, spread, (3 * n, 3)), axis=0)
    keys = keys[rng.permutation(len(keys))[:n]]
    return ((keys + 0.5) * voxel).astype(np.float32)


@pytest.mark.parametrize("search", ["lattice", "tree", "every candidate"])
def test_canonical_rule_on_voxel_centres_with_ties(search, monkeypatch):
    """Anchors on voxel centres tie everywhere (six at one step, twelve at two...): each search -- shells on the
    lattice, the KD tree's candidates, every kept anchor -- gives the rule's answer, ties broken by rank, in voxel
    steps, and in float64 where the voxel size is not given."""
    monkeypatch.setattr(knn, "_BRUTE_FORCE_PAIRS", 1 << 40 if search == "every candidate" else 0)
    rng = np.random.default_rng(3)
    for trial in range(24):
        voxel = [0.25, 0.01, 1.0][trial % 3]
        xyz = lattice(rng, int(rng.integers(2, 300)), int(rng.choice([2, 4, 8, 40])), voxel)
        kept = np.sort(rng.choice(len(xyz), int(rng.integers(0, len(xyz) + 1)), replace=False))
        k = int(rng.integers(1, 9))
        for given in (voxel, None):
            got = nearest_kept(xyz, kept, k, voxel=given)
            assert np.array_equal(got, rule_reference(xyz, kept, k, given)), (search, trial, given)


def test_canonical_rule_ignores_the_anchors_order():
    rng = np.random.default_rng(4)
    xyz = lattice(rng, 2000, 12, 0.02)
    kept = np.nonzero(rng.random(len(xyz)) < 0.8)[0]
    idx = nearest_kept(xyz, kept, 6, voxel=0.02)
    perm = rng.permutation(len(xyz))
    back = np.argsort(perm)
    shuffled = nearest_kept(xyz[perm], np.sort(back[kept]), 6, voxel=0.02)
    assert np.array_equal(perm[shuffled[back]], idx)


@pytest.mark.parametrize("search", ["cube", "tree", "every candidate"])
def test_canonical_rule_where_the_lattice_search_gives_up(search, monkeypatch):
    """Anchors too far apart for the shells (>= 4 voxel steps apart) are measured in voxel steps by the other
    searches (cubes on the voxel table; else a KD tree's candidates or every kept anchor); voxel keys too large to
    pack are measured as positions."""
    monkeypatch.setattr(knn, "_BRUTE_FORCE_PAIRS", 1 << 40 if search == "every candidate" else 0)
    if search != "cube":
        monkeypatch.setattr(knn, "_CUBE_REACHES", ())
    cubed = []
    cube_search = knn._cube_search
    monkeypatch.setattr(knn, "_cube_search", lambda *a: cubed.append(len(a[3]) - len(left := cube_search(*a))) or left)
    rng = np.random.default_rng(5)
    sparse = ((np.unique(rng.integers(-60, 60, (400, 3)), axis=0)[:300] * 5 + 0.5) * 0.1).astype(np.float32)
    spread = ((np.unique(rng.integers(-12, 12, (900, 3)), axis=0)[:600] * 2 + 0.5) * 0.1).astype(np.float32)
    far = ((np.unique(rng.integers(-6, 6, (400, 3)), axis=0)[:200] + 2**20 + 0.5) * 1.0).astype(np.float32)
    for xyz, voxel, measured in ((sparse, 0.1, 0.1), (spread, 0.1, 0.1), (far, 1.0, None)):
        for share in (0.7, 0.2):
            kept = np.nonzero(rng.random(len(xyz)) < share)[0]
            for k in (1, 6, 11):
                assert np.array_equal(nearest_kept(xyz, kept, k, voxel=voxel), rule_reference(xyz, kept, k, measured))
    assert (sum(cubed) > 0) is (search == "cube")  # the cubes took rows (and only where they were allowed to)


def _anchor_state(seed):
    from gifstream_engine.model import GIFStreamModel, ModelConfig
    from gifstream_engine.train.anchors import PER_ANCHOR_LR, AnchorState
    from gifstream_engine.train.densify import GrowthStats

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = GIFStreamModel(rng.normal(size=(60, 3)).astype(np.float32), None, 4, ModelConfig())
    params = model.per_anchor_parameters()
    optimizer = torch.optim.Adam([{"params": [params[name]], "lr": 0.1, "name": name} for name in PER_ANCHOR_LR])
    for p in params.values():
        p.grad = torch.randn_like(p)
    optimizer.step()  # moments that differ per row
    stats = GrowthStats.zeros(60, model.cfg.num_offsets, "cpu")
    for value in vars(stats).values():
        value.copy_(torch.rand(value.shape))
    return AnchorState(model, optimizer, stats)


def test_growing_and_pruning_in_one_copy_is_extend_then_select():
    """`extend(parents, centres, keep)` (growth's single copy) leaves every per-anchor table as `extend` followed by
    `select` did."""
    from gifstream_engine.train.anchors import PER_ANCHOR_LR

    rng = np.random.default_rng(3)
    keep = torch.as_tensor(rng.random(60) < 0.7)
    parents = torch.as_tensor(rng.integers(0, 60, 9))  # some of them pruned in the same step
    centres = torch.as_tensor(rng.normal(size=(9, 3)), dtype=torch.float32)
    two, one = _anchor_state(0), _anchor_state(0)
    two.extend(parents, centres)
    two.select(torch.cat([keep, keep.new_ones(9)]))
    one.extend(parents, centres, keep)
    assert torch.equal(two.model.anchor_xyz, one.model.anchor_xyz)
    for name in PER_ANCHOR_LR:
        a, b = getattr(two.model, name), getattr(one.model, name)
        assert torch.equal(a, b), name
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(two.optimizer.state[a][key], one.optimizer.state[b][key]), (name, key)
    for field, value in vars(two.stats).items():
        assert torch.equal(value, getattr(one.stats, field)), field
    assert one.model.num_anchors == int(keep.sum()) + 9 and one.stream_grid is None


def test_runs_saved_before_the_rule_keep_the_legacy_one():
    """A run's config.json from before format 1.1 has no knn_rule: it was trained, and continues, with the KD tree's
    neighbours; a config that names its rule keeps it, and a new run takes the canonical one."""
    from gifstream_engine.train.config import RunConfig

    saved = RunConfig().to_dict()
    assert saved["model"]["knn_rule"] == "canonical" and RunConfig.from_dict(saved).model.knn_rule == "canonical"
    del saved["model"]["knn_rule"]
    assert RunConfig.from_dict(saved).model.knn_rule == "kdtree"
    with pytest.raises(Exception, match="knn_rule"):
        RunConfig.from_dict({"model": {"knn_rule": "nearest"}})


def test_growth_and_pruning_move_rows_within_their_buffers():
    """Several growths and prunings: every per-anchor table and moment holds the rows a plain gather and
    concatenation gives, in the buffer it had while the rows fit (no fresh memory), in a larger one when they
    outgrow it."""
    from gifstream_engine.train.anchors import HEADROOM, PER_ANCHOR_LR

    rng = np.random.default_rng(5)
    state = _anchor_state(0)
    expected = {name: getattr(state.model, name).detach().clone() for name in PER_ANCHOR_LR}
    moments = {name: state.optimizer.state[getattr(state.model, name)]["exp_avg"].clone() for name in PER_ANCHOR_LR}
    for round_ in range(6):
        n = state.model.num_anchors
        keep = torch.as_tensor(rng.random(n) < 0.8)
        grown = int(rng.integers(1, 12 if round_ else 30))
        parents = torch.as_tensor(rng.integers(0, n, grown))
        centres = torch.as_tensor(rng.normal(size=(grown, 3)), dtype=torch.float32)
        before = {name: getattr(state.model, name).untyped_storage().data_ptr() for name in PER_ANCHOR_LR}
        capacity = {name: getattr(state.model, name).untyped_storage().nbytes() for name in PER_ANCHOR_LR}
        new_rows = {name: expected[name][parents] for name in ("feat", "stream", "mask_logits")}
        state.extend(parents, centres, keep)
        for name in PER_ANCHOR_LR:
            table = getattr(state.model, name)
            if name in new_rows:
                expected[name] = torch.cat([expected[name][keep], new_rows[name]])
                assert torch.equal(table, expected[name]), (round_, name)
            else:
                assert torch.equal(table[: int(keep.sum())], expected[name][keep]), (round_, name)
                expected[name] = table.detach().clone()
            moments[name] = torch.cat([moments[name][keep], moments[name].new_zeros(grown, *moments[name].shape[1:])])
            assert torch.equal(state.optimizer.state[table]["exp_avg"], moments[name]), (round_, name)
            needed = table.numel() * table.element_size()
            if needed <= capacity[name]:
                assert table.untyped_storage().data_ptr() == before[name], (round_, name)  # moved in place
            else:
                assert table.untyped_storage().nbytes() >= HEADROOM * needed - table[0].numel() * 4, (round_, name)


def test_checkpoints_save_the_rows_not_their_buffers(tmp_path):
    from gifstream_engine.train.checkpoint import save_state

    buffer = torch.arange(100_000 * 3, dtype=torch.float32).reshape(100_000, 3)
    rows = buffer[:60_000]
    save_state({"step": 1, "elapsed": 0.0, "config": {}, "num_frames": 1, "model": {"stream": rows},
                "optimizer": {"state": {0: {"exp_avg": rows}}}}, str(tmp_path / "a.pt"))
    save_state({"step": 1, "elapsed": 0.0, "config": {}, "num_frames": 1, "model": {"stream": rows.clone()},
                "optimizer": {"state": {0: {"exp_avg": rows.clone()}}}}, str(tmp_path / "b.pt"))
    assert os.path.getsize(tmp_path / "a.pt") == os.path.getsize(tmp_path / "b.pt")
    loaded = torch.load(str(tmp_path / "a.pt"), weights_only=True)
    assert torch.equal(loaded["model"]["stream"], rows) and torch.equal(loaded["optimizer"]["state"][0]["exp_avg"], rows)


@pytest.mark.parametrize("kept_share", [0.97, 0.6, 0.1])
def test_rows_compacted_in_place_equal_a_gather(kept_share):
    """Both ways a chunk moves (gathered straight into its rows once rows moved far enough, through a copy before):
    the same rows as a plain gather into new memory."""
    from gifstream_engine.train.anchors import compact_rows

    rng = np.random.default_rng(11)
    buffer = torch.as_tensor(rng.normal(size=(30_000, 5, 2)), dtype=torch.float32)
    keep = torch.as_tensor(rng.random(len(buffer)) < kept_share)
    keep[:100] = True  # a leading block that stays where it is
    index = torch.nonzero(keep).squeeze(1)
    expected = buffer[index].clone()
    compact_rows(buffer, index)
    assert torch.equal(buffer[: len(index)], expected)
