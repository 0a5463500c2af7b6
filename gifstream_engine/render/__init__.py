"""Rasterisation: the Gaussians type and `render()` over the gsplat (CUDA) and PyTorch (CPU) backends."""

from .api import RenderMeta, RenderResult, choose_backend, render
from .gaussians import Gaussians

__all__ = ["Gaussians", "RenderMeta", "RenderResult", "choose_backend", "render"]
