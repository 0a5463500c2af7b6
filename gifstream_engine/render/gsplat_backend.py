"""CUDA backend: gsplat's fused rasterisation (used only where torch sees a CUDA device)."""

from __future__ import annotations

import torch

from .gaussians import Gaussians


def gsplat_available() -> bool:
    if not torch.cuda.is_available():  # gsplat has no CPU path: never call it without CUDA
        return False
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def gsplat_rasterization():
    """gsplat's `rasterization` (a function of its own so that tests can stand in for it on the CPU)."""
    from gsplat import rasterization

    return rasterization


def render_gsplat(gaussians: Gaussians, viewmat, K, width, height, background, near, far, eps2d):
    """(rgb (H, W, 3), alpha (H, W, 1), depth (H, W, 1), means2d (1, N, 2) as gsplat returns it, radii (N, 2),
    depths (N,)). means2d stays batched: its gradient is kept on that tensor, not on a view of it."""
    colors, alphas, meta = gsplat_rasterization()(
        gaussians.means,
        gaussians.quats,
        gaussians.scales,
        gaussians.opacities,
        gaussians.colors,
        viewmat[None],
        K[None],
        width,
        height,
        near_plane=near,
        far_plane=far,
        eps2d=eps2d,
        packed=False,
        render_mode="RGB+ED",
        backgrounds=None if background is None else background[None],
    )
    rgb, depth = colors[0, ..., :3], colors[0, ..., 3:4]
    radii = meta["radii"][0]
    if radii.dim() == 1:  # older gsplat: one radius per Gaussian
        radii = radii[:, None].expand(-1, 2)
    return rgb, alphas[0], depth, meta["means2d"], radii, meta["depths"][0]
