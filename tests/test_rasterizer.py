import numpy as np
import pytest
import torch

from conftest import pinhole, random_gaussians
from gifstream_engine.errors import RenderError
from gifstream_engine.render import Gaussians, render
from gifstream_engine.render.projection import project_gaussians


def one_gaussian(x=0.1, y=-0.05, z=2.0, sigma=0.08, opacity=0.8, color=(0.2, 0.6, 0.9), dtype=torch.float64):
    t = lambda v: torch.tensor(v, dtype=dtype)  # noqa: E731
    return Gaussians(t([[x, y, z]]), t([[1.0, 0, 0, 0]]), t([[sigma] * 3]), t([opacity]), t([color]))


def test_single_isotropic_gaussian_matches_closed_form():
    cam = pinhole(40, 30, f=50.0)
    g = one_gaussian()
    out = render(g, cam, backend="torch")
    # Closed form: 2D mean f*x/z + c, 2D variance (f*sigma/z)^2 + 0.3 (isotropic, at the centre of the view)
    mx, my = 50 * 0.1 / 2 + 20, 50 * -0.05 / 2 + 15
    var = (50 * 0.08 / 2) ** 2 + 0.3
    xs, ys = np.meshgrid(np.arange(40) + 0.5, np.arange(30) + 0.5)
    alpha = np.minimum(0.999, 0.8 * np.exp(-0.5 * ((xs - mx) ** 2 + (ys - my) ** 2) / var))
    alpha[alpha < 1 / 255] = 0
    assert np.allclose(out.alpha[..., 0].numpy(), alpha, atol=1e-3)  # the Jacobian's off-centre terms are tiny here
    assert np.allclose(out.rgb.numpy(), alpha[..., None] * np.array([0.2, 0.6, 0.9]), atol=1e-3)
    inside = alpha > 0
    assert np.allclose(out.depth[..., 0].numpy()[inside], 2.0, atol=1e-6)
    peak = np.unravel_index(out.alpha[..., 0].argmax(), (30, 40))
    assert abs(peak[1] + 0.5 - mx) <= 0.5 and abs(peak[0] + 0.5 - my) <= 0.5


def test_front_gaussian_occludes_back_one():
    cam = pinhole(20, 20, f=20.0)
    front = one_gaussian(0, 0, 2.0, 0.3, 0.99, (1.0, 0, 0))
    back = one_gaussian(0, 0, 4.0, 0.6, 0.99, (0, 0, 1.0))
    for order in ([front, back], [back, front]):
        out = render(Gaussians.cat(order), cam, backend="torch")
        centre = out.rgb[10, 10]
        assert centre[0] > 0.95 and centre[2] < 0.05


def test_transmittance_stops_like_gsplat():
    # Layers of opacity 0.95: T after layers 1..4 is 0.05, 2.5e-3, 1.25e-4, 6.25e-6. gsplat stops (exclusively)
    # once T would fall to 1e-4, so the fourth, white layer must not contribute at all.
    cam = pinhole(8, 8, f=8.0)
    colors = [(1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0), (1.0, 1.0, 1.0)]
    layers = Gaussians.cat([one_gaussian(0, 0, 1.0 + i, 5.0, 0.95, c) for i, c in enumerate(colors)])
    out = render(layers, cam, backend="torch")
    a = out.alpha[4, 4, 0].item()
    var = (8 * 5.0 / 1.0) ** 2 + 0.3  # the layers at depth 1 dominate; alpha of each at this pixel ~ 0.95
    first = 0.95 * np.exp(-0.5 * (0.5**2 + 0.5**2) / var)  # pixel centre (4.5, 4.5), mean at (4, 4)
    r, g, b = out.rgb[4, 4].tolist()
    assert r == pytest.approx(first, rel=1e-6)
    assert g > 0 and b > 0
    assert a == pytest.approx(r + g + b, rel=1e-9)  # nothing of the white layer (it would add to all three)
    assert 1 - a > 1e-4


