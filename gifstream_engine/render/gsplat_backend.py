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


def render_gsplat(gaussians: Gaussians, viewmat, K, width, height, background, near, far, eps2d):
    from gsplat import rasterization

    colors, alphas, meta = rasterization(
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
    return rgb, alphas[0], depth, meta["means2d"][0], radii, meta["depths"][0]
