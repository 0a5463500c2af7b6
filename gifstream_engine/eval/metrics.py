"""Image metrics on (H, W, 3) tensors in [0, 1]: PSNR and SSIM (11x11 Gaussian window, as 3DGS)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.float() - b.float()) ** 2).item()
    return float("inf") if mse == 0 else -10.0 * torch.log10(torch.tensor(mse)).item()


@functools.lru_cache(maxsize=4)
def _window(size: int, sigma: float, channels: int, device: str) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous().to(device)


def ssim(a: torch.Tensor, b: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of two (H, W, C) images, or over two batches (B, H, W, C) of them (differentiable)."""
    x, y = (a if a.dim() == 4 else a[None]).permute(0, 3, 1, 2), (b if b.dim() == 4 else b[None]).permute(0, 3, 1, 2)
    c = x.shape[1]
    w = _window(size, sigma, c, str(x.device)).to(x.dtype)
    pad = size // 2
    mu_x, mu_y = F.conv2d(x, w, padding=pad, groups=c), F.conv2d(y, w, padding=pad, groups=c)
    sxx = F.conv2d(x * x, w, padding=pad, groups=c) - mu_x**2
    syy = F.conv2d(y * y, w, padding=pad, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, w, padding=pad, groups=c) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return value.mean()