def test_culling_behind_camera_and_off_screen():
    cam = pinhole(16, 16, f=16.0)
    g = Gaussians.cat([one_gaussian(0, 0, -2.0), one_gaussian(50, 0, 2.0), one_gaussian(0, 0, 2.0)])
    out = render(g, cam, backend="torch")
    assert out.meta.visible.tolist() == [False, False, True]
    assert (out.meta.radii[:2] == 0).all() and (out.meta.radii[2] > 0).all()


def test_gradients_match_finite_differences():
    cam = pinhole(10, 8, f=12.0)
    g = random_gaussians(3, seed=1, depth=3.0, dtype=torch.float64)
    g.scales.data[:] = 0.35
    g.opacities.data[:] = torch.tensor([0.7, 0.5, 0.6], dtype=torch.float64)
    inputs = tuple(t.detach().clone().requires_grad_(True) for t in g.tensors())
    weights = torch.rand(8, 10, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def loss(*tensors):
        out = render(Gaussians(*tensors), cam, backend="torch")
        return (out.rgb * weights).sum() + out.alpha.sum()

    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_banded_rasterisation_equals_single_pass():
    cam = pinhole(48, 36, f=40.0)
    g1 = random_gaussians(300, seed=2, requires_grad=True)
    g2 = random_gaussians(300, seed=2, requires_grad=True)
    a = render(g1, cam, backend="torch")
    b = render(g2, cam, backend="torch", max_pairs=2000)  # forces many checkpointed bands
    assert torch.allclose(a.rgb, b.rgb, atol=1e-6) and torch.allclose(a.alpha, b.alpha, atol=1e-6)
    a.rgb.sum().backward()
    b.rgb.sum().backward()
    for t1, t2 in zip(g1.tensors(), g2.tensors()):
        assert torch.allclose(t1.grad, t2.grad, atol=1e-5)


def test_means2d_receive_gradients_for_densification():
    cam = pinhole(32, 24, f=30.0)
    g = random_gaussians(50, seed=4, requires_grad=True)
    out = render(g, cam, backend="torch", track_means2d_grad=True)
    with pytest.raises(RenderError, match="no gradient"):
        out.meta.means2d_grad()  # before backward: an error, never a silent skip
    out.rgb.mean().backward()
    grad = out.meta.means2d_grad()
    assert grad.shape == (50, 2)
    assert (grad[out.meta.visible].abs().sum(-1) > 0).any()
    assert (grad[~out.meta.visible] == 0).all()
    with pytest.raises(RenderError, match="track_means2d_grad"):
        render(g, cam, backend="torch").meta.means2d_grad()


def _gsplat_stand_in(means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane, far_plane,
                     eps2d, packed, render_mode, backgrounds):
    """gsplat 1.5's `rasterization` contract on the CPU: batched (C, ...) outputs, meta["means2d"] (C, N, 2)
    produced inside the call (so that a view of it never holds a gradient), radii (C, N, 2), depths (C, N)."""
    from gifstream_engine.render.projection import project_gaussians
    from gifstream_engine.render.torch_rasterizer import rasterize

    assert not packed and render_mode == "RGB+ED"
    proj = project_gaussians(means, quats, scales, opacities, viewmats[0], Ks[0], width, height, near_plane, far_plane, eps2d)
    means2d = proj.means2d[None] * 1.0  # a non-leaf batch tensor, as gsplat's projection returns
    proj.means2d = means2d[0]
    out, alpha = rasterize(proj, opacities, torch.cat([colors, proj.depths[:, None]], -1), width, height)
    out = torch.cat([out[..., :3], out[..., 3:4] / alpha.clamp(min=1e-10)], -1)
    meta = {"means2d": means2d, "radii": proj.radii[None], "depths": proj.depths[None]}
    return out[None], alpha[None], meta


def test_gsplat_call_contract_keeps_the_means2d_gradient(monkeypatch):
    """The CUDA path's densification statistics, checked on the CPU with a stand-in of gsplat's return shapes."""
    from gifstream_engine.render import api, gsplat_backend

    monkeypatch.setattr(gsplat_backend, "gsplat_rasterization", lambda: _gsplat_stand_in)
    monkeypatch.setattr(api, "choose_backend", lambda requested, device: "gsplat")
    cam = pinhole(32, 24, f=30.0)
    g = random_gaussians(50, seed=4, requires_grad=True)
    out = render(g, cam, backend="gsplat", track_means2d_grad=True)
    assert out.meta.backend == "gsplat" and out.meta.means2d.shape == (50, 2)
    out.rgb.mean().backward()
    assert out.meta.means2d.grad is None  # the view gsplat users index: why the source tensor is tracked
    grad = out.meta.means2d_grad()
    reference = render(random_gaussians(50, seed=4, requires_grad=True), cam, backend="torch", track_means2d_grad=True)
    reference.rgb.mean().backward()
    assert torch.allclose(grad, reference.meta.means2d_grad(), atol=1e-6)


def test_background_fills_transparent_pixels():
    cam = pinhole(8, 8, f=8.0)
    g = one_gaussian(100, 0, 2.0)
    out = render(g, cam, background=torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64), backend="torch")
    assert torch.allclose(out.rgb, torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64).expand(8, 8, 3))


