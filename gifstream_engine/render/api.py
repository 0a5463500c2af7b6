"""`render()`: one entry point over the rasteriser backends (gsplat on CUDA, pure PyTorch elsewhere)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..capture.camera import Camera
from ..errors import RenderError
from .gaussians import Gaussians
from .gsplat_backend import gsplat_available, render_gsplat, render_gsplat_batch
from .projection import project_gaussians
from .torch_rasterizer import DEFAULT_MAX_PAIRS, rasterize

BACKENDS = ("auto", "gsplat", "torch")


@dataclasses.dataclass
class RenderMeta:
    backend: str
    means2d: torch.Tensor  # (N, 2) screen positions
    radii: torch.Tensor  # (N, 2) int32 screen half extents, 0 where culled
    visible: torch.Tensor  # (N,) bool
    depths: torch.Tensor  # (N,) camera-space depth
    # the tensor the backend produced means2d from ((N, 2), or gsplat's (1, N, 2)): its gradient is retained when
    # render() is asked to track it, as gsplat's DefaultStrategy.step_pre_backward does (a view's .grad stays None)
    means2d_source: torch.Tensor | None = None

    def means2d_grad(self) -> torch.Tensor:
        """(N, 2) gradient of the loss w.r.t. the screen positions, after backward (densification statistics)."""
        if self.means2d_source is None:
            raise RenderError("render() was not asked to track the 2D means' gradient (track_means2d_grad=True)")
        grad = self.means2d_source.grad
        if grad is None:
            raise RenderError(f"the {self.backend} backend's 2D means have no gradient: call backward() on a loss "
                              "that depends on the render first")
        return grad.reshape(self.means2d.shape)


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
    track_means2d_grad: bool = False,  # retain d loss / d means2d for densification (RenderMeta.means2d_grad)
) -> RenderResult:
    """Rasterise `gaussians` as seen by `camera`; differentiable with respect to every Gaussian tensor.

    Args:
        gaussians: N Gaussians on one device: means (N, 3) world, quats (N, 4) wxyz (normalised here), scales
            (N, 3) linear standard deviations, opacities (N,) in [0, 1], colors (N, 3) RGB.
        camera: pinhole, OpenCV axes: w2c (4, 4), K (3, 3) in pixels, width W and height H; no lens distortion.
        background: (3,) RGB composited under the Gaussians (None: black, and `alpha` tells coverage).
        backend: "auto" (gsplat on CUDA when installed, else the PyTorch rasteriser), "gsplat" or "torch".
        near, far: camera-space depth range kept; eps2d: low-pass added to each 2D covariance (pixels^2).
        max_pairs: the PyTorch backend's (pixel, Gaussian) pairs per tile, bounding its memory.
    Returns:
        RenderResult: rgb (H, W, 3), alpha (H, W, 1), depth (H, W, 1) (expected depth), and `meta` with the
        projection per Gaussian: means2d (N, 2), radii (N, 2), visible (N,), depths (N,).
    """
    _require_pinhole(camera)
    device = gaussians.device
    background = _on(background, gaussians)
    viewmat, K = camera_tensors(camera, device, gaussians.means.dtype)
    width, height = camera.width, camera.height
    chosen = choose_backend(backend, device)
    if chosen == "gsplat":
        rgb, alpha, depth, means2d_batch, radii, depths = render_gsplat(
            gaussians, viewmat, K, width, height, background, near, far, eps2d
        )
        visible = (radii > 0).all(-1)
        source = _tracked(means2d_batch, track_means2d_grad)
        return RenderResult(rgb, alpha, depth, RenderMeta(chosen, means2d_batch[0], radii, visible, depths, source))

    proj = project_gaussians(
        gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, viewmat, K, width, height, near, far, eps2d
    )
    source = _tracked(proj.means2d, track_means2d_grad)
    features = torch.cat([gaussians.colors, proj.depths[:, None]], dim=-1)
    out, alpha = rasterize(proj, gaussians.opacities, features, width, height, max_pairs)
    rgb = out[..., :3]
    depth = out[..., 3:4] / alpha.clamp(min=1e-10)
    if background is not None:
        rgb = rgb + (1.0 - alpha) * background
    return RenderResult(rgb, alpha, depth, RenderMeta(chosen, proj.means2d, proj.radii, proj.visible, proj.depths, source))


def render_batch(
    gaussians: Gaussians,
    image_of: torch.Tensor,  # (N,) long: which of `cameras` each Gaussian is rendered by
    cameras: list[Camera],
    background: torch.Tensor | None = None,
    backend: str = "auto",
    max_pairs: int = DEFAULT_MAX_PAIRS,
    per_image: int | None = None,  # the Gaussians come in len(cameras) contiguous blocks of this many, in order
) -> tuple[torch.Tensor, torch.Tensor]:
    """Several images of one size at once, image i showing the Gaussians with image_of == i as cameras[i] sees
    them: (B, H, W, 3) RGB and (B, H, W, 1) alpha, differentiable as `render`'s (what the trainer's windows on
    moving pixels use: one projection and one rasterisation instead of one per window). The PyTorch backend
    rasterises them as one canvas; gsplat as one batch of B scenes of one camera each (`render_gsplat_batch`), in
    one call and without a host-device synchronisation.

    `per_image` is the caller's promise that image_of is 0 for the first per_image Gaussians, 1 for the next
    per_image, and so on (a fixed-shape decode's windows, `GIFStreamModel.rows_per_window`): gsplat's scene i then
    holds block i only, not every Gaussian. Not checked against image_of (that would read back from the device)."""
    sizes = {(c.width, c.height) for c in cameras}
    if len(sizes) != 1:
        raise RenderError(f"render_batch needs cameras of one image size, got {sorted(sizes)}")
    if per_image is not None and per_image * len(cameras) != len(gaussians):
        raise RenderError(f"render_batch got {len(gaussians)} Gaussians for {len(cameras)} images of "
                          f"per_image={per_image} each; expected {per_image * len(cameras)}")
    for camera in cameras:
        _require_pinhole(camera)
    device = gaussians.device
    background = _on(background, gaussians)
    width, height = cameras[0].width, cameras[0].height
    tensors = [camera_tensors(camera, device, gaussians.means.dtype) for camera in cameras]
    viewmats, Ks = torch.stack([v for v, _ in tensors]), torch.stack([k for _, k in tensors])
    if choose_backend(backend, device) == "gsplat":
        return render_gsplat_batch(gaussians, image_of, viewmats, Ks, width, height, background, per_image)
    proj = project_gaussians(gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities,
                             viewmats.index_select(0, image_of), Ks.index_select(0, image_of), width, height)
    rgb, alpha = rasterize(proj, gaussians.opacities, gaussians.colors, width, height, max_pairs, image_of, len(cameras))
    rgb, alpha = rgb.reshape(len(cameras), height, width, 3), alpha.reshape(len(cameras), height, width, 1)
    if background is not None:
        rgb = rgb + (1.0 - alpha) * background
    return rgb, alpha


def _on(background: torch.Tensor | None, gaussians: Gaussians) -> torch.Tensor | None:
    """The background on the Gaussians' device, in their dtype (a caller's CPU background never mixes devices)."""
    return None if background is None else background.to(gaussians.means)


def _require_pinhole(camera: Camera) -> None:
    if camera.distortion is not None and np.any(camera.distortion != 0):
        raise RenderError(
            f"camera {camera.name!r} has lens distortion {camera.distortion.tolist()}; the rasterisers are pinhole: "
            f"undistort the footage first (e.g. COLMAP image_undistorter) and import the undistorted model"
        )


def _tracked(means2d: torch.Tensor, track: bool) -> torch.Tensor | None:
    if not track:
        return None
    if not means2d.requires_grad:
        raise RenderError("track_means2d_grad needs Gaussians whose means require gradients")
    means2d.retain_grad()
    return means2d
