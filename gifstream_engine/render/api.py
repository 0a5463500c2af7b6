"""`render()`: one entry point over the rasteriser backends (gsplat on CUDA, pure PyTorch elsewhere)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..capture.types import Camera
from ..errors import RenderError
from .gaussians import Gaussians
from .gsplat_backend import gsplat_available, render_gsplat
from .projection import project_gaussians
from .torch_rasterizer import DEFAULT_MAX_PAIRS, rasterize

BACKENDS = ("auto", "gsplat", "torch")


@dataclasses.dataclass
class RenderMeta:
    backend: str
    means2d: torch.Tensor  # (N, 2) screen positions; call .retain_grad() before backward for densification
    radii: torch.Tensor  # (N, 2) int32 screen half extents, 0 where culled
    visible: torch.Tensor  # (N,) bool
    depths: torch.Tensor  # (N,) camera-space depth


@dataclasses.dataclass
class RenderResult:
    rgb: torch.Tensor  # (H, W, 3)
    alpha: torch.Tensor  # (H, W, 1)
    depth: torch.Tensor  # (H, W, 1) expected depth (accumulated z / alpha)
    meta: RenderMeta


def choose_backend(requested: str, device: torch.device) -> str:
    if requested not in BACKENDS:
        raise RenderError(f"unknown rasteriser backend {requested!r}; expected one of {BACKENDS}")
    if requested == "gsplat" and (device.type != "cuda" or not gsplat_available()):
        raise RenderError("the gsplat backend needs CUDA and the gsplat package; use backend='torch' on the CPU")
    if requested == "auto":
        return "gsplat" if device.type == "cuda" and gsplat_available() else "torch"
    return requested


def camera_tensors(camera: Camera, device, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    viewmat = torch.as_tensor(camera.w2c, dtype=dtype, device=device)
    K = torch.as_tensor(camera.K, dtype=dtype, device=device)
    return viewmat, K


def render(
    gaussians: Gaussians,
    camera: Camera,
    background: torch.Tensor | None = None,  # (3,)
    backend: str = "auto",
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = 0.3,
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> RenderResult:
    if camera.distortion is not None and np.any(camera.distortion != 0):
        raise RenderError(
            f"camera {camera.name!r} has lens distortion {camera.distortion.tolist()}; the rasterisers are pinhole: "
            f"undistort the footage first (e.g. COLMAP image_undistorter) and import the undistorted model"
        )
    device = gaussians.device
    viewmat, K = camera_tensors(camera, device, gaussians.means.dtype)
    width, height = camera.width, camera.height
    chosen = choose_backend(backend, device)
    if chosen == "gsplat":
        rgb, alpha, depth, means2d, radii, depths = render_gsplat(
            gaussians, viewmat, K, width, height, background, near, far, eps2d
        )
        visible = (radii > 0).all(-1)
        return RenderResult(rgb, alpha, depth, RenderMeta(chosen, means2d, radii, visible, depths))

    proj = project_gaussians(
        gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, viewmat, K, width, height, near, far, eps2d
    )
    if proj.means2d.requires_grad:
        proj.means2d.retain_grad()
    features = torch.cat([gaussians.colors, proj.depths[:, None]], dim=-1)
    out, alpha = rasterize(proj, gaussians.opacities, features, width, height, max_pairs)
    rgb = out[..., :3]
    depth = out[..., 3:4] / alpha.clamp(min=1e-10)
    if background is not None:
        rgb = rgb + (1.0 - alpha) * background.to(rgb)
    return RenderResult(rgb, alpha, depth, RenderMeta(chosen, proj.means2d, proj.radii, proj.visible, proj.depths))
