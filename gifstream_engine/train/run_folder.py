"""A run folder and its one owner, `RunFolder`: paths, config.json read/write, GOP folders, the lock, the status,
eval.json, and loading the trained run as a sequence (`TrainedRun`).

Rules: one writer at a time, a run is never replaced without --resume or --overwrite, and its files are read
safely (JSON checked field by field, tensors with `torch.load(weights_only=True)`: no code runs).

The lock is `RUN/.gifstream.lock` held with flock: the kernel drops it when its process ends in any way (a crash
or kill -9 included), so it never stays stuck; the holder removes the file when it is done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import glob
import json
import math
import os
import shutil

import torch

from ..capture.camera import Rig
from ..codec.bitstream import CodableSequence
from ..codec.entropy_models import EntropyModels
from ..codec.gop_coding import coded_anchor_values
from ..codec.rate import quantised_anchors
from ..errors import ConfigError, RunError
from ..fileio import write_json
from ..sequence import SequenceGop
from .checkpoint import load_model, load_state
from .config import RunConfig, run_identity
from .schedule import final_decode_state

LOCK = ".gifstream.lock"
CONFIG = "config.json"
EVAL = "eval.json"
GOP_GLOB = "gop_[0-9][0-9][0-9]"
CHECKPOINT = "checkpoint.pt"  # the trainer's state, to resume from
FINAL = "model.pt"  # a trained GOP: what eval and encode read
WARM = "warm_start.pt"  # GOP 0 at the end of its joint phase: later GOPs start here


def holds_run(folder: str) -> bool:
    """Whether `folder` holds (part of) a training run."""
    return os.path.isfile(os.path.join(folder, CONFIG)) or bool(glob.glob(os.path.join(folder, GOP_GLOB)))


@contextlib.contextmanager
def locked(folder: str, purpose: str):
    """Hold the folder's lock for the block, or raise RunError naming the process that holds it."""
    path = os.path.join(folder, LOCK)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunError(f"cannot lock run folder {folder}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunError(f"{folder} is in use by another gifstream process ({holder or 'unknown'}; lock {path}); "
                               "wait for it to finish or stop it") from exc
            raise RunError(f"cannot lock run folder {folder}: {exc.strerror or exc}") from exc
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a lock file its previous holder removed while we waited to open it
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} {purpose}".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""


def claim(folder: str, resume: bool, overwrite: bool) -> None:
    """Before training into `folder` (lock held): refuse to replace a run unless asked; --overwrite removes the old
    run's own files (config, eval, GOP folders), nothing else."""
    if not holds_run(folder) or resume:
        return
    if not overwrite:
        raise RunError(f"{folder} already holds a training run ({', '.join(_run_files(folder))}); "
                       "pass --resume to continue it or --overwrite to replace it")
    for name in _run_files(folder):
        path = os.path.join(folder, name)
        try:
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except OSError as exc:
            raise RunError(f"--overwrite: cannot remove {path}: {exc.strerror or exc}") from exc


def _run_files(folder: str) -> list[str]:
    names = [n for n in (CONFIG, EVAL) if os.path.exists(os.path.join(folder, n))]
    return names + sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, GOP_GLOB)))


