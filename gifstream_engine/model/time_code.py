"""Time as the decoders see it: the initial stream of anchors seeded where something moved (`time_code`) and the
motion decoder's sin/cos embedding of the frame (`time_embedding`)."""

from __future__ import annotations

import math

import numpy as np
import torch

TIME_CODE_PER_FRAME = 0.5  # in feature units: two frames per quantisation step at the base feature step


def time_code(occupancy: np.ndarray, stream_dim: int) -> torch.Tensor:
    """(M, T, P) initial stream of anchors seeded where something moved, from the frames each is occupied in
    (M, T) bool: channel 1 is the distance in frames to the nearest occupied frame (0 while occupied), channel 0
    the same distance signed (negative before, positive after), half a unit per frame; the rest zero. A ramp
    costs little to code (the stream's entropy model predicts frame t from t-1..t-3) and gives the opacity and
    motion decoders a shared notion of "how far from when this anchor was seen"."""
    occ = np.asarray(occupancy, bool)
    m, t = occ.shape
    before = np.full(m, -np.inf)  # the last occupied frame up to t, then the first from t on
    after = np.full(m, np.inf)
    last, following = np.empty((m, t)), np.empty((m, t))
    for i in range(t):
        before = np.where(occ[:, i], i, before)
        last[:, i] = before
        j = t - 1 - i
        after = np.where(occ[:, j], j, after)
        following[:, j] = after
    frames = np.arange(t)[None, :]
    since, until = frames - last, following - frames  # >= 0 each, inf where there is none
    signed = np.where(since <= until, since, -until)
    signed = torch.as_tensor(np.where(occ.any(1, keepdims=True), signed, 0.0), dtype=torch.float32)
    code = torch.zeros(m, t, stream_dim)
    code[..., 0] = TIME_CODE_PER_FRAME * signed
    if stream_dim > 1:
        code[..., 1] = TIME_CODE_PER_FRAME * signed.abs()
    return code


def time_embedding(t: float, freqs: int) -> torch.Tensor:
    bands = 2.0 ** torch.arange(freqs, dtype=torch.float32) * math.pi
    return torch.cat([torch.sin(bands * t), torch.cos(bands * t)])

