"""Rasterisation: the Gaussians type and `render()` over the gsplat (CUDA) and PyTorch (CPU) backends."""

from .api import RenderMeta, RenderResult, choose_backend, render, render_batch
from .gaussians import Gaussians, gaussians_from_points

__all__ = ["Gaussians", "gaussians_from_points", "RenderMeta", "RenderResult", "choose_backend", "render",
           "render_batch"]
