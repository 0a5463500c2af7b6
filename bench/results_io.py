"""Write a benchmark's table to `bench/results/<bench>.json`, with where and how it was measured.

Every `bench/*.py` calls `write_results(name, rows)` with the rows it prints. The file holds:

    {"bench": name,
     "commit": {"sha": git rev-parse HEAD, "dirty": tracked files differ from HEAD (None/None outside git)},
     "machine": {"platform", "python", "cpu" (model name from /proc/cpuinfo), "cores" (os.cpu_count()),
                 "usable_cores" (this process's CPU affinity), "torch" (version), "cuda_device" (name or None)},
     "date": UTC ISO 8601 time of writing,
     "command": the argv the bench was started with,
     "rows": [...]}

It is written atomically (a temporary file in the same folder, fsync, rename), so a bench that is stopped leaves
the previous file or the whole new one. `GIFSTREAM_BENCH_RESULTS=DIR` writes to DIR instead (smoke runs, trials).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, "bench", "results")


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def commit_info() -> dict:
    """HEAD and whether tracked files differ from it (untracked files, such as results, do not count)."""
    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha.strip() if sha else None, "dirty": bool(status.strip()) if status is not None else None}


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu_model(),
            "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "torch": None, "cuda_device": None}
    try:
        import torch
    except ImportError:
        return info
    info["torch"] = torch.__version__
    try:
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
    except Exception:  # a broken CUDA setup must not lose the bench's table
        pass
    return info


def _plain(value):
    """JSON-safe copy: numpy/torch scalars and arrays to Python numbers and lists, NaN/inf to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays/scalars, torch tensors
        return _plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def write_results(bench: str, rows: list, command: list[str] | None = None) -> str:
    """Write `rows` (a list of dicts) as `<results dir>/<bench>.json`; returns the path written."""
    folder = os.environ.get("GIFSTREAM_BENCH_RESULTS") or RESULTS_DIR
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{bench}.json")
    record = {
        "bench": bench,
        "commit": commit_info(),
        "machine": machine_info(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": list(command if command is not None else sys.argv),
        "rows": _plain(list(rows)),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{bench}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    print(f"results: {path}")
    return path
