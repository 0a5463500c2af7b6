"""Everything the trainer keeps one row of per anchor, behind one owner that resizes it all together.

An anchor's rows live in the model (its parameters and canonical position), in Adam's moments of those
parameters, in the growth statistics, and in the rate's grid of dynamic anchors (model indices). Growth and
pruning change the anchor set only through `AnchorState.extend` and `AnchorState.select`, so no part can fall
out of step with the others (gsplat's `strategy.ops` plays this part for its Gaussians).

The per-anchor parameters and their moments are the run's largest tables (about 1.1 GB at 300k anchors with a
60-frame stream). Each is the leading rows of a buffer with room to grow: growth and pruning move the kept rows
forward in place and write the new ones after them, so a growth step touches no fresh memory (on a CPU, fresh pages
cost the kernel as much again as the copy). A buffer is replaced, with `HEADROOM` times the rows it needs, only when
the rows outgrow it. Checkpoints save the rows alone (`checkpoint.save_state`).
"""

from __future__ import annotations

import math

import torch

from ..codec.rate import TrainingStreamGrid
from ..model import GIFStreamModel
from .densify import GrowthStats

# the model's per-anchor parameters and the learning rate (a TrainConfig field) of each one's optimiser group
PER_ANCHOR_LR = {"log_scale": "lr_scale", "offsets": "lr_offsets", "feat": "lr_feat", "stream": "lr_stream",
                 "mask_logits": "lr_mask"}
# what a new anchor copies from its parent (the rest starts fresh: one voxel's scale, offsets at the centre)
INHERITED = ("feat", "stream", "mask_logits")
HEADROOM = 1.25  # a table's new buffer holds this many times the rows it needs (room for later growth)
CHUNK_ROWS = 4096  # rows moved at a time when a table is compacted in place
MIN_DIRECT_ROWS = 256  # rows moved at least this far are gathered straight into their place (no copy)


class AnchorState:
    """The model's per-anchor parameters and positions, their optimiser state, the growth statistics and the
    stream grid of one GOP's trainer. The optimiser's per-anchor groups are named after the parameter
    (`PER_ANCHOR_LR`); its other groups (decoders, entropy models) are left alone."""

    def __init__(self, model: GIFStreamModel, optimizer: torch.optim.Optimizer, stats: GrowthStats):
        self.model, self.optimizer, self.stats = model, optimizer, stats
        self.stream_grid: TrainingStreamGrid | None = None  # dynamic anchors on the 2D grid, None until (re)built

    @torch.no_grad()
    def select(self, keep: torch.Tensor) -> None:
        """Keep the anchors `keep` ((N,) bool) in every per-anchor table, in order."""
        self._rebuild(torch.nonzero(keep).squeeze(1))
        self.model.anchor_xyz = self.model.anchor_xyz[keep]
        self.stats = self.stats.select(keep)

    @torch.no_grad()
    def extend(self, parents: torch.Tensor, centres: torch.Tensor, keep: torch.Tensor | None = None) -> None:
        """Append one anchor at each of `centres` (G, 3) whose feature, stream and masks are copies of anchor
        parents[i]'s; the rest starts fresh (scale of one voxel, offsets at the centre, zero moments and
        statistics). keep ((N,) bool, default all): keep only those of the present anchors, as `select` would
        after the appending, with one copy of every table instead of two (parents index the present anchors)."""
        m, grown = self.model, len(parents)
        fresh = {"log_scale": torch.full((grown, 6), math.log(m.cfg.voxel_size)),
                 "offsets": torch.zeros(grown, m.cfg.num_offsets, 3)}
        rows = {name: getattr(m, name)[parents] if name in INHERITED else fresh[name] for name in PER_ANCHOR_LR}
        if keep is None:
            self._rebuild(None, rows)
            m.anchor_xyz = torch.cat([m.anchor_xyz, centres.to(m.anchor_xyz)])
            self.stats = self.stats.extend(grown)
            return
        self._rebuild(torch.nonzero(keep).squeeze(1), rows)
        m.anchor_xyz = torch.cat([m.anchor_xyz[keep], centres.to(m.anchor_xyz)])
        self.stats = self.stats.select(keep).extend(grown)

    def _rebuild(self, index: torch.Tensor | None, appended: dict[str, torch.Tensor] | None = None) -> None:
        """Each per-anchor parameter as a new Parameter of its rows `index` ((M,) long, None: every row) plus
        `appended`, with Adam's moments picked alike (zero for appended rows): one copy of each table."""
        for group in self.optimizer.param_groups:
            name = group["name"]
            if name not in PER_ANCHOR_LR:
                continue
            old = group["params"][0]
            extra = None if appended is None else appended[name]
            param = torch.nn.Parameter(picked_rows(old.data, index, extra))
            state = self.optimizer.state.pop(old, None)
            if state:
                for key in ("exp_avg", "exp_avg_sq"):
                    state[key] = picked_rows(state[key], index, zeros=0 if extra is None else len(extra))
                self.optimizer.state[param] = state
            group["params"][0] = param
            setattr(self.model, name, param)
        self.stream_grid = None  # anchor indices changed


