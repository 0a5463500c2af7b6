import numpy as np
import pytest

from gifstream_engine.capture.sfm_init import initial_point_cloud, triangulate_frame
from gifstream_engine.capture.synth import SCENE_BOX


def test_triangulated_points_lie_on_the_scene(synth_loaded):
    cloud = triangulate_frame(synth_loaded)
    assert cloud.source == "sfm" and len(cloud.points) >= 20, cloud.stats
    # The set's static geometry is known: points must fall inside its box, most of them on its surfaces
    # (floor z=0, back wall y=3, side wall x=-3.5) or the props -- a wrong pose convention scatters them.
    lo, hi = SCENE_BOX[0] - 0.2, SCENE_BOX[1] + 0.2
    inside = np.all((cloud.points > lo) & (cloud.points < hi), axis=1)
    assert inside.mean() > 0.9
    on_surface = (np.abs(cloud.points[:, 2]) < 0.1) | (np.abs(cloud.points[:, 1] - 3.0) < 0.1) | (np.abs(cloud.points[:, 0] + 3.5) < 0.1)
    assert on_surface.mean() > 0.5
    assert cloud.colors.dtype == np.uint8 and cloud.colors.shape == cloud.points.shape


def test_falls_back_to_random_points_with_warning(synth_loaded):
    with pytest.warns(UserWarning, match="random points in the scene bounds"):
        cloud = initial_point_cloud(synth_loaded, min_points=10**6, random_count=500)
    assert cloud.source == "random" and len(cloud.points) == 500
    lo, hi = synth_loaded.scene_bounds
    assert np.all(cloud.points >= lo) and np.all(cloud.points <= hi)
