import numpy as np
import pytest

from gifstream_engine.codec.sort2d import grid_side, neighbour_difference, sort_to_grid, sort_to_grid_fast


def smooth_cloud(n, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-1, 1, (n, 3))
    feat = np.concatenate([np.sin(3 * xyz), np.cos(2 * xyz[:, :1] + xyz[:, 1:2])], 1) + 0.05 * rng.normal(size=(n, 4))
    return np.concatenate([xyz, feat], 1)


def stream_like(n, frames=30, channels=4, seed=0):
    """Positions and a stream in steps, smooth in space and time: the trainer's stream-grid attributes."""
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-1, 1, (n, 3))
    t = np.linspace(0, 1, frames)
    phase = xyz @ rng.normal(size=(3, channels))
    stream = 4 * np.sin(2 * np.pi * (t[None, :, None] + phase[:, None, :])) + rng.normal(size=(n, frames, channels))
    return np.concatenate([xyz, np.round(stream).reshape(n, -1)], 1)


@pytest.mark.parametrize("sort", [sort_to_grid, sort_to_grid_fast])
def test_grid_is_a_permutation_with_padding(sort):
    for n in (1, 2, 3, 5, 7, 100, 1001):
        attrs = smooth_cloud(n)
        grid = sort(attrs)
        side = grid_side(n)
        assert grid.shape == (side, side)
        filled = grid[grid >= 0]
        assert sorted(filled.tolist()) == list(range(n))
    assert sort_to_grid_fast(np.zeros((0, 5))).tolist() == [[-1]]


def test_sorted_grid_is_much_smoother_than_random_order():
    attrs = smooth_cloud(4096)
    sorted_grid = sort_to_grid(attrs)
    random_grid = np.random.default_rng(1).permutation(4096).reshape(64, 64)
    ratio = neighbour_difference(sorted_grid, attrs) / neighbour_difference(random_grid, attrs)
    print(f"neighbour difference sorted / random: {ratio:.3f}")
    assert ratio < 0.5


@pytest.mark.parametrize("attrs", [smooth_cloud(3000), stream_like(2500)], ids=["smooth", "stream"])
def test_fast_sort_fills_the_same_cells_about_as_smoothly(attrs):
    """The trainer's sort uses the coder's split rule (the same cells are filled) and its grids are about as smooth."""
    exact, fast = sort_to_grid(attrs), sort_to_grid_fast(attrs)
    assert np.array_equal(exact >= 0, fast >= 0)
    ratio = neighbour_difference(fast, attrs) / neighbour_difference(exact, attrs)
    print(f"neighbour difference fast / exact: {ratio:.3f}")
    assert ratio < 1.05


def test_fast_sort_is_deterministic_and_keeps_constant_data_in_order():
    attrs = stream_like(700)
    assert np.array_equal(sort_to_grid_fast(attrs), sort_to_grid_fast(attrs.copy()))
    constant = np.ones((9, 4))  # no direction to sort along: the anchors fill the cells in their order
    assert np.array_equal(sort_to_grid_fast(constant), sort_to_grid(constant))
