"""GOPs trained in parallel on a Ray cluster (`gifstream train ... --workers ray | auto | ray://HOST:PORT`).

GOP 0 trains first, as a task that stops at its warm start; then GOP 0's remainder and GOPs 1..n are tasks of their
own, each asking for one GPU when the cluster has GPUs (Ray then gives each its own `CUDA_VISIBLE_DEVICES`) and
for `threads` CPUs. Tasks get a `GopRequest` of paths and return a `GopOutcome` of paths and times: models stay
on the run folder, which every node must see at the same path (shared storage). A worker that dies is retried
by Ray (`max_retries`) and continues its GOP's checkpoint; an error raised by the training itself (bad data, a
damaged file) is not retried. The driver holds the run folder's lock, follows each GOP's `events.jsonl` to
report progress, and fails with the first failed GOP's own error once the other GOPs are done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import threading
import time

from ..capture import Capture
from ..errors import ConfigError, GIFStreamError, RunError
from ..events import EventWriter, parse_event
from ..train.config import RunConfig
from ..train.run_folder import RunFolder
from ..train.driver import Training
from ..train.gop_data import GopMemory
from .gop_job import EVENTS_FILE, GopOutcome, GopRequest, gop_folder, train_gop_logged

RAY_MISSING = "--workers needs Ray, an optional dependency: pip install 'gifstream-engine[ray]' (or pip install ray)"
NICENESS_ENV = "RAY_worker_niceness"
FORWARDED_ENV_PREFIX = "GIFSTREAM_"  # the driver's GIFSTREAM_* variables apply to its tasks too


@dataclasses.dataclass(frozen=True)
class ParallelOptions:
    workers: str  # "ray" (a local cluster for this run), "auto" (the running cluster) or "ray://HOST:PORT"
    threads: int = 1  # torch threads and Ray CPUs per GOP task
    retries: int = 3  # Ray retries of a GOP whose worker died

    def __post_init__(self):
        if not (self.workers in ("ray", "auto") or self.workers.startswith("ray://")):
            raise ConfigError(f"--workers {self.workers!r}: expected ray (a local cluster), auto (the running cluster) "
                              "or ray://HOST:PORT")
        if self.threads < 1 or self.retries < 0:
            raise ConfigError(f"--threads must be >= 1 and --retries >= 0, got {self.threads} and {self.retries}")


@dataclasses.dataclass
class GopTiming:
    """One task as the driver saw it (time.time() values) and as it reported itself."""
    gop: int
    submitted: float
    received: float
    outcome: GopOutcome

    @property
    def waited(self) -> float:
        """Submission to the task's start: queueing for a free CPU/GPU plus Ray's scheduling and worker start."""
        return self.outcome.entered - self.submitted

    @property
    def returned(self) -> float:
        """The task's end to the driver having its result."""
        return self.received - self.outcome.ended

    @property
    def setup(self) -> float:
        """Seconds in the task before training: imports, the run's config, the capture's frames of this GOP."""
        return self.outcome.started - self.outcome.entered


@dataclasses.dataclass
class ParallelReport:
    status: str  # "finished" or "cancelled"
    timings: list[GopTiming]
    connect_seconds: float  # starting or joining the cluster
    gpus_per_task: int


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(RAY_MISSING) from exc
    return ray


