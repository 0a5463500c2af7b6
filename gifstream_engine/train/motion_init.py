"""The motion decoder's starting point and guide: fitted to the tracked objects' translations before photometric
training, then held near them by a prior that fades out.

The motion decoder's last layer starts at zero, and a photometric gradient cannot pull an object's anchors along
a path longer than the object itself: once the rendered object no longer overlaps where the footage shows it, the
gradient that would move it is gone. Where the seeds come with tracks (train/tracking.py), the decoder and the
tracked anchors' time-invariant features (past the colour channels) are first fitted, with a plain least-squares loss and no rendering, to carry each tracked
anchor by its track's translation in every frame and to leave the other anchors where they are. The features, not
the stream, carry which track an anchor is on: a stream fitted to carry the motion grew to values of 3 on average
(19 at most) that changed every frame, inputs the opacity and colour decoders read too, whereas a feature is one
value for all frames (measured on the demo, both end at the same PSNR: README, "Tracking what moves"). Photometric
training alone then drifts away from it within a few hundred steps (the features it decodes from move fast), so
`TrackPrior` keeps a least-squares pull towards the tracks whose weight fades to zero, after which the footage
alone refines the motion. The bitstream and the decoder are unchanged.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..model.gifstream import DecodeState, GIFStreamModel


@dataclasses.dataclass(frozen=True)
class MotionFit:
    tracked: int  # anchors carried by a track
    rms_before: float  # metres, root mean square distance of tracked anchors to their tracks' positions
    rms_after: float
    static_rms: float  # metres, the other anchors' motion after the fit (it should stay near zero)


def fit_motion(model: GIFStreamModel, motion: np.ndarray, tracked: np.ndarray, state: DecodeState,
               steps: int = 300, lr: float = 0.01, static_sample: int = 1024, seed: int = 0,
               frames_per_step: int = 4, stream_lr: float = 0.0, feat_lr: float = 0.05) -> MotionFit:
    """Fit `model`'s motion decoder and its tracked anchors' features past the first three (the seed colour) and,
    with `stream_lr` > 0, their streams, so that anchor i moves by motion[i, t]
    (N, T, 3) in frame t for the anchors `tracked` (N,) bool, and the others do not move (each step on
    `frames_per_step` random frames). Decoding uses `state`'s
    quantisation (uniform noise makes the fit hold once training quantises features and streams); for the untracked anchors the
    decoder's output itself is held at zero (M_dy, nearly closed for them, would otherwise let it grow), and
    `static_rms` reports their motion as the joint phase decodes it (unquantised masks)."""
    device = model.anchor_xyz.device
    tracked_idx = torch.as_tensor(np.nonzero(tracked)[0], device=device)
    if len(tracked_idx) == 0:
        return MotionFit(0, 0.0, 0.0, 0.0)
    target = torch.as_tensor(motion, dtype=torch.float32, device=device)[tracked_idx]  # (n, T, 3)
    static_idx = torch.as_tensor(np.nonzero(~tracked)[0], dtype=torch.long, device=device)
    plain = dataclasses.replace(state, quantize="none")
    optimizer = torch.optim.Adam([{"params": list(model.motion_mlp.parameters()), "lr": lr},
                                  {"params": [model.feat], "lr": feat_lr}, {"params": [model.stream], "lr": stream_lr}])
    frames = range(model.num_frames)

    def moved(t: int, idx: torch.Tensor, decode: DecodeState, gated: bool = True) -> torch.Tensor:
        h_all, masks = model.anchor_inputs(t, decode)
        if not gated:  # the decoder's own output, before M_dy scales it
            masks = {**masks, "dy": torch.ones_like(masks["dy"])}
        return model.anchor_motion(t, h_all, idx, masks)[0]

    def errors() -> tuple[float, float]:
        with torch.no_grad():
            err = torch.stack([((moved(t, tracked_idx, state) - target[:, t]) ** 2).sum(-1) for t in frames])
            still = torch.stack([(moved(t, static_idx, plain) ** 2).sum(-1) for t in frames]) if len(static_idx) else err[:0]
        return float(err.mean().sqrt()), float(still.mean().sqrt()) if still.numel() else 0.0

    before, _ = errors()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = 0.0
        batch = torch.randperm(model.num_frames, generator=generator)[:frames_per_step].tolist()
        still = static_idx[torch.randperm(len(static_idx), generator=generator)[:static_sample].to(device)]
        for t in batch:
            loss = loss + ((moved(t, tracked_idx, state) - target[:, t]) ** 2).sum(-1).mean()
            if len(still):
                loss = loss + (moved(t, still, plain, gated=False) ** 2).sum(-1).mean()
        (loss / len(batch)).backward()
        # only the tracked anchors' features (past the colour channels) and streams are the fit's to choose
        keep = torch.zeros(model.num_anchors, 1, device=device)
        keep[tracked_idx] = 1.0
        model.stream.grad *= keep[:, :, None]
        model.feat.grad *= keep
        model.feat.grad[:, :3] = 0
        optimizer.step()
    after, still = errors()
    return MotionFit(len(tracked_idx), before, after, still)


@dataclasses.dataclass
class TrackPrior:
    """Per anchor of the trained model: the translation its track asks for in every frame, and whether it has one.
    Rows follow the anchors through growth (a new anchor takes its parent's) and pruning."""

    motion: torch.Tensor  # (N, T, 3)
    tracked: torch.Tensor  # (N,) bool

    @staticmethod
    def of(motion: np.ndarray, tracked: np.ndarray, device=None) -> "TrackPrior":
        return TrackPrior(torch.as_tensor(motion, dtype=torch.float32, device=device),
                          torch.as_tensor(tracked, dtype=torch.bool, device=device))

    def select(self, keep: torch.Tensor, parents: torch.Tensor | None = None) -> "TrackPrior":
        """The rows `keep` (bool), then a copy of the row of each of `parents` (indices into the rows before)."""
        motion, tracked = self.motion[keep], self.tracked[keep]
        if parents is not None:
            motion, tracked = torch.cat([motion, self.motion[parents]]), torch.cat([tracked, self.tracked[parents]])
        return TrackPrior(motion, tracked)

    def loss(self, translation: torch.Tensor, idx: torch.Tensor, t: int) -> torch.Tensor:
        """Mean squared distance (m^2) of the tracked anchors among idx (n,) from their tracks in frame t, given
        the decoded translation (n, 3) of idx; zero when none of them is tracked."""
        on = self.tracked[idx]
        if not on.any():
            return translation.new_zeros(())
        return ((translation[on] - self.motion[idx[on], t]) ** 2).sum(-1).mean()

    @staticmethod
    def weight(step: int, steps: int, start: float, end_frac: float) -> float:
        """`start` at step 0, fading linearly to zero at `end_frac` of the steps."""
        end = end_frac * steps
        return 0.0 if end <= 0 or step >= end else start * (1 - step / end)
