import numpy as np

from gifstream_engine.codec.sort2d import grid_side, neighbour_difference, sort_to_grid


def smooth_cloud(n, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-1, 1, (n, 3))
    feat = np.concatenate([np.sin(3 * xyz), np.cos(2 * xyz[:, :1] + xyz[:, 1:2])], 1) + 0.05 * rng.normal(size=(n, 4))
    return np.concatenate([xyz, feat], 1)


def test_grid_is_a_permutation_with_padding():
    for n in (1, 2, 7, 100, 1001):
        attrs = smooth_cloud(n)
        grid = sort_to_grid(attrs)
        side = grid_side(n)
        assert grid.shape == (side, side)
        filled = grid[grid >= 0]
        assert sorted(filled.tolist()) == list(range(n))


def test_sorted_grid_is_much_smoother_than_random_order():
    attrs = smooth_cloud(4096)
    sorted_grid = sort_to_grid(attrs)
    random_grid = np.random.default_rng(1).permutation(4096).reshape(64, 64)
    ratio = neighbour_difference(sorted_grid, attrs) / neighbour_difference(random_grid, attrs)
    print(f"neighbour difference sorted / random: {ratio:.3f}")
    assert ratio < 0.5
