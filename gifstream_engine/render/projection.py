"""EWA projection of 3D Gaussians to the image plane, with gsplat 1.5's conventions.

Pinhole camera, OpenCV axes; the Jacobian is evaluated at the mean clamped to 1.3x the field of view;
a 0.3 px^2 low-pass (eps2d) is added to the 2D covariance; the screen-space box is opacity-aware
(extend = min(3.33, sqrt(2 ln(255 opacity))) standard deviations), and Gaussians behind the near plane,
beyond the far plane, with a degenerate covariance, below 1/255 opacity or off-screen are culled.
"""

from __future__ import annotations

import dataclasses

import torch

ALPHA_THRESHOLD = 1.0 / 255.0
MAX_EXTEND = 3.33


@dataclasses.dataclass
class Projected:
    means2d: torch.Tensor  # (N, 2) pixel coordinates (differentiable)
    conics: torch.Tensor  # (N, 3) inverse 2D covariance (a, b, c) of [[a, b], [b, c]]
    depths: torch.Tensor  # (N,) camera-space z
    radii: torch.Tensor  # (N, 2) int32 half extents of the screen box in pixels, 0 where culled
    visible: torch.Tensor  # (N,) bool


def in_view(points: torch.Tensor, camera, margin: float = 0.15) -> torch.Tensor:
    """(N,) bool: points (N, 3) in front of `camera` whose projection lies inside the image grown by `margin`
    (a fraction of its width and height): a cheap cull before decoding or rendering what the camera sees."""
    w2c = torch.as_tensor(camera.w2c, dtype=points.dtype, device=points.device)
    K = torch.as_tensor(camera.K, dtype=points.dtype, device=points.device)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    uv = cam @ K.T
    u, v = uv[:, 0] / z.clamp(min=1e-6), uv[:, 1] / z.clamp(min=1e-6)
    mw, mh = margin * camera.width, margin * camera.height
    return (z > 0.01) & (u > -mw) & (u < camera.width + mw) & (v > -mh) & (v < camera.height + mh)


def reach_image(centres: torch.Tensor, radii: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor, width: int,
                height: int, near: float = 0.01, eps2d: float = 0.3) -> torch.Tensor:
    """(N,) bool, conservative: False only where no Gaussian lying with its 3.33-sigma extent inside the sphere of
    `radii` (N,) about `centres` (N, 3) can touch the image under `project_gaussians`' rules (each with its own
    camera: viewmat (N, 4, 4), K (N, 3, 3)). A point within r of a centre at depth z projects within
    f r sqrt(1 + tan^2) / (z - r) pixels of it, and the EWA box of a Gaussian of extent r is as large at most;
    the low-pass and the box's rounding add 3.33 sqrt(eps2d) + 1 pixels."""
    cam = (viewmat[:, :3, :3] @ centres[:, :, None]).squeeze(-1) + viewmat[:, :3, 3]
    x, y, z = cam.unbind(-1)
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    front = z - radii  # the nearest depth a point of the sphere can have
    straddles = front <= near  # part of it may be in front of the near plane: kept
    depth = torch.where(straddles, torch.ones_like(front), front)
    tan_x = torch.maximum((x.abs() + radii) / depth, (width + cx.abs()) / fx)  # the centre's and the field's
    tan_y = torch.maximum((y.abs() + radii) / depth, (height + cy.abs()) / fy)
    spread = torch.sqrt(1 + tan_x**2 + tan_y**2) * radii / depth + (MAX_EXTEND * eps2d**0.5 + 1) / torch.minimum(fx, fy)
    u = fx * x / torch.where(straddles, torch.ones_like(z), z) + cx
    v = fy * y / torch.where(straddles, torch.ones_like(z), z) + cy
    inside = (u > -fx * spread) & (u < width + fx * spread) & (v > -fy * spread) & (v < height + fy * spread)
    return (z + radii >= near) & (straddles | inside)


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """(N, 4) wxyz quaternions (normalised here) -> (N, 3, 3) rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(-1, 3, 3)


def covariance_3d(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """R S S^T R^T, (N, 3, 3)."""
    rs = quat_to_rotmat(quats) * scales[:, None, :]
    return rs @ rs.transpose(1, 2)


def project_gaussians(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    viewmat: torch.Tensor,  # (4, 4) world-to-camera, or (N, 4, 4): each Gaussian's own camera
    K: torch.Tensor,  # (3, 3), or (N, 3, 3)
    width: int,
    height: int,
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = 0.3,
) -> Projected:
    rot, trans = viewmat[..., :3, :3], viewmat[..., :3, 3]
    mean_c = (means @ rot.T if rot.dim() == 2 else (rot @ means[:, :, None]).squeeze(-1)) + trans
    cov_c = rot @ covariance_3d(quats, scales) @ rot.transpose(-1, -2)
    fx, fy, cx, cy = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]
    x, y, z = mean_c.unbind(-1)
    in_depth = (z >= near) & (z <= far)
    z_safe = torch.where(in_depth, z, torch.ones_like(z))
    rz = 1.0 / z_safe
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    tx = z_safe * torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x * rz))
    ty = z_safe * torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y * rz))
    zeros = torch.zeros_like(z)
    jac = torch.stack(
        [fx * rz, zeros, -fx * tx * rz * rz, zeros, fy * rz, -fy * ty * rz * rz], dim=-1
    ).reshape(-1, 2, 3)
    cov2d = jac @ cov_c @ jac.transpose(1, 2)
    a = cov2d[:, 0, 0] + eps2d
    b = cov2d[:, 0, 1]
    c = cov2d[:, 1, 1] + eps2d
    det = a * c - b * b
    det_ok = det > 0
    det_safe = torch.where(det_ok, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)

    with torch.no_grad():
        op = opacities.detach()
        extend = torch.clamp(torch.sqrt(2.0 * torch.log(torch.clamp(op / ALPHA_THRESHOLD, min=1.0))), max=MAX_EXTEND)
        radius_x = torch.ceil(extend * torch.sqrt(torch.clamp(a.detach(), min=0)))
        radius_y = torch.ceil(extend * torch.sqrt(torch.clamp(c.detach(), min=0)))
        mx, my = means2d[:, 0].detach(), means2d[:, 1].detach()
        on_screen = (mx + radius_x > 0) & (mx - radius_x < width) & (my + radius_y > 0) & (my - radius_y < height)
        visible = in_depth & det_ok & (op >= ALPHA_THRESHOLD) & ((radius_x > 0) | (radius_y > 0)) & on_screen
        radii = torch.stack([radius_x, radius_y], dim=-1).to(torch.int32) * visible[:, None]
    return Projected(means2d, conics, z, radii, visible)