def test_gsplat_backend_refused_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(RenderError, match="CUDA"):
        render(one_gaussian(), pinhole(), backend="gsplat")


def test_bad_shapes_are_rejected():
    with pytest.raises(RenderError, match="opacities"):
        Gaussians(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 3), torch.zeros(3), torch.zeros(2, 3))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA and gsplat")
def test_parity_with_gsplat():
    cam = pinhole(128, 96, f=100.0)
    g = random_gaussians(20000, seed=5)
    cpu = render(g, cam, backend="torch")
    gpu = render(g.to("cuda"), cam, backend="gsplat")
    diff = (cpu.rgb - gpu.rgb.cpu()).abs().max().item()
    print(f"max abs pixel difference torch vs gsplat: {diff:.2e}")
    assert diff < 1e-3
    proj = project_gaussians(g.means, g.quats, g.scales, g.opacities, torch.eye(4), torch.as_tensor(cam.K, dtype=torch.float32), 128, 96)
    assert torch.equal(proj.radii, gpu.meta.radii.cpu())


def test_distorted_camera_is_refused_not_rendered_wrong():
    import dataclasses

    cam = dataclasses.replace(pinhole(), distortion=np.array([0.1, 0.0, 0.0, 0.0]))
    with pytest.raises(RenderError, match="lens distortion"):
        render(one_gaussian(), cam, backend="torch")