@contextlib.contextmanager
def ray_cluster(workers: str):
    """Ray, connected for the block: `ray` starts a local cluster (stopped afterwards), `auto` joins the cluster
    running on this machine, `ray://HOST:PORT` a remote one through Ray Client. A Ray already initialised in this
    process (a notebook, a test's cluster) is used as it is and left running."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    quiet = {"log_to_driver": False, "logging_level": "WARNING"}  # task output goes to each GOP's events.jsonl
    # Ray starts workers at niceness 15; the run's own cluster trains at the priority of the command that started it,
    # as the serial run does (RAY_worker_niceness, when set, is kept)
    nice = None if NICENESS_ENV in os.environ else os.environ.setdefault(NICENESS_ENV, "0")
    try:
        if workers == "ray":
            ray.init(address="local", include_dashboard=False, **quiet)
        else:
            ray.init(address=workers, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"--workers {workers}: cannot start or reach a Ray cluster: {str(exc).strip().splitlines()[0]}") from exc
    finally:
        if nice is not None:
            del os.environ[NICENESS_ENV]
    try:
        yield ray
    finally:
        ray.shutdown()


class ProgressBoard:
    """Follows every GOP's events.jsonl (lines appended by its tasks) and reports the run as a whole."""

    def __init__(self, run: str, num_gops: int, steps: int, events: EventWriter, log, log_every: int):
        self.run, self.num_gops, self.steps = run, num_gops, steps
        self.events, self.log, self.log_every = events, log, log_every
        self.done = [0] * num_gops
        self.offsets = {g: self._size(g) for g in range(num_gops)}  # earlier runs' lines are not news
        self.start = time.time()

    def _path(self, g: int) -> str:
        return os.path.join(gop_folder(self.run, g), EVENTS_FILE)

    def _size(self, g: int) -> int:
        try:
            return os.path.getsize(self._path(g))
        except OSError:
            return 0

    def mark_finished(self, g: int) -> None:
        self.done[g] = self.steps

    def poll(self) -> None:
        for g in range(self.num_gops):
            for event in self._new_events(g):
                if event["type"] == "log":
                    self.log(f"[GOP {g}] {event.get('message', '')}")
                elif event["type"] == "progress" and isinstance(event.get("gop_step"), int):
                    self.done[g] = event["gop_step"]
                    self._report(g, event)

    def _new_events(self, g: int) -> list[dict]:
        try:
            with open(self._path(g), "rb") as f:
                f.seek(self.offsets[g])
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next poll
        self.offsets[g] += end
        events = (parse_event(line) for line in data[:end].decode(errors="replace").splitlines())
        return [e for e in events if e is not None]

    def _report(self, g: int, event: dict) -> None:
        total = self.num_gops * self.steps
        step = sum(self.done)
        fraction = step / total
        elapsed = time.time() - self.start
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else 0.0
        self.events.progress("train", step, total, gop=g, gop_step=event["gop_step"], gop_steps=self.steps,
                             phase=event.get("phase", ""), loss=event.get("loss"), psnr=event.get("psnr"),
                             anchors=event.get("anchors"), eta=eta, fraction=fraction)
        if not self.events.enabled and (event["gop_step"] % self.log_every == 0 or event["gop_step"] == self.steps):
            self.log(f"GOP {g} step {event['gop_step']}/{self.steps} {event.get('phase', ''):<9} psnr "
                     f"{event.get('psnr', 0.0):.2f} anchors {event.get('anchors')} | run {fraction * 100:.0f}%, eta {eta:.0f}s")


def train_parallel(capture: Capture, cfg: RunConfig, out: str, options: ParallelOptions, events: EventWriter | None = None,
                   log=print, resume: bool = False, overwrite: bool = False) -> ParallelReport:
    """Train every GOP of `capture` into `out` on the Ray cluster `options.workers` names."""
    events = events or EventWriter(enabled=False)
    training = Training(capture, cfg, out, events, log, handle_signals=False)
    capture_path = os.path.abspath(capture.root)
    run = os.path.abspath(out)
    with RunFolder(out).claim_for_training(resume, overwrite):  # the run's lock, held until every GOP is done
        training.write_config(resume)
        start = time.time()
        with ray_cluster(options.workers) as ray:
            connect = time.time() - start
            memory = GopMemory.of(training.gops[0]).total  # the largest GOP is the first
            return _Scheduler(ray, capture_path, run, len(training.gops), cfg, options, events, log, memory).run(connect)


