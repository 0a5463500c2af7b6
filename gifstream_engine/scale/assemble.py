"""A run assembled from its GOP folders: every GOP the capture has must have finished (`gop_XXX/model.pt`)
before the run is evaluated or encoded (a farm's last step, after GOPs trained on different machines)."""

from __future__ import annotations

import math
import os

from ..errors import RunError
from ..train.run_folder import FINAL, RunFolder


def num_gops(run: str) -> int:
    """How many GOPs the run has: its frames (config.json) over the configured GOP length."""
    folder = RunFolder(run)
    saved = folder.read_saved()
    if saved.num_frames is None:
        raise RunError(f"{folder.config_path}: num_frames should be a positive integer")
    return math.ceil(saved.num_frames / saved.run_config().train.gop_length)


def unfinished_gops(run: str) -> list[int]:
    folder = RunFolder(run)
    return [g for g in range(num_gops(run)) if not os.path.isfile(folder.final(g))]


def check_complete(run: str) -> int:
    """The number of GOPs, or RunError naming those that have not finished."""
    missing = unfinished_gops(run)
    if missing:
        names = ", ".join(str(g) for g in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise RunError(f"{run}: GOPs {names} have not finished (no gop_XXX/{FINAL}); train them "
                       f"(gifstream train CAPTURE --out {run} --gop N --resume) before assembling the run")
    return num_gops(run)
