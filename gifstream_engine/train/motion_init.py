"""The motion decoder's starting point: fitted to the tracked objects' translations before photometric training.

The motion decoder's last layer starts at zero, and a photometric gradient cannot pull an object's anchors along
a path longer than the object itself: once the rendered object no longer overlaps where the footage shows it, the
gradient that would move it is gone. Where the seeds come with tracks (train/tracking.py), the decoder and the
tracked anchors' streams are first fitted, with a plain least-squares loss and no rendering, to carry each tracked
anchor by its track's translation in every frame and to leave the other anchors where they are. The bitstream
and the decoder are unchanged: this only chooses where training starts.
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
               steps: int = 300, lr: float = 0.01, static_sample: int = 1024, seed: int = 0) -> MotionFit:
    """Fit `model`'s motion decoder and its tracked anchors' streams so that anchor i moves by motion[i, t]
    (N, T, 3) in frame t for the anchors `tracked` (N,) bool, and the others do not move. Decoding uses `state`'s
    quantisation (uniform noise makes the fit hold once training quantises the stream); for the untracked anchors the
    decoder's output itself is held at zero (M_dy, nearly closed for them, would otherwise let it grow), and
    `static_rms` reports their motion as the joint phase decodes it (unquantised masks)."""
    device = model.anchor_xyz.device
    tracked_idx = torch.as_tensor(np.nonzero(tracked)[0], device=device)
    if len(tracked_idx) == 0:
        return MotionFit(0, 0.0, 0.0, 0.0)
    target = torch.as_tensor(motion, dtype=torch.float32, device=device)[tracked_idx]  # (n, T, 3)
    others = np.nonzero(~tracked)[0]
    rng = np.random.default_rng(seed)
    static_idx = torch.as_tensor(rng.choice(others, min(static_sample, len(others)), replace=False) if len(others) else others,
                                 dtype=torch.long, device=device)
    plain = dataclasses.replace(state, quantize="none")
    params = list(model.motion_mlp.parameters()) + [model.stream]
    optimizer = torch.optim.Adam(params, lr=lr)
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
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = 0.0
        for t in frames:
            loss = loss + ((moved(t, tracked_idx, state) - target[:, t]) ** 2).sum(-1).mean()
            if len(static_idx):
                loss = loss + (moved(t, static_idx, plain, gated=False) ** 2).sum(-1).mean()
        (loss / model.num_frames).backward()
        # only the tracked anchors' streams are the fit's to choose
        keep = torch.zeros(model.num_anchors, 1, 1, device=device)
        keep[tracked_idx] = 1.0
        model.stream.grad *= keep
        optimizer.step()
    after, still = errors()
    return MotionFit(len(tracked_idx), before, after, still)