class _Scheduler:
    def __init__(self, ray, capture: str, run: str, num_gops: int, cfg: RunConfig, options: ParallelOptions,
                 events: EventWriter, log, memory: int):
        """memory: the bytes a GOP task declares (`GopMemory`), so that a node runs only as many as fit."""
        self.ray, self.capture, self.run_dir, self.num_gops, self.options, self.log = ray, capture, run, num_gops, options, log
        self.board = ProgressBoard(run, num_gops, cfg.train.steps, events, log, cfg.train.log_every)
        self.gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}
        self.task = ray.remote(train_gop_logged).options(
            num_cpus=options.threads, num_gpus=self.gpus, memory=memory, max_retries=options.retries,
            retry_exceptions=False,
            runtime_env={"env_vars": env} if env else None, name="gifstream-gop")
        self.memory = memory
        self.timings: list[GopTiming] = []
        self.stop = False

    def run(self, connect_seconds: float) -> ParallelReport:
        self.log(f"{self.num_gops} GOPs on Ray ({self.options.workers}): {self.gpus} GPU, {self.options.threads} CPU and "
                 f"{self.memory / 2**30:.1f} GB of memory per GOP; cluster {self._resources()}")
        main = threading.current_thread() is threading.main_thread()  # only the main thread may set handlers
        previous = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
        try:
            status = self._train_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return ParallelReport(status, self.timings, connect_seconds, self.gpus)

    def _resources(self) -> str:
        res = self.ray.cluster_resources()
        return f"{res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs, {res.get('memory', 0) / 2**30:.1f} GB of memory"

    def _request_stop(self, *_):
        self.stop = True

    def _finished(self, g: int) -> bool:
        return os.path.isfile(RunFolder(self.run_dir).final(g))

    def _train_all(self) -> str:
        if self.num_gops > 1 and not self._finished(0):
            status = self._wait({0: GopRequest(self.capture, self.run_dir, 0, self.options.threads, until_warm=True)})
            if status != "finished":
                return status
        todo = {g: GopRequest(self.capture, self.run_dir, g, self.options.threads)
                for g in range(self.num_gops) if not self._finished(g)}
        for g in set(range(self.num_gops)) - set(todo):
            self.board.mark_finished(g)
            self.log(f"GOP {g}: already trained")
        return self._wait(todo) if todo else "finished"

    def _wait(self, requests: dict[int, GopRequest]) -> str:
        """Run the tasks; let them all end, then raise the first failed GOP's error."""
        pending, submitted, failures = {}, {}, {}
        for g, request in requests.items():  # in GOP order: Ray starts them in that order as resources free up
            submitted[g] = time.time()
            pending[self.task.remote(request)] = g
        while pending:
            if self.stop:
                return self._cancel(pending)
            ready, _ = self.ray.wait(list(pending), num_returns=1, timeout=0.5)
            self.board.poll()
            for ref in ready:
                g = pending.pop(ref)
                try:
                    outcome = self.ray.get(ref)
                except self.ray.exceptions.RayError as exc:
                    failures[g] = exc
                    self.log(f"GOP {g} failed: {_first_line(exc)}")
                    continue
                self.timings.append(GopTiming(g, submitted[g], time.time(), outcome))
                if outcome.status == "finished":
                    self.board.mark_finished(g)
                    self.log(f"GOP {g} finished in {outcome.seconds:.1f} s on {outcome.host}")
                elif outcome.status == "cancelled":
                    self.stop = True
        self.board.poll()
        if failures:
            g = min(failures)
            raise self._error(g, failures[g], sorted(failures))
        return "cancelled" if self.stop else "finished"

    def _cancel(self, pending: dict) -> str:
        for ref in pending:
            self.ray.cancel(ref)
        with contextlib.suppress(Exception):
            self.ray.wait(list(pending), num_returns=len(pending), timeout=30)
        self.log(f"stopped; GOPs {sorted(pending.values())} continue from their last checkpoint with --resume")
        return "cancelled"

    def _error(self, g: int, exc, failed: list[int]) -> Exception:
        others = f" (GOPs {', '.join(map(str, failed))} failed; the others finished)" if len(failed) > 1 else ""
        log = os.path.join(gop_folder(self.run_dir, g), EVENTS_FILE)
        cause = getattr(exc, "cause", None) if isinstance(exc, self.ray.exceptions.RayTaskError) else None
        if isinstance(cause, GIFStreamError):  # the GOP's own error: bad data, a damaged file, a locked folder
            error = type(cause)(f"GOP {g}: {cause}{others}")
        elif cause is not None:  # a bug in the worker: an internal error, with the worker's traceback chained
            error = RuntimeError(f"GOP {g} failed in its Ray worker: {type(cause).__name__}: {cause}{others}")
        else:  # the worker process or its node died, every time Ray tried
            error = RunError(f"GOP {g} failed: its worker died on each of {self.options.retries + 1} attempts "
                             f"({type(exc).__name__}: {_first_line(exc)}){others}; the GOP's log is {log}; "
                             "gifstream train ... --resume continues every unfinished GOP from its checkpoint")
        error.__cause__ = exc
        return error


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def start_latencies(report: ParallelReport) -> dict[int, float]:
    """Per task (index in `report.timings`): seconds from the moment it could start (submitted, and a task before
    it ended, freeing a CPU or GPU) to its start; what Ray's scheduling and worker start-up cost, queueing aside."""
    timings = report.timings
    latencies = {}
    for i, t in enumerate(timings):
        freed = [o.outcome.ended for o in timings if o is not t and o.outcome.ended <= t.outcome.entered]
        latencies[i] = t.outcome.entered - max([t.submitted] + freed)
    return latencies


def report_table(report: ParallelReport) -> str:
    """Per-task timings of a parallel run (bench and logs)."""
    latency = start_latencies(report)
    rows = [f"{'GOP':>4} {'train s':>8} {'set-up s':>9} {'waited s':>9} {'start latency s':>16} {'return s':>9} "
            f"{'CUDA_VISIBLE_DEVICES':>21}"]
    for i, t in sorted(enumerate(report.timings), key=lambda it: it[1].submitted):
        rows.append(f"{t.gop:>4} {t.outcome.ended - t.outcome.started:8.2f} {t.setup:9.2f} {t.waited:9.2f} {latency[i]:16.2f} "
                    f"{t.returned:9.2f} {str(t.outcome.cuda_visible_devices):>21}")
    return "\n".join(rows)


def outcome_json(report: ParallelReport) -> str:
    return json.dumps([dataclasses.asdict(t.outcome) | {"submitted": t.submitted, "received": t.received}
                       for t in report.timings])
