"""Differentiable pure-PyTorch rasteriser (the CPU backend), matching gsplat's compositing.

Sparse formulation: list the (pixel, Gaussian) pairs whose pixel centre lies in the Gaussian's
opacity-aware screen box (outside it alpha < 1/255, which gsplat skips too, so this equals gsplat's tile
lists), evaluate alpha = min(0.999, o * exp(-sigma)), drop pairs below 1/255, sort by (pixel, depth),
and composite front to back. Transmittance is exp of a segmented exclusive cumulative sum of
log(1 - alpha), kept in float64; a pair is kept while the transmittance after it stays above 1e-4,
which is gsplat's early stop. Large images are processed in horizontal bands, each checkpointed when
gradients are needed, so memory stays bounded.
"""

from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint

from .projection import ALPHA_THRESHOLD, Projected

MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4
DEFAULT_MAX_PAIRS = 4_000_000


def _box_ranges(means2d, radii, y_lo: int, y_hi: int, width: int):
    """Inclusive pixel ranges [x0, x1] x [y0, y1] of each Gaussian's box, clipped to columns and rows."""
    mx, my = means2d[:, 0].detach(), means2d[:, 1].detach()
    rx, ry = radii[:, 0].to(mx.dtype), radii[:, 1].to(mx.dtype)
    # pixel j has its centre at j + 0.5 and lies in the box when |j + 0.5 - m| <= r
    x0 = torch.clamp(torch.ceil(mx - rx - 0.5), min=0).long()
    x1 = torch.clamp(torch.floor(mx + rx - 0.5), max=width - 1).long()
    y0 = torch.clamp(torch.ceil(my - ry - 0.5), min=y_lo).long()
    y1 = torch.clamp(torch.floor(my + ry - 0.5), max=y_hi - 1).long()
    return x0, x1, y0, y1


def _pairs(ids, x0, x1, y0, y1):
    """Gaussian index and pixel (x, y) of every pair inside the boxes of Gaussians `ids`."""
    nx = (x1 - x0 + 1).clamp(min=0)
    ny = (y1 - y0 + 1).clamp(min=0)
    counts = nx * ny
    keep = counts > 0
    ids, x0, y0, nx, counts = ids[keep], x0[keep], y0[keep], nx[keep], counts[keep]
    total = int(counts.sum())
    gid = torch.repeat_interleave(ids, counts, output_size=total)
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(total, device=ids.device) - torch.repeat_interleave(starts, counts, output_size=total)
    nx_rep = torch.repeat_interleave(nx, counts, output_size=total)
    px = torch.repeat_interleave(x0, counts, output_size=total) + local % nx_rep
    py = torch.repeat_interleave(y0, counts, output_size=total) + local // nx_rep
    return gid, px, py


def _composite_band(means2d, conics, opacities, features, depth_rank, gid, px, py, y_lo, y_hi, width):
    """Front-to-back compositing of one band of rows; returns (rows*width, F) features and (rows*width,) alpha.

    Gathers use index_select (whose backward is an index_add, cheap on the CPU even in deterministic mode) and
    each filter computes its indices once; the (pixel, depth) sort is a stable radix sort of unique keys."""
    n_pix = (y_hi - y_lo) * width
    m = means2d.index_select(0, gid)
    dx = m[:, 0] - (px.to(means2d.dtype) + 0.5)
    dy = m[:, 1] - (py.to(means2d.dtype) + 0.5)
    con = conics.index_select(0, gid)
    sigma = 0.5 * (con[:, 0] * dx * dx + con[:, 2] * dy * dy) + con[:, 1] * dx * dy
    alpha = torch.clamp(opacities.index_select(0, gid) * torch.exp(-sigma), max=MAX_ALPHA)
    valid = torch.nonzero((sigma >= 0) & (alpha >= ALPHA_THRESHOLD)).squeeze(1)
    gid, alpha = gid.index_select(0, valid), alpha.index_select(0, valid)
    pix = (py.index_select(0, valid) - y_lo) * width + px.index_select(0, valid)
    order = torch.sort(pix * depth_rank.numel() + depth_rank.index_select(0, gid), stable=True)[1]
    gid, alpha, pix = gid.index_select(0, order), alpha.index_select(0, order), pix.index_select(0, order)

    log_keep = torch.log1p(-alpha.double())
    inclusive = torch.cumsum(log_keep, 0)
    counts = torch.bincount(pix, minlength=n_pix)
    seg_end = torch.cumsum(counts, 0)
    seg_base = torch.cat([inclusive.new_zeros(1), inclusive]).index_select(0, seg_end - counts)  # cumsum before each pixel's run
    log_t_after = inclusive - seg_base.index_select(0, pix)
    alive = torch.nonzero(log_t_after > math.log(MIN_TRANSMITTANCE)).squeeze(1)  # gsplat stops (exclusively) once T would drop to 1e-4
    transmittance = torch.exp((log_t_after - log_keep).index_select(0, alive)).to(alpha.dtype)
    weight = alpha.index_select(0, alive) * transmittance
    gid, pix = gid.index_select(0, alive), pix.index_select(0, alive)
    out = features.new_zeros(n_pix, features.shape[1]).index_add(0, pix, weight[:, None] * features.index_select(0, gid))
    acc = alpha.new_zeros(n_pix).index_add(0, pix, weight)
    return out, acc


def rasterize(
    proj: Projected,
    opacities: torch.Tensor,  # (N,)
    features: torch.Tensor,  # (N, F) colours (and depth as a last channel when wanted)
    width: int,
    height: int,
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite visible Gaussians: (H, W, F) accumulated features and (H, W, 1) alpha."""
    device = features.device
    ids = torch.nonzero(proj.visible, as_tuple=False).squeeze(1)
    # Depth order of all visible Gaussians, as a rank usable in an integer sort key.
    depth_rank = torch.empty(proj.depths.shape[0], dtype=torch.long, device=device)
    order = torch.argsort(proj.depths.detach())
    depth_rank[order] = torch.arange(order.numel(), device=device)
    x0, x1, y0, y1 = _box_ranges(proj.means2d[ids], proj.radii[ids], 0, height, width)
    total = int(((x1 - x0 + 1).clamp(min=0) * (y1 - y0 + 1).clamp(min=0)).sum()) if ids.numel() else 0
    n_bands = max(1, min(height, math.ceil(total / max_pairs)))
    rows = math.ceil(height / n_bands)
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (proj.means2d, proj.conics, opacities, features)
    )
    feature_rows, alpha_rows = [], []
    for y_lo in range(0, height, rows):
        y_hi = min(height, y_lo + rows)
        bx0, bx1, by0, by1 = _box_ranges(proj.means2d[ids], proj.radii[ids], y_lo, y_hi, width)
        gid, px, py = _pairs(ids, bx0, bx1, by0, by1)
        args = (proj.means2d, proj.conics, opacities, features, depth_rank, gid, px, py, y_lo, y_hi, width)
        if needs_grad and n_bands > 1:
            out, acc = checkpoint(_composite_band, *args, use_reentrant=False)
        else:
            out, acc = _composite_band(*args)
        feature_rows.append(out.reshape(y_hi - y_lo, width, -1))
        alpha_rows.append(acc.reshape(y_hi - y_lo, width, 1))
    return torch.cat(feature_rows, 0), torch.cat(alpha_rows, 0)
