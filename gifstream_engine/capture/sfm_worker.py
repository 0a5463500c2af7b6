"""One frame's SfM in a Python process of its own: `python -m gifstream_engine.capture.sfm_worker FOLDER`.

`sfm_init` prepares a frame (`SfmJob`: images written, the rig's intrinsics and poses) into FOLDER with the job as
`job.json`; the worker runs COLMAP on it (`sfm_init._triangulate`, single-threaded) and writes `result.npz`
atomically. A fresh process rather than a fork or multiprocessing's spawn: it inherits neither the trainer's
threads nor the caller's main module (a script without a `__main__` guard would run again in a spawned child).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

JOB, RESULT = "job.json", "result.npz"


def run_in_process(job) -> dict:
    """Triangulate `job` (an `sfm_init.SfmJob`) in a worker process; its cache entry {points, colors, stats}.
    Raises RuntimeError with the worker's last output lines when it fails (as pycolmap's own errors do)."""
    with open(os.path.join(job.folder, JOB), "w") as f:
        f.write(job.to_json())
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # where gifstream_engine is
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-m", "gifstream_engine.capture.sfm_worker", job.folder], env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    result = os.path.join(job.folder, RESULT)
    if proc.returncode != 0 or not os.path.isfile(result):
        tail = "\n".join(proc.stdout.strip().splitlines()[-8:])
        raise RuntimeError(f"SfM of {job.folder} failed in its worker process (exit {proc.returncode}): {tail}")
    with np.load(result, allow_pickle=False) as entry:
        return {name: entry[name] for name in entry.files}


def main(folder: str) -> None:
    from ..fileio import atomic_open
    from .sfm_init import SfmJob, _triangulate

    with open(os.path.join(folder, JOB)) as f:
        job = SfmJob.from_json(f.read())
    entry = _triangulate(job)
    with atomic_open(os.path.join(folder, RESULT)) as f:
        np.savez(f, **entry)


if __name__ == "__main__":
    main(sys.argv[1])
