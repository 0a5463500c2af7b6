"""What `GIFStreamModel.decode` selects for a camera: every Gaussian that can reach the image (not only those whose
anchor's canonical centre is in view), and the same selection whether the Gaussians are compacted (the CPU's
decode) or kept in a fixed shape with what does not show at opacity 0 (a GPU step's, without read-backs)."""

import dataclasses

import numpy as np
import torch

from conftest import pinhole
from gifstream_engine.model import DecodeState, GIFStreamModel, ModelConfig
from gifstream_engine.render import render, render_batch
from gifstream_engine.render.projection import in_view
from gifstream_engine.train.densify import GrowthStats, accumulate
from gifstream_engine.train.losses import stream_regularisers
from test_motion import _moving_model_and_windows

COMPACT, FIXED = DecodeState(quantize="none"), DecodeState(quantize="none", fixed_shape=True)


def test_gaussians_of_anchors_outside_the_grown_view_that_reach_the_image_are_rendered():
    """Two anchors whose canonical centres project beyond the image grown by 15%: a large Gaussian reaching into
    the image from its left, and a small one that its motion brings to the image's middle at frame 1."""
    camera = pinhole(64, 48, f=40.0)  # centre (32, 24), 4 m in front: 1 m is 10 px
    xyz = np.array([[-4.2, 0.0, 4.0], [6.0, 0.0, 4.0]])  # u = -10 and 92: outside -9.6..73.6
    model = GIFStreamModel(xyz, None, 2, ModelConfig(num_offsets=1, feat_dim=8, hidden=8, knn=1))
    with torch.no_grad():
        model.log_scale[0, 3:] = np.log(2.0)  # sigma ~10 px: its 3.33-sigma extent reaches ~23 px into the image
        model.log_scale[1, 3:] = np.log(0.1)
        model.mask_logits[1, 1] = 10.0  # M_dy open for the moving one only
        model.motion_mlp[2].bias[0] = -6.0  # x translation -6 m where M_dy is open
        model.opacity_mlp[2].bias.fill_(2.0)
    assert not in_view(model.anchor_xyz, camera).any()
    image = render(model.decode(1, camera, COMPACT), camera, background=torch.zeros(3), backend="torch").rgb
    assert image[:, :3].amax() > 0.2  # the large Gaussian at the left edge
    assert image[20:28, 28:36].amax() > 0.2  # the moved one in the middle
    assert image[:, 40:].amax() < 1e-3  # and the moving one is no longer where its canonical centre is
    assert len(model.decode(1, camera, COMPACT)) == 2
    behind = pinhole(64, 48, f=40.0, w2c=np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, -30], [0, 0, 0, 1]]))
    assert len(model.decode(1, behind, COMPACT)) == 0  # nothing reaches a camera they are behind


def _with_closed_and_faint_anchors():
    """`test_motion`'s moving model with some anchors' M_p closed and some Gaussians of opacity <= 0."""
    model, view, windows, frames = _moving_model_and_windows()
    with torch.no_grad():
        model.mask_logits[::7, 3] = -3.0
        model.feat[::5] *= -4.0  # varied opacities: some children drop out
    return model, view, windows, frames


def _step_outputs(model, view, windows, frames, state):
    """A training step's outputs under `state`: the full image at frame 2, the windows, the loss's aux terms,
    every parameter's gradient and the growth statistics after the step."""
    model.zero_grad()
    gaussians, aux = model.decode(2, view, state, return_aux=True)
    out = render(gaussians, view, background=torch.zeros(3), backend="torch", track_means2d_grad=True)
    batch, slot = model.decode_windows(frames, windows, state)
    rgb, _ = render_batch(batch, slot, windows, background=torch.zeros(3), backend="torch")
    terms = {"scale": aux.mean_over_shown(aux.scales), **stream_regularisers(model, aux, 2)}
    loss = out.rgb.square().sum() + rgb.square().sum() + sum(terms.values())
    loss.backward()
    stats = GrowthStats.zeros(model.num_anchors, model.cfg.num_offsets, "cpu")
    accumulate(stats, aux, out.meta.means2d_grad(), out.meta.visible, view.width, view.height, model.cfg.num_offsets)
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return out.rgb.detach(), rgb.detach(), {k: v.detach() for k, v in terms.items()}, grads, stats, gaussians


def test_a_fixed_shape_decode_renders_and_learns_as_the_compact_one():
    """Images (full and windows), loss terms, parameter gradients and growth statistics agree; the fixed shape
    holds every anchor's K Gaussians per image, the compact decode only those that show."""
    model, view, windows, frames = _with_closed_and_faint_anchors()
    compact = _step_outputs(model, view, windows, frames, COMPACT)
    fixed = _step_outputs(model, view, windows, frames, FIXED)
    k, n = model.cfg.num_offsets, model.num_anchors
    assert len(fixed[5]) == n * k and 0 < len(compact[5]) < 0.9 * n * k
    assert int((fixed[5].opacities > 0).sum()) == len(compact[5])
    for a, b in zip(compact[:2], fixed[:2]):
        assert a.amax() > 0.1 and torch.allclose(a, b, atol=1e-5)
    for name in compact[2]:
        assert torch.allclose(compact[2][name], fixed[2][name], rtol=1e-5, atol=1e-7), name
    assert compact[3].keys() == fixed[3].keys()
    for name, grad in compact[3].items():
        assert torch.allclose(grad, fixed[3][name], rtol=1e-4, atol=1e-5), name
    assert model.mask_logits.grad is not None
    for field in dataclasses.fields(GrowthStats):
        a, b = getattr(compact[4], field.name), getattr(fixed[4], field.name)
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), field.name
    assert 0 < int((compact[4].anchor_seen > 0).sum()) < n  # some anchors were not decoded: not counted as seen


def test_a_fixed_shape_decode_of_windows_comes_in_blocks_of_rows_per_window():
    """What `render_batch(per_image=...)` relies on: window i's Gaussians are rows i*M..(i+1)*M-1, M =
    `rows_per_window`; a compact decode promises no blocks (None)."""
    model, _, windows, frames = _moving_model_and_windows()
    gaussians, slot = model.decode_windows(frames, windows, FIXED)
    m = model.rows_per_window(FIXED)
    assert m == model.num_anchors * model.cfg.num_offsets and len(gaussians) == len(windows) * m
    assert torch.equal(slot, torch.arange(len(windows)).repeat_interleave(m))
    assert model.rows_per_window(COMPACT) is None
