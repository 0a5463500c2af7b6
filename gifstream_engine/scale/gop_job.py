"""One GOP of a run trained in this process: what `gifstream train --gop N` and each Ray task run.

The run folder (shared storage) is the only thing GOPs exchange: GOP 0 writes `config.json` and
`gop_000/warm_start.pt`, every GOP writes its own `gop_XXX/` (locked while it trains) and continues its checkpoint
when run again, so a retried or requeued task resumes where the previous attempt stopped.
"""

from __future__ import annotations

import dataclasses
import os
import time

from ..events import EventWriter
from ..train.config import RunConfig
from ..train.run_folder import RunFolder

EVENTS_FILE = "events.jsonl"  # per GOP: the JSON-lines events of every attempt at training it (progress, log, result)


@dataclasses.dataclass(frozen=True)
class GopRequest:
    capture: str  # capture folder, as every worker sees it
    run: str  # run folder on shared storage
    gop: int
    threads: int | None = None  # torch intra-op threads (None: torch's default); results depend on it on the CPU
    until_warm: bool = False  # GOP 0 only: stop once the warm start later GOPs need is written


@dataclasses.dataclass(frozen=True)
class GopOutcome:
    gop: int
    status: str  # "finished", "warm" (GOP 0 stopped at its warm start) or "cancelled"
    folder: str
    seconds: float
    host: str
    pid: int
    cuda_visible_devices: str | None  # what this process was given (Ray sets it per task asking for a GPU)
    entered: float  # time.time(): the job began (before loading torch and the capture), training began, ended
    started: float
    ended: float


def gop_folder(run: str, g: int) -> str:
    return RunFolder(run).gop_dir(g)


def saved_config(run: str) -> RunConfig:
    return RunFolder(run).read_config()


def set_threads(threads: int | None) -> None:
    """Torch's intra-op threads for this process; float sums on the CPU depend on it, so a parallel run matches a
    serial one only with the same count."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def train_gop(request: GopRequest, events: EventWriter | None = None, log=None, handle_signals: bool = True,
              progress_bar: bool = False, entered: float | None = None) -> GopOutcome:
    """Train GOP `request.gop` of the run in `request.run` (its config.json must exist) in this process."""
    entered = entered or time.time()
    from ..train.driver import Training
    from ..train.pipeline import run_capture

    set_threads(request.threads)
    cfg = saved_config(request.run)
    events = events or EventWriter(enabled=False)
    log = log or events.log
    capture = run_capture(request.capture, cfg)
    training = Training(capture, cfg, request.run, events, log, progress_bar, handle_signals=handle_signals)
    started = time.time()
    log(f"GOP {request.gop}: pid {os.getpid()} on {os.uname().nodename}, {_threads()} torch threads, "
        f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}")
    status = training.train_gop(request.gop, until_warm=request.until_warm)
    ended = time.time()
    return GopOutcome(request.gop, status, training.gop_folder(request.gop), ended - started, os.uname().nodename,
                      os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"), entered, started, ended)


def train_gop_logged(request: GopRequest) -> GopOutcome:
    """`train_gop` for a worker with no terminal (a Ray task): its events and log go to gop_XXX/events.jsonl,
    which the driver follows; Ray owns the process's signals."""
    entered = time.time()
    folder = gop_folder(request.run, request.gop)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, EVENTS_FILE), "a") as stream:
        return train_gop(request, EventWriter(stream), handle_signals=False, entered=entered)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def train_gop_of_run(capture: str, run: str, g: int, cfg: RunConfig | None, resume: bool, overwrite: bool,
                     threads: int | None, events: EventWriter, log, progress_bar: bool = False) -> GopOutcome:
    """`gifstream train CAPTURE --out RUN --gop N`. GOP 0 starts the run (config.json from `cfg`, with the usual
    --resume/--overwrite rules); a later GOP joins the run GOP 0 started and uses its saved configuration (`cfg`,
    when given, must be the same). Every GOP continues what its own folder holds."""
    from ..errors import ConfigError
    from ..train.driver import Training
    from ..train.pipeline import run_capture

    if g == 0:
        if cfg is None:
            raise ConfigError("GOP 0 starts the run: it needs its configuration (--preset/--set, or --resume of a run)")
        set_threads(threads)
        Training(run_capture(capture, cfg), cfg, run, events, log).begin(resume, overwrite)
    else:
        if overwrite:
            raise ConfigError(f"--overwrite replaces a whole run: give it to GOP 0's command, not GOP {g}'s")
        if not RunFolder(run).has_config():
            raise ConfigError(f"GOP {g} joins the run GOP 0 starts, but {run} has no config.json yet; "
                              f"train GOP 0 first (gifstream train CAPTURE --out {run} --gop 0)")
        saved = saved_config(run)
        if cfg is not None and cfg.to_dict() != saved.to_dict():
            raise ConfigError(f"{RunFolder(run).config_path}: GOP {g} was given a configuration other than the "
                              "run's; leave out --preset/--set for GOPs after the first")
    return train_gop(GopRequest(capture, run, g, threads), events, log, handle_signals=True, progress_bar=progress_bar)
