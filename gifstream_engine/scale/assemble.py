"""A run assembled from its GOP folders: every GOP the capture has must have finished (`gop_XXX/model.pt`)
before the run is evaluated or encoded (a farm's last step, after GOPs trained on different machines)."""

from __future__ import annotations

import math
import os

from ..errors import RunError
from ..train.trainer import FINAL
from .gop_job import gop_folder, saved_config


def num_gops(run: str) -> int:
    """How many GOPs the run has: its frames (config.json) over the configured GOP length."""
    from ..train.run_folder import read_saved

    saved = read_saved(run)
    frames = saved.get("num_frames")
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise RunError(f"{os.path.join(run, 'config.json')}: num_frames should be a positive integer, got {frames!r}")
    return math.ceil(frames / saved_config(run).train.gop_length)


def unfinished_gops(run: str) -> list[int]:
    return [g for g in range(num_gops(run)) if not os.path.isfile(os.path.join(gop_folder(run, g), FINAL))]


def check_complete(run: str) -> int:
    """The number of GOPs, or RunError naming those that have not finished."""
    missing = unfinished_gops(run)
    if missing:
        names = ", ".join(str(g) for g in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise RunError(f"{run}: GOPs {names} have not finished (no gop_XXX/{FINAL}); train them "
                       f"(gifstream train CAPTURE --out {run} --gop N --resume) before assembling the run")
    return num_gops(run)