def test_render_batch_equals_one_render_per_image():
    from gifstream_engine.render import render_batch

    camera = pinhole(48, 36, f=40.0)
    windows = [camera.cropped(0, 0, 20, 16), camera.cropped(14, 9, 20, 16), camera.cropped(28, 20, 20, 16)]
    g = random_gaussians(400, seed=5, depth=3.0, dtype=torch.float64, requires_grad=True)
    image_of = torch.randint(len(windows), (len(g),), generator=torch.Generator().manual_seed(1))
    background = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    rgb, alpha = render_batch(g, image_of, windows, background, backend="torch")
    assert rgb.shape == (3, 16, 20, 3) and alpha.shape == (3, 16, 20, 1)
    weights = torch.rand(rgb.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    batched = torch.autograd.grad((weights * rgb).sum() + alpha.sum(), g.tensors())
    separate = [render(g.select(image_of == i), w, background, backend="torch") for i, w in enumerate(windows)]
    for i, out in enumerate(separate):
        assert out.alpha.max() > 0.5  # each window shows something
        assert torch.allclose(rgb[i], out.rgb, atol=1e-12) and torch.allclose(alpha[i], out.alpha, atol=1e-12)
    loss = sum((weights[i] * out.rgb).sum() + out.alpha.sum() for i, out in enumerate(separate))
    for a, b in zip(batched, torch.autograd.grad(loss, g.tensors())):
        assert torch.allclose(a, b, atol=1e-10)
    with pytest.raises(RenderError, match="one image size"):
        render_batch(g, image_of, [camera, windows[0], windows[1]], backend="torch")


def _gsplat_batch_stand_in(calls):
    """gsplat 1.5's `rasterization` with leading batch dimensions on the CPU: B scenes of N Gaussians (opacities
    (B, N)), each seen by its own C = 1 camera; Gaussians below gsplat's alpha threshold culled as its projection
    does. Each call is recorded in `calls`."""
    from gifstream_engine.render.projection import ALPHA_THRESHOLD, project_gaussians
    from gifstream_engine.render.torch_rasterizer import rasterize

    def rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, packed, render_mode,
                      backgrounds):
        calls.append(means.shape)
        assert not packed and render_mode == "RGB" and viewmats.shape[1] == 1 and opacities.dim() == 2
        images, alphas = [], []
        for b in range(len(viewmats)):
            shown = opacities[b] >= ALPHA_THRESHOLD
            proj = project_gaussians(means[b][shown], quats[b][shown], scales[b][shown], opacities[b][shown],
                                     viewmats[b, 0], Ks[b, 0], width, height)
            rgb, alpha = rasterize(proj, opacities[b][shown], colors[b][shown], width, height)
            if backgrounds is not None:
                rgb = rgb + (1 - alpha) * backgrounds[b, 0]
            images.append(rgb[None])
            alphas.append(alpha[None])
        return torch.stack(images), torch.stack(alphas), {}

    return rasterization


def test_render_batch_on_gsplat_is_one_call(monkeypatch):
    """The CUDA path of `render_batch`, on the CPU with a gsplat stand-in: one call for every window (a batch of
    scenes, each image's Gaussians alone visible in it), the same images and gradients as the PyTorch backend's
    canvas, and an image with none (a window nothing reaches) is its background."""
    from gifstream_engine.render import api, gsplat_backend, render_batch

    calls = []
    monkeypatch.setattr(gsplat_backend, "gsplat_rasterization", lambda: _gsplat_batch_stand_in(calls))
    monkeypatch.setattr(api, "choose_backend", lambda requested, device: requested if requested == "torch" else "gsplat")
    camera = pinhole(32, 24, f=30.0)
    windows = [camera.cropped(0, 0, 16, 12), camera.cropped(16, 12, 16, 12), camera.cropped(8, 6, 16, 12)]
    g = random_gaussians(120, seed=6, requires_grad=True)
    image_of = torch.randint(2, (len(g),), generator=torch.Generator().manual_seed(0))  # none for image 2
    background = torch.tensor([0.1, 0.2, 0.3])
    rgb, alpha = render_batch(g, image_of, windows, background, backend="gsplat")
    assert len(calls) == 1 and calls[0] == (3, 120, 3)
    reference, reference_alpha = render_batch(g, image_of, windows, background, backend="torch")
    assert rgb.shape == (3, 12, 16, 3) and rgb[:2].amax() > 0.2
    assert torch.allclose(rgb, reference, atol=1e-5) and torch.allclose(alpha, reference_alpha, atol=1e-5)
    assert (alpha[2] == 0).all() and torch.allclose(rgb[2], background.expand(12, 16, 3))
    weights = torch.rand(rgb.shape, generator=torch.Generator().manual_seed(2))
    ours = torch.autograd.grad((weights * rgb).sum(), g.tensors())
    theirs = torch.autograd.grad((weights * reference).sum(), g.tensors())
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-5)


