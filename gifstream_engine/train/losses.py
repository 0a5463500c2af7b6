"""The training loss's terms: photometric (with the motion importance), the feature stream's priors, and their sum
(the rate term comes from the entropy models, codec/rate.py)."""

from __future__ import annotations

import torch

from ..eval.metrics import ssim
from ..eval.motion import DILATE_PX, THRESHOLD, dilate_max
from ..model import DecodeAux


def photometric(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float,
                pixel_weight: torch.Tensor | None = None) -> torch.Tensor:
    """(1 - w) L1 + w (1 - SSIM) of images (H, W, 3), or the mean over a batch (B, H, W, 3) of images of one size;
    pixel_weight (H, W) or (B, H, W) reweights the L1 term (normalised to mean 1 in each image)."""
    l1 = (pred - target).abs()
    if pixel_weight is None:
        l1 = l1.mean()
    else:
        l1 = ((pixel_weight[..., None] * l1).mean((-3, -2, -1)) / pixel_weight.mean((-2, -1))).mean()
    return (1 - ssim_weight) * l1 + ssim_weight * (1 - ssim(pred, target))


def motion_importance(target: torch.Tensor, median: torch.Tensor, boost: float) -> torch.Tensor:
    """(H, W) weights 1 + boost * s, s in [0, 1] how far the frame departs from its camera's temporal median.

    DyNeRF's importance sampling in a rendered-image form: s = d^2 / (d^2 + g^2) with d the largest channel
    difference and g half the moving-pixel threshold, grown by the moving pixels' dilation so edges count too.
    """
    d = (target - median).abs().amax(-1)
    gamma = THRESHOLD / 2
    return 1 + boost * dilate_max(d**2 / (d**2 + gamma**2), DILATE_PX)


def stream_regularisers(model, aux: DecodeAux, t: int) -> dict[str, torch.Tensor]:
    """The feature stream's priors at frame t over the decoded anchors: masks kept small (sparsity), f_t close to
    the next frame's (the previous at the clip's end) and to its canonical neighbours', both where M_de is open
    (means over the rows that show, `DecodeAux.mean_over_shown`).
    Unweighted: the trainer weighs them (lambda_mask, lambda_temporal, lambda_spatial)."""
    idx, masks = aux.anchor_idx, aux.masks
    de = masks["de"][idx]
    f_t = model.stream[idx, t]
    t2 = min(t + 1, model.num_frames - 1) if t + 1 < model.num_frames else max(t - 1, 0)
    neighbours = model.stream[model.knn_index[idx], t]
    return {"masks": masks["de"].mean() + masks["dy"].mean(),
            "temporal": aux.mean_over_shown(de[:, None] * (f_t - model.stream[idx, t2]) ** 2),
            "spatial": aux.mean_over_shown(de[:, None, None] * (f_t[:, None] - neighbours) ** 2)}


def total(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss: the weighted terms summed in their order (the order the log lists them)."""
    values = iter(terms.values())
    loss = next(values)
    for value in values:
        loss = loss + value
    return loss
