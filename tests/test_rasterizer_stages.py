"""Rasteriser parity stage by stage, forward and backward (as gsplat's own tests do):

1. 3D covariance and projection against gsplat's pure-PyTorch reference (`gsplat.cuda._torch_impl`, which
   runs on the CPU), on Gaussians every part of the image and depth range sees;
2. compositing: the sparse (pixel, Gaussian) pair compositor against a dense per-pixel loop written here from
   gsplat's kernel rules (alpha = min(0.999, o exp(-sigma)), skip alpha < 1/255 or sigma < 0, stop before
   the transmittance falls to 1e-4), fed the same projection;
3. the CUDA kernels end to end, on a GPU only (marked gpu).
"""

import pytest
import torch

from conftest import pinhole, random_gaussians
from gifstream_engine.render import render
from gifstream_engine.render.projection import ALPHA_THRESHOLD, covariance_3d, project_gaussians
from gifstream_engine.render.torch_rasterizer import MAX_ALPHA, MIN_TRANSMITTANCE, rasterize

torch_impl = pytest.importorskip("gsplat.cuda._torch_impl")

W, H, F = 40, 32, 36.0


def scene(n=80, seed=3, grad=True):
    g = random_gaussians(n, seed=seed, depth=3.0, dtype=torch.float64, requires_grad=grad)
    cam = pinhole(W, H, f=F)
    viewmat = torch.eye(4, dtype=torch.float64)
    K = torch.as_tensor(cam.K, dtype=torch.float64)
    return g, cam, viewmat, K


def grads(outputs, inputs, seed=0):
    """d(sum_i w_i . output_i)/d inputs for fixed random weights w_i: one backward pass checks every path."""
    gen = torch.Generator().manual_seed(seed)
    loss = sum((torch.rand(o.shape, generator=gen, dtype=o.dtype) * o).sum() for o in outputs)
    return torch.autograd.grad(loss, inputs)


def test_stage1_covariance_matches_gsplat_forward_and_backward():
    g, *_ = scene()
    ours = covariance_3d(g.quats, g.scales)
    ref, _ = torch_impl._quat_scale_to_covar_preci(g.quats, g.scales, compute_covar=True, compute_preci=False, triu=False)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    for a, b in zip(grads([ours], [g.quats, g.scales]), grads([ref], [g.quats, g.scales])):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_stage1_projection_matches_gsplat_forward_and_backward():
    g, cam, viewmat, K = scene()
    with torch.no_grad():  # some Gaussians off-screen and behind the near plane, to exercise the clamps
        g.means[:5, 0] += 6.0
        g.means[5:8, 2] = -1.0
    ours = project_gaussians(g.means, g.quats, g.scales, g.opacities, viewmat, K, W, H)
    covars = covariance_3d(g.quats, g.scales)
    radii, means2d, depths, conics, _ = torch_impl._fully_fused_projection(g.means, covars, viewmat[None], K[None], W, H)
    radii, means2d, depths, conics = radii[0], means2d[0], depths[0], conics[0]
    both = ours.visible & (radii > 0).all(-1)
    assert both.sum() > 50 and not ours.visible[5:8].any()
    for a, b in ((ours.means2d, means2d), (ours.conics, conics), (ours.depths, depths)):
        torch.testing.assert_close(a[both], b[both], rtol=1e-9, atol=1e-9)
    inputs = [g.means, g.quats, g.scales]
    mine = grads([ours.means2d[both], ours.conics[both], ours.depths[both]], inputs)
    theirs = grads([means2d[both], conics[both], depths[both]], inputs)
    for name, a, b in zip(("means", "quats", "scales"), mine, theirs):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10, msg=f"d/d{name}")


def dense_composite(means2d, conics, opacities, colors, depths, visible, width, height):
    """Every pixel against every visible Gaussian, front to back, with gsplat's per-pixel rules: (H, W, C), (H, W, 1)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=means2d.dtype) + 0.5, torch.arange(width, dtype=means2d.dtype) + 0.5,
                            indexing="ij")
    px, py = xs.reshape(-1), ys.reshape(-1)
    T = torch.ones_like(px)
    done = torch.zeros_like(px, dtype=torch.bool)
    out = torch.zeros(len(px), colors.shape[1], dtype=colors.dtype)
    for i in torch.argsort(depths).tolist():
        if not visible[i]:
            continue
        dx, dy = px - means2d[i, 0], py - means2d[i, 1]
        sigma = 0.5 * (conics[i, 0] * dx * dx + conics[i, 2] * dy * dy) + conics[i, 1] * dx * dy
        alpha = torch.clamp(opacities[i] * torch.exp(-sigma), max=MAX_ALPHA)
        active = ~done & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
        next_T = T * (1 - alpha)
        stop = active & (next_T <= MIN_TRANSMITTANCE)
        done = done | stop
        use = active & ~stop
        out = out + torch.where(use, alpha * T, torch.zeros_like(T))[:, None] * colors[i]
        T = torch.where(use, next_T, T)
    return out.reshape(height, width, -1), (1 - T).reshape(height, width, 1)


def test_stage2_compositing_matches_a_dense_reference_forward_and_backward():
    g, cam, viewmat, K = scene(n=120, seed=7)
    with torch.no_grad():
        g.scales *= 2.0  # a few pixels wide
        g.opacities[:6] = 0.999  # opaque layers at the centre: the transmittance stop rule is exercised
        g.means[:6, :2] = 0.0
        g.means[:6, 2] = torch.arange(6, dtype=g.means.dtype) * 0.2 + 2.0
        g.scales[:6] = 0.2
    proj = project_gaussians(g.means, g.quats, g.scales, g.opacities, viewmat, K, W, H)
    features = torch.cat([g.colors, proj.depths[:, None]], -1)
    rgbd, alpha = rasterize(proj, g.opacities, features, W, H)
    ref_rgbd, ref_alpha = dense_composite(proj.means2d, proj.conics, g.opacities, features, proj.depths, proj.visible, W, H)
    assert (ref_alpha > 1 - 1e-3).any() and (ref_alpha < 0.2).any()
    torch.testing.assert_close(rgbd, ref_rgbd, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(alpha, ref_alpha, rtol=1e-9, atol=1e-10)
    inputs = [proj.means2d, proj.conics, g.opacities, g.colors]
    for name, a, b in zip(("means2d", "conics", "opacities", "colors"), grads([rgbd, alpha], inputs),
                          grads([ref_rgbd, ref_alpha], inputs)):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9, msg=f"d/d{name}")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA and gsplat")
def test_stage3_cuda_kernels_match_forward_and_backward():
    g32 = random_gaussians(2000, seed=5, requires_grad=True)
    cam = pinhole(96, 72, f=80.0)
    cpu = render(g32, cam, backend="torch")
    gpu_g = type(g32)(*(t.detach().cuda().requires_grad_(True) for t in g32.tensors()))
    gpu = render(gpu_g, cam, backend="gsplat")
    assert (cpu.rgb - gpu.rgb.cpu()).abs().max() < 1e-3
    assert (cpu.alpha - gpu.alpha.cpu()).abs().max() < 1e-3
    mine = grads([cpu.rgb, cpu.alpha], list(g32.tensors()))
    theirs = grads([gpu.rgb.cpu(), gpu.alpha.cpu()], list(gpu_g.tensors()))
    for a, b in zip(mine, theirs):
        scale = a.abs().max().clamp(min=1e-6)
        assert ((a - b.cpu()).abs().max() / scale) < 1e-2