def test_render_batch_on_gsplat_in_blocks_gives_each_scene_its_own(monkeypatch):
    """Gaussians in equal, contiguous blocks per image (a fixed-shape decode's windows), told by `per_image`: each
    of gsplat's scenes holds its own block only (B scenes of M, not B of B * M), with the same images and gradients
    as the path that puts every Gaussian in every scene; a count that does not fit the images is refused."""
    from gifstream_engine.render import api, gsplat_backend, render_batch

    calls = []
    monkeypatch.setattr(gsplat_backend, "gsplat_rasterization", lambda: _gsplat_batch_stand_in(calls))
    monkeypatch.setattr(api, "choose_backend", lambda requested, device: "gsplat")
    camera = pinhole(32, 24, f=30.0)
    windows = [camera.cropped(0, 0, 16, 12), camera.cropped(16, 12, 16, 12), camera.cropped(8, 6, 16, 12)]
    m = 50
    g = random_gaussians(len(windows) * m, seed=7, requires_grad=True)
    with torch.no_grad():
        g.opacities[::4] = 0.0  # rows that do not show, as a fixed-shape decode has them
    image_of = torch.arange(len(windows)).repeat_interleave(m)
    background = torch.tensor([0.1, 0.2, 0.3])
    blocked = render_batch(g, image_of, windows, background, backend="gsplat", per_image=m)
    copied = render_batch(g, image_of, windows, background, backend="gsplat")
    assert calls == [(3, m, 3), (3, 3 * m, 3)]
    assert blocked[0].shape == (3, 12, 16, 3) and blocked[1][:, ..., 0].amax(dim=(1, 2)).min() > 0.2  # each shows
    for a, b in zip(blocked, copied):
        assert torch.allclose(a, b, atol=1e-5)
    weights = torch.rand(blocked[0].shape, generator=torch.Generator().manual_seed(3))
    ours = torch.autograd.grad((weights * blocked[0]).sum() + blocked[1].sum(), g.tensors())
    theirs = torch.autograd.grad((weights * copied[0]).sum() + copied[1].sum(), g.tensors())
    for a, b in zip(ours, theirs):
        assert a.abs().amax() > 0 and torch.allclose(a, b, atol=1e-5)
    with pytest.raises(RenderError, match="per_image=49"):
        render_batch(g, image_of, windows, background, backend="gsplat", per_image=m - 1)


def test_reach_image_keeps_every_gaussian_that_shows():
    from gifstream_engine.render.projection import MAX_EXTEND, reach_image

    gen = torch.Generator().manual_seed(0)
    camera = pinhole(48, 36, f=40.0)
    windows = [camera.cropped(0, 0, 16, 12), camera.cropped(30, 20, 16, 12), camera]
    n = 20000
    centres = (torch.rand(n, 3, generator=gen, dtype=torch.float64) - 0.5) * torch.tensor([12.0, 9.0, 10.0],
                                                                                            dtype=torch.float64)
    offsets = (torch.rand(n, 3, generator=gen, dtype=torch.float64) - 0.5) * 1.0
    scales = torch.rand(n, 3, generator=gen, dtype=torch.float64) * 0.2 + 0.001
    radii = offsets.norm(dim=1) + MAX_EXTEND * scales.amax(1)
    quats = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    opacities = torch.ones(n, dtype=torch.float64)
    slot = torch.randint(len(windows), (n,), generator=gen)
    pairs = [render_tensors(w) for w in windows]
    viewmats, Ks = torch.stack([v for v, _ in pairs])[slot], torch.stack([k for _, k in pairs])[slot]
    for i, window in enumerate(windows[:2]):  # two windows of one size
        sel = slot == i
        shown = project_gaussians(centres[sel] + offsets[sel], quats[sel], scales[sel], opacities[sel],
                                  viewmats[sel][0], Ks[sel][0], window.width, window.height).visible
        reach = reach_image(centres[sel], radii[sel], viewmats[sel], Ks[sel], window.width, window.height)
        assert shown.sum() > 50 and not (shown & ~reach).any()  # nothing that shows is culled...
        assert reach.sum() < 0.5 * sel.sum()  # ...and most of what cannot show is


def render_tensors(camera):
    from gifstream_engine.render.api import camera_tensors

    return camera_tensors(camera, "cpu", torch.float64)