def picked_rows(table: torch.Tensor, index: torch.Tensor | None, appended: torch.Tensor | None = None,
                zeros: int = 0) -> torch.Tensor:
    """table's rows `index` (ascending; None: every row), then the rows `appended` or else `zeros` rows of zeros,
    each written once into its place. Written into table's own buffer when it has room (`table` is then
    overwritten: the caller drops it), else into a new buffer with `HEADROOM` times the rows."""
    kept = len(table) if index is None else len(index)
    extra = len(appended) if appended is not None else zeros
    buffer = whole_buffer(table)
    if buffer is not None and kept + extra <= len(buffer):
        if index is not None:
            compact_rows(buffer, index)
        out = buffer[:kept + extra]
    else:
        out = table.new_empty((math.ceil(HEADROOM * (kept + extra)), *table.shape[1:]))[:kept + extra]
        if index is None:
            out[:kept].copy_(table)
        else:
            torch.index_select(table, 0, index, out=out[:kept])
    if appended is not None:
        out[kept:].copy_(appended)
    else:
        out[kept:].zero_()
    return out


def whole_buffer(table: torch.Tensor) -> torch.Tensor | None:
    """All the rows table's storage holds, as a tensor whose leading rows are `table` (None when table is not
    such a leading block: a row-major tensor at the start of its storage)."""
    if table.ndim == 0 or len(table) == 0 or table.storage_offset() != 0 or not table.is_contiguous():
        return None
    row_bytes = table[0].numel() * table.element_size()
    if row_bytes == 0:
        return None
    rows = table.untyped_storage().nbytes() // row_bytes
    return table.new_empty(0).set_(table.untyped_storage(), 0, (rows, *table.shape[1:]))


def compact_rows(buffer: torch.Tensor, index: torch.Tensor) -> None:
    """buffer[:len(index)] = buffer[index], in place (`index` ascending and unique, so index[i] >= i), chunk by
    chunk from the first row that moves; no chunk reads below its own start, so what it reads is still in place.
    Where rows have moved by at least a chunk (index[a] >= a + chunk), a chunk's sources lie wholly after its rows
    and it is gathered straight into them; nearer, it is gathered into a copy first."""
    n = len(index)
    shifts = (index - torch.arange(n, device=index.device)).cpu()  # how far each kept row moves forward
    moved = torch.nonzero(shifts)
    a = int(moved[0]) if len(moved) else n
    while a < n:
        shift = int(shifts[a])
        if shift >= MIN_DIRECT_ROWS:
            b = min(a + min(shift, CHUNK_ROWS), n)
            first = a + shift  # index[a] >= b: the sources start after the rows written
            torch.index_select(buffer[first:], 0, index[a:b] - first, out=buffer[a:b])
        else:
            b = min(a + CHUNK_ROWS, n)
            buffer[a:b] = torch.index_select(buffer, 0, index[a:b])
        a = b
