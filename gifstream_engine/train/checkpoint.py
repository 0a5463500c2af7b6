"""Checkpoint and model files (`gop_XXX/{checkpoint,model,warm_start}.pt`): plain tensors, numbers, strings,
lists and dicts only, written atomically, read with `torch.load(weights_only=True)` so that a crafted file can
never run code; anything unreadable or of the wrong structure is a RunError naming the file."""

from __future__ import annotations

import io
import os

import torch

from .. import validate
from ..errors import RunError
from ..fileio import atomic_open, input_file
from ..model import GIFStreamModel

# what every saved state holds (a checkpoint adds the optimiser, RNG states and growth statistics)
REQUIRED = {"step": int, "elapsed": float, "config": dict, "num_frames": int, "model": dict}


def save_state(state: dict, path: str) -> None:
    """Serialised in memory first: torch.save reports a full disk as an opaque RuntimeError, a plain write as
    the OSError that `atomic_open` turns into one OutputError (the previous file stays as it was)."""
    buffer = io.BytesIO()
    torch.save(own_storage(state), buffer)
    with atomic_open(path) as f:
        f.write(buffer.getbuffer())


def own_storage(value):
    """`value` (nested dicts, lists, tuples) with every tensor that is part of a larger storage (the per-anchor
    tables' rows in their buffers, `train.anchors`) copied out: torch.save writes a tensor's whole storage."""
    if isinstance(value, torch.Tensor):
        return value.clone() if value.untyped_storage().nbytes() > value.numel() * value.element_size() else value
    if isinstance(value, dict):
        return {key: own_storage(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(own_storage(item) for item in value)
    return value


def load_state(path: str, device, required: dict[str, type] | None = None) -> dict:
    """A saved state, loaded without running code, with the fields `required` (name -> type) present."""
    if not os.path.lexists(path):
        raise RunError(f"{path} is missing")
    input_file(path, "saved state", RunError)  # a regular file: a FIFO or device is never opened
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError as exc:
        raise RunError(f"{path} is missing") from exc
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types for damaged or hostile files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only load failed" in str(exc).lower():
            reason = "it holds Python objects other than tensors and plain data (refused without running them)"
        raise RunError(f"{path} is damaged or not a GIFStream file: {reason}") from exc
    if not isinstance(state, dict):
        raise RunError(f"{path} is damaged: expected a dict of tensors and values, got {type(state).__name__}")
    for key, kind in {**REQUIRED, **(required or {})}.items():
        value = state.get(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = state[key] = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise RunError(f"{path} is damaged: field {key!r} should be {kind.__name__}, got {type(value).__name__}")
    validate.number(state["num_frames"], f"{path}: num_frames", RunError, integer=True, minimum=1, maximum=1_000_000)
    validate.number(state["step"], f"{path}: step", RunError, integer=True, minimum=0)
    model = state["model"]
    bad = [k for k, v in model.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise RunError(f"{path} is damaged: model entries {bad[:3]} are not tensors")
    xyz = model.get("anchor_xyz")
    if xyz is None or xyz.ndim != 2 or xyz.shape[1] != 3 or len(xyz) == 0 or not xyz.is_floating_point():
        raise RunError(f"{path} is damaged: model.anchor_xyz should be an (N, 3) float tensor with N >= 1, got "
                       f"{None if xyz is None else tuple(xyz.shape)}")
    return state


def load_model(state: dict, cfg, path: str = "saved state") -> GIFStreamModel:
    """The model of a state `load_state` returned (its structure checked), for the run configuration `cfg`
    (a RunConfig); a RunError naming `path` when the state does not match the configuration."""
    try:
        return GIFStreamModel.from_state_dict(state["model"], state["num_frames"], cfg.model)
    except RuntimeError as exc:  # missing/unexpected keys or shapes other than the run's config.json gives
        raise RunError(f"{path} does not match the run's configuration: {str(exc).splitlines()[0]}") from exc
