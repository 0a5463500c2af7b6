"""When anchors grow, are pruned, and start to move: the policy the training step calls at two points.

`before_step` ends the canonical phase by opening the motion masks where its gradients were large;
`after_backward` adds the step's render to the growth statistics, then grows and prunes on the schedule
(`schedule.StepPlan`). The policy changes the anchor set only through `AnchorState`; it never reaches into the
step (gsplat's strategies are the model: hooks around backward, state owned elsewhere).
"""

from __future__ import annotations

import dataclasses

import torch

from ..model import DecodeAux
from .anchors import AnchorState
from .config import TrainConfig
from .densify import accumulate, grow_candidates, low_opacity_anchors
from .schedule import StepPlan


@dataclasses.dataclass
class Drawn:
    """What the step's training image drew: `decode`'s aux, the render's meta and the image size."""

    aux: DecodeAux
    meta: object  # render.RenderMeta (its 2D means' gradient is read after backward)
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class GrowthReport:
    grown: int = 0
    pruned: int = 0
    knn_updated: bool = False  # the anchor set changed and the policy rebuilt the KNN: the step need not again


class GrowthPolicy:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    def before_step(self, plan: StepPlan, anchors: AnchorState) -> None:
        if plan.init_dynamic_masks:
            init_dynamic_masks(anchors)

    def after_backward(self, plan: StepPlan, anchors: AnchorState, drawn: Drawn | None) -> GrowthReport:
        """drawn: None when the image showed no Gaussian (nothing to learn from)."""
        if drawn is not None:
            accumulate(anchors.stats, drawn.aux, drawn.meta.means2d_grad(), drawn.meta.visible, drawn.width,
                       drawn.height, anchors.model.cfg.num_offsets)
        if plan.densify:
            return self._grow_and_prune(anchors)
        if plan.prune_masked:
            pruned = self._prune_masked(anchors)
            return GrowthReport(pruned=pruned, knn_updated=pruned > 0)
        return GrowthReport()

    @torch.no_grad()
    def _grow_and_prune(self, anchors: AnchorState) -> GrowthReport:
        """New anchors in empty voxels where the time-mixed gradient is large (strongest first, up to
        `max_anchors`), and pruning of anchors transparent over time; the growth statistics start over."""
        cfg, model = self.cfg, anchors.model
        centres, parents = grow_candidates(model, anchors.stats, cfg.grad_threshold, cfg.time_mix_alpha)
        room = max(0, cfg.max_anchors - model.num_anchors)
        grown = 0 if centres is None else len(centres[:room])
        keep = ~low_opacity_anchors(anchors.stats, cfg.min_opacity, model.cfg.num_offsets, cfg.time_mix_alpha)
        if keep.sum() < 1:
            keep[:] = True
        if grown:
            anchors.extend(parents[:room], centres[:room], keep)
        else:
            anchors.select(keep)
        anchors.stats.reset_growth()
        model.update_knn()
        return GrowthReport(grown, int((~keep).sum()), knn_updated=True)

    @torch.no_grad()
    def _prune_masked(self, anchors: AnchorState) -> int:
        """Drop the anchors whose pruning mask M_p has closed (unless it closed for all of them)."""
        keep = torch.sigmoid(anchors.model.mask_logits[:, 3]) > 0.5
        if keep.all() or not keep.any():
            return 0
        anchors.select(keep)
        anchors.model.update_knn()
        return int((~keep).sum())


@torch.no_grad()
def init_dynamic_masks(anchors: AnchorState) -> None:
    """End of the canonical phase: anchors whose static fit left large 2D gradients are the dynamic ones."""
    stats, logits = anchors.stats, anchors.model.mask_logits
    g = stats.dyn_grad / stats.anchor_seen.clamp(min=1)
    ref = torch.quantile(g, 0.95).clamp(min=1e-12)
    p = (0.05 + 0.9 * (g / ref).clamp(0, 1)).clamp(0.05, 0.95)
    logit = torch.log(p / (1 - p))
    # never below where seeding put them (anchors seeded on moving pixels start open)
    logits[:, 0] = torch.maximum(logit, logits[:, 0])  # M_de: the stream is needed where motion is
    logits[:, 1] = torch.maximum(logit, logits[:, 1])  # M_dy