@contextlib.contextmanager
def training_claim(folder: str, resume: bool, overwrite: bool):
    """The lock and the overwrite rule together: what a trainer holds while it writes into `folder`."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create run folder {folder}: {exc.strerror or exc}") from exc
    with locked(folder, "training"):
        claim(folder, resume, overwrite)
        yield


@dataclasses.dataclass
class SavedRun:
    """RUN/config.json as the trainer writes it: the configuration (as saved), the capture and its rig."""

    config: dict  # RunConfig.to_dict() of the run (`run_config()` validates it)
    capture: str  # the capture folder it was trained on
    rig: Rig | None  # fps, scene bounds and cameras at training time (None for older runs)
    num_frames: int | None  # of the capture (None for older runs)
    path: str

    def run_config(self) -> RunConfig:
        return RunConfig.from_dict(self.config, self.path)


class RunFolder:
    """RUN/: config.json, gop_XXX/{checkpoint,model,warm_start}.pt, eval.json and the lock, owned here only."""

    def __init__(self, path: str):
        self.path = path

    @property
    def config_path(self) -> str:
        return os.path.join(self.path, CONFIG)

    @property
    def eval_path(self) -> str:
        return os.path.join(self.path, EVAL)

    def gop_dir(self, g: int) -> str:
        return os.path.join(self.path, f"gop_{g:03d}")

    def checkpoint(self, g: int) -> str:
        return os.path.join(self.gop_dir(g), CHECKPOINT)

    def final(self, g: int) -> str:
        return os.path.join(self.gop_dir(g), FINAL)

    def warm_start(self) -> str:
        return os.path.join(self.gop_dir(0), WARM)

    def final_models(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.path, "gop_*", FINAL)))

    def holds_run(self) -> bool:
        return holds_run(self.path)

    def locked(self, purpose: str):
        return locked(self.path, purpose)

    def locked_gop(self, g: int, purpose: str):
        """GOP g's own lock (GOPs of one run may train in different processes)."""
        return locked(self.gop_dir(g), purpose)

    def claim_for_training(self, resume: bool, overwrite: bool):
        return training_claim(self.path, resume, overwrite)

    # --- config.json -----------------------------------------------------------------------
    def write_config(self, cfg: RunConfig, capture_root: str, num_frames: int, rig: Rig) -> None:
        write_json(self.config_path, {"config": cfg.to_dict(), "capture": capture_root, "num_frames": num_frames,
                                      "rig": rig.to_json()})

    def has_config(self) -> bool:
        return os.path.isfile(self.config_path)

    def read_saved(self) -> SavedRun:
        """config.json, checked: an object with `config` (validated by `SavedRun.run_config`), `capture` and a rig."""
        path = self.config_path
        if not os.path.isfile(path):
            raise RunError(f"{self.path} is not a training run: no {CONFIG}")
        try:
            with open(path) as f:
                saved = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunError(f"{path} is damaged: {exc}; expected the JSON the trainer writes") from exc
        if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict) or not isinstance(saved.get("capture"), str):
            raise RunError(f"{path} is damaged: expected an object with 'config' (an object) and 'capture' (a path)")
        rig = saved.get("rig")
        if rig is not None:  # what encode and render take the cameras and frame rate from
            rig = Rig.from_json(rig, f"{path}: rig", RunError)
        num_frames = saved.get("num_frames")
        num_frames = num_frames if isinstance(num_frames, int) and not isinstance(num_frames, bool) and num_frames > 0 else None
        return SavedRun(saved["config"], saved["capture"], rig, num_frames, path)

    def read_config(self) -> RunConfig:
        return self.read_saved().run_config()

    # --- status, results -------------------------------------------------------------------
    def status(self) -> str:
        """"empty" (no run), "started" (config.json, not every GOP trained) or "finished"."""
        if not self.has_config():
            return "started" if self.holds_run() else "empty"
        saved = self.read_saved()
        if saved.num_frames is None:
            return "started"
        gops = math.ceil(saved.num_frames / saved.run_config().train.gop_length)
        return "finished" if all(os.path.isfile(self.final(g)) for g in range(gops)) else "started"

    def write_eval(self, result: dict) -> str:
        with self.locked("writing eval.json"):
            write_json(self.eval_path, result)
        return self.eval_path

    def load(self) -> "TrainedRun":
        """The trained run as a sequence, read without running code (checkpoint.load_state); damaged files named.
        Its GOPs decode exactly as the coder will code them: quantised, with the coded anchor values."""
        saved = self.read_saved()
        cfg = saved.run_config()
        state = final_decode_state(cfg.train)
        gops, entropies = [], []
        for path in self.final_models():
            saved_gop = load_state(path, "cpu", {"frame_offset": int})
            model = load_model(saved_gop, cfg, path).eval()
            entropy, values = None, None
            if "entropy" in saved_gop:
                entropy = EntropyModels(cfg.model.feat_dim, cfg.model.stream_dim, cfg.model.num_offsets)
                try:
                    entropy.load_state_dict(saved_gop["entropy"])
                except (RuntimeError, TypeError, AttributeError) as exc:
                    raise RunError(f"{path}: entropy models do not match the run's configuration: "
                                   f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
                with torch.no_grad():
                    values, _ = quantised_anchors(model, entropy.eval(), state)
                values = coded_anchor_values(model, entropy, state, values)
            gops.append(SequenceGop(saved_gop["frame_offset"], model, state, values, saved_gop["elapsed"]))
            entropies.append(entropy)
        if not gops:
            raise ConfigError(f"{self.path}: no trained GOP (gop_*/{FINAL}); has training finished?")
        return TrainedRun(self.path, cfg, saved.capture, saved.rig, gops, entropies)


class TrainedRun(CodableSequence):
    """A trained run folder as a sequence (`RunFolder.load`)."""

    def __init__(self, folder: str, cfg: RunConfig, capture_root: str, rig: Rig | None, gops: list[SequenceGop],
                 entropy: list[EntropyModels | None]):
        super().__init__(gops, entropy, cfg.model, run_identity(cfg.to_dict())["train"], folder,
                         None if rig is None else rig.fps)
        self.folder, self.cfg, self.capture_root, self.rig = folder, cfg, capture_root, rig

    def statistics(self) -> dict:
        return super().statistics() | {"train_seconds": float(sum(g.train_seconds for g in self.gops))}


def load_run(folder: str) -> TrainedRun:
    return RunFolder(folder).load()
