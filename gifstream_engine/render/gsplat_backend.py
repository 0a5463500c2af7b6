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


def render_gsplat_batch(gaussians: Gaussians, image_of, viewmats, Ks, width, height, background,
                        per_image: int | None = None):
    """Image b of B shows the Gaussians with image_of == b as viewmats[b], Ks[b] see them, in one gsplat call: B
    scenes (gsplat's leading batch dimension) of one camera each, with no host-device synchronisation.
    (rgb (B, H, W, 3), alpha (B, H, W, 1)).

    With `per_image` (the Gaussians come in B contiguous blocks of per_image, image after image, as a fixed-shape
    decode gives them), scene b is block b alone: (B, per_image, ...) views, B * per_image Gaussians projected.
    Without it (images of different counts, a compact decode's), every scene holds all N Gaussians with the
    opacity of those of other images set to 0 (gsplat culls them in its projection, and alpha 0 is never
    composited): B * N projected, but no per-image selection, which would read counts back from the device."""
    b = len(viewmats)
    if per_image is not None:
        scenes = [t.reshape(b, per_image, *t.shape[1:]) for t in gaussians.tensors()]
    else:
        scenes = _every_gaussian_in_every_scene(gaussians, image_of, b)
    means, quats, scales, opacities, colors = scenes
    rgb, alphas, _ = gsplat_rasterization()(
        means, quats, scales, opacities, colors, viewmats[:, None], Ks[:, None], width, height,
        packed=False, render_mode="RGB", backgrounds=None if background is None else background.expand(b, 1, -1),
    )
    return rgb[:, 0], alphas[:, 0]


def _every_gaussian_in_every_scene(gaussians: Gaussians, image_of, b: int) -> list[torch.Tensor]:
    """means (B, N, 3), quats (B, N, 4), scales (B, N, 3), opacities (B, N), colors (B, N, 3): all N Gaussians in
    each of B scenes (expanded views), opacity 0 in scene b for those with image_of != b."""
    mine = image_of[None, :] == torch.arange(b, device=image_of.device)[:, None]  # (B, N)
    means, quats, scales, _, colors = (t[None].expand(b, *t.shape) for t in gaussians.tensors())
    opacities = gaussians.opacities[None, :] * mine.to(gaussians.opacities.dtype)
    return [means, quats, scales, opacities, colors]
