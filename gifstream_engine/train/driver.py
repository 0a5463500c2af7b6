"""All GOPs of a run: the run folder, locks, signals, resume and GOP 0's warm start around `GopTrainer`."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from typing import Callable

import numpy as np
import torch

from ..capture import Capture
from ..errors import ConfigError, RunError
from ..events import EventWriter
from ..render.environment import prepare_gsplat
from .checkpoint import save_state
from ..model.config import LEGACY_KNN_RULE
from .config import RunConfig, run_identity
from .gop_data import check_gop_fits, load_gop_frames
from .progress import reporter_for
from .run_folder import RunFolder
from .seeding import initial_model, warm_started
from .trainer import GopTrainer


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but torch sees no CUDA device; use device=cpu or auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def gop_seed(seed: int, g: int) -> int:
    """The global torch seed GOP g starts from: the run's seed for GOP 0, one of its own for each later GOP, so that
    a GOP trains the same whether the GOPs before it ran in this process or in another one (a Ray task, a farm)."""
    return seed if g == 0 else int(np.random.SeedSequence([seed, g]).generate_state(1)[0])


@dataclasses.dataclass(frozen=True)
class StepDone:
    """What a step callback is told after each training step (and after its checkpoint, if one was due)."""

    gop: int
    step: int
    resumed: bool  # this GOP continued a checkpoint in this process


class Training:
    """All GOPs of a capture into RUN/: config.json, gop_XXX/{checkpoint,model,warm_start}.pt, eval.json.

    `run` trains every GOP here, one after another; `begin` + `train_gop` let GOPs train in other processes (Ray
    tasks, farm tasks): each GOP folder has its own lock, and a GOP continues whatever its folder holds.
    `step_callbacks` are called after every step (e.g. a profiler, or a test's fault injection)."""

    step_callbacks: list[Callable[[StepDone], None]]

    def __init__(self, capture: Capture, cfg: RunConfig, out: str, events: EventWriter | None = None, log=print,
                 progress_bar: bool = False, handle_signals: bool = True):
        """progress_bar: a live bar (a person at a terminal) instead of a line every `train.log_every` steps.
        handle_signals: SIGINT/SIGTERM save a checkpoint and stop (off in Ray workers, where Ray owns them)."""
        self.capture, self.cfg, self.out = capture, cfg, out
        self.folder = RunFolder(out)
        self.events = events or EventWriter(enabled=False)
        self.log = log
        self.reporter = reporter_for(log, cfg.train.log_every, progress_bar)
        self.device = resolve_device(cfg.train.device)
        self.handle_signals = handle_signals
        self.stop_requested = False
        self.gops = capture.gops(cfg.train.gop_length)
        self.step_callbacks = []

    def request_stop(self, *_):
        self.stop_requested = True

    def run(self, resume: bool = False, overwrite: bool = False) -> str:
        """Train every GOP; the run folder is locked meanwhile, and a run already there is only continued with
        `resume` or replaced with `overwrite`."""
        with self.folder.claim_for_training(resume, overwrite):
            self.write_config(resume)
            for g in range(len(self.gops)):
                if self.train_gop(g) == "cancelled":
                    return "cancelled"
        return "finished"

    def begin(self, resume: bool = False, overwrite: bool = False) -> None:
        """Claim the run folder and write its config.json without training: what runs before GOPs train elsewhere."""
        with self.folder.claim_for_training(resume, overwrite):
            self.write_config(resume)

    def write_config(self, resume: bool) -> None:
        os.makedirs(self.out, exist_ok=True)
        if resume and self.folder.has_config():
            saved = self.folder.read_saved()
            if "knn_rule" not in saved.config.get("model", {}):  # saved before format 1.1: go on with its rule
                self.cfg.model.knn_rule = LEGACY_KNN_RULE
            if run_identity(saved.run_config().to_dict()) != run_identity(self.cfg.to_dict()):
                raise ConfigError(f"{self.folder.config_path}: --resume with a different configuration; use the run's "
                                  "own settings (only train.device may change)")
        self.folder.write_config(self.cfg, self.capture.root, self.capture.num_frames, self.capture.rig())

    def gop_folder(self, g: int) -> str:
        return self.folder.gop_dir(g)

    def train_gop(self, g: int, until_warm: bool = False) -> str:
        """Train GOP g (its folder locked meanwhile), continuing its checkpoint; "finished", "cancelled", or "warm"
        when `until_warm` stopped GOP 0 at its warm start (later GOPs can start; its checkpoint continues it)."""
        if not 0 <= g < len(self.gops):
            raise ConfigError(f"GOP {g} does not exist: {self.capture.root} has {len(self.gops)} GOPs "
                              f"(0..{len(self.gops) - 1}) of {self.cfg.train.gop_length} frames")
        folder = self.gop_folder(g)
        os.makedirs(folder, exist_ok=True)
        previous = {sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)} \
            if self.handle_signals else {}
        try:
            with self.folder.locked_gop(g, f"training GOP {g}"):
                return self._train_gop(g, until_warm)
        finally:
            self.reporter.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _start(self, g: int) -> tuple[GopTrainer, bool]:
        """GOP g's trainer: its checkpoint continued, else a new model (GOP 0 seeded, later GOPs warm-started);
        and whether it resumed."""
        ckpt, warm = self.folder.checkpoint(g), self.folder.warm_start()
        check_gop_fits(self.gops[g], self.cfg.train.gop_length)  # before any decoding: refused, not killed
        data = load_gop_frames(self.gops[g])
        if os.path.isfile(ckpt):
            self.gops[g].release_other_cameras(data.train_cams)
            trainer = GopTrainer.restore(ckpt, self.cfg, data, self.device)
            self.log(f"GOP {g}: resuming at step {trainer.step}")
            return trainer, True
        if g > 0 and not os.path.isfile(warm):
            raise RunError(f"GOP {g} starts from GOP 0's warm start {warm}, which does not exist yet; "
                           "train GOP 0 first (gifstream train CAPTURE --out RUN --gop 0)")
        torch.manual_seed(gop_seed(self.cfg.train.seed, g))
        gop = self.gops[g]
        model = warm_started(warm, self.cfg, gop, self.device, self.log) if g > 0 else initial_model(gop, self.cfg, self.log)
        gop.release_other_cameras(data.train_cams)  # the test cameras' frames served seeding; training never reads them
        return GopTrainer(self.cfg, data, model, self.device), False

    def _train_gop(self, g: int, until_warm: bool) -> str:
        final, ckpt, warm = self.folder.final(g), self.folder.checkpoint(g), self.folder.warm_start()
        if os.path.isfile(final):
            self.log(f"GOP {g}: already trained")
            return "finished"
        if self.device.type == "cuda" and self.cfg.train.rasterizer != "torch":
            # before seeding: a machine that cannot train on CUDA says so at once; a build is its own phase
            prepare_gsplat(self.log, lambda step, total: self.events.progress("compile", step, total,
                                                                              phase="compiling GPU kernels"))
        elif self.device.type == "cuda":
            self.log("training on CUDA with the PyTorch rasteriser (train.rasterizer=torch): slower than gsplat")
        trainer, resumed = self._start(g)
        if self.handle_signals:
            # (again) after SfM: importing pycolmap installs glog's failure handlers, which would abort on SIGTERM
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.request_stop)
        tc = self.cfg.train
        warm_step = int(round(tc.joint_end_frac * tc.steps))
        while trainer.step < tc.steps:
            if g == 0 and until_warm and trainer.step >= warm_step and os.path.isfile(warm):
                trainer.save(ckpt)
                self.log(f"GOP 0: warm start ready at step {trainer.step}")
                return "warm"
            if self.stop_requested:
                trainer.save(ckpt)
                self.log(f"stopped at GOP {g} step {trainer.step}; checkpoint {ckpt}")
                self.events.result({"status": "cancelled", "checkpoint": ckpt, "gop": g, "step": trainer.step})
                return "cancelled"
            start = time.perf_counter()
            info = trainer.train_step()
            trainer.elapsed += time.perf_counter() - start
            if g == 0 and trainer.step == warm_step:
                trainer.save(warm)
            if trainer.step % tc.checkpoint_every == 0:
                trainer.save(ckpt)
            for callback in self.step_callbacks:
                callback(StepDone(g, trainer.step, resumed))
            self._report(g, trainer, info)
        if g == 0 and not os.path.isfile(warm):
            trainer.save(warm)
        trainer.model.update_knn()  # the neighbours among the final kept anchors, as the bitstream's decoder finds them
        state = trainer.state()
        save_state({k: state[k] for k in ("step", "elapsed", "config", "num_frames", "model", "entropy")}
                   | {"frame_offset": self.gops[g].frame_offset - self.capture.frame_offset}, final)
        trainer.save(ckpt)
        return "finished"

    def _report(self, g: int, trainer: GopTrainer, info: dict) -> None:
        """The step to the reporter (a bar or a line every `log_every`) and, every `log_every`, a progress event."""
        tc, num_gops = self.cfg.train, len(self.gops)
        eta = trainer.elapsed / max(trainer.step, 1) * ((num_gops - g) * tc.steps - trainer.step)
        self.reporter.step(g, num_gops, trainer.step, tc.steps, info, eta)
        if trainer.step % tc.log_every == 0 or trainer.step == tc.steps:
            done = (g * tc.steps + trainer.step) / (num_gops * tc.steps)
            self.events.progress("train", g * tc.steps + trainer.step, num_gops * tc.steps, gop=g, gop_step=trainer.step,
                                 gop_steps=tc.steps, phase=info["phase"], loss=info["loss"],
                                 terms={name: float(value) for name, value in info["terms"].items()},
                                 psnr=info["psnr"], anchors=info["anchors"], eta=eta, fraction=done)
