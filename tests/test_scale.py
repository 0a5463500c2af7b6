"""Scale-out: GOPs trained in parallel on a local Ray cluster, one GOP per process (`--gop N`), a run assembled from
its GOP folders, and the OpenJD farm template run by `openjd`. The serial in-process run is the reference: on the
CPU, with the same torch thread count, every other way must write the same bitstream, byte for byte."""

import io
import json
import os
import subprocess
import sys

import pytest
import torch

from gifstream_engine.capture import load_capture
from gifstream_engine.errors import ConfigError, RunError
from gifstream_engine.events import EventWriter, parse_event
from gifstream_engine.train.config import load_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 6 frames in GOPs of 2: three GOPs; steps cross every phase, a densification and several checkpoints
OVERRIDES = ["train.steps=20", "train.gop_length=2", "train.max_anchors=500", "train.log_every=5",
             "train.checkpoint_every=5", "train.densify_every=10"]


# on the workers' path: its sitecustomize.py makes a worker die at GIFSTREAM_TEST_CRASH="GOP:STEP[:always]"
FAULT_INJECTION = os.path.join(REPO, "tests", "fault_injection")


def _env() -> dict:
    path = [REPO, FAULT_INJECTION, os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path).rstrip(os.pathsep),
                OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0", RAY_worker_niceness="0")


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray cluster for the session (2 CPUs, a small object store, no dashboard, no usage stats)."""
    import ray

    os.environ.update({k: v for k, v in _env().items() if k in ("PYTHONPATH", "RAY_USAGE_STATS_ENABLED",
                                                                      "RAY_worker_niceness")})
    ray.init(address="local", num_cpus=2, object_store_memory=100 * 2**20, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING")
    yield ray
    ray.shutdown()


def _encode(run: str, path: str) -> bytes:
    from gifstream_engine.codec.bitstream import encode_run
    from gifstream_engine.train.run_folder import load_run

    trained = load_run(run)
    encode_run(trained, path, trained.rig)
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def serial_gifs(synth_capture, tmp_path_factory) -> bytes:
    """The reference: every GOP in this process, one torch thread, then encoded."""
    from gifstream_engine.train.driver import Training

    out = str(tmp_path_factory.mktemp("serial") / "run")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = load_config(["preview"], OVERRIDES)
        assert Training(load_capture(synth_capture), cfg, out, log=lambda *_: None).run() == "finished"
    finally:
        torch.set_num_threads(threads)
    return _encode(out, out + ".gifs")


def _parallel(synth_capture, out, retries=3, events=None):
    from gifstream_engine.scale.ray_backend import ParallelOptions, train_parallel

    cfg = load_config(["preview"], OVERRIDES)
    return train_parallel(load_capture(synth_capture), cfg, out, ParallelOptions("ray", threads=1, retries=retries),
                          events=events, log=lambda *_: None)


def _gop_events(run: str, g: int) -> list[dict]:
    with open(os.path.join(run, f"gop_{g:03d}", "events.jsonl")) as f:
        return [e for e in map(parse_event, f) if e is not None]


def test_parallel_run_matches_serial_and_reports_each_gop(ray_session, synth_capture, serial_gifs, tmp_path):
    run = str(tmp_path / "run")
    stream = io.StringIO()
    report = _parallel(synth_capture, run, events=EventWriter(stream))
    assert report.status == "finished" and report.gpus_per_task == 0
    # GOP 0 up to its warm start, then GOP 0's rest and GOPs 1 and 2, each a task
    assert sorted(t.gop for t in report.timings) == [0, 0, 1, 2]
    assert _encode(run, str(tmp_path / "parallel.gifs")) == serial_gifs
    progress = [e for e in map(parse_event, stream.getvalue().splitlines()) if e and e["type"] == "progress"]
    assert {e["gop"] for e in progress} == {0, 1, 2}
    assert all(e["total"] == 60 and e["gop_steps"] == 20 for e in progress)
    assert progress[-1]["step"] == 60 and progress[-1]["fraction"] == 1.0
    assert [e["step"] for e in progress] == sorted(e["step"] for e in progress)  # the whole run only moves forward


def test_a_worker_killed_mid_gop_is_retried_and_resumes(ray_session, synth_capture, serial_gifs, tmp_path, monkeypatch):
    monkeypatch.setenv("GIFSTREAM_TEST_CRASH", "1:12")  # GOP 1's first attempt dies (os._exit) at step 12
    run = str(tmp_path / "run")
    report = _parallel(synth_capture, run)
    assert report.status == "finished"
    logs = [e["message"] for e in _gop_events(run, 1) if e["type"] == "log"]
    starts = [m for m in logs if m.startswith("GOP 1: pid")]
    assert len(starts) == 2 and starts[0] != starts[1]  # a second process took over
    assert "GOP 1: resuming at step 10" in logs  # from the checkpoint the first attempt wrote
    assert _encode(run, str(tmp_path / "retried.gifs")) == serial_gifs


def test_a_gop_that_keeps_failing_fails_the_run_with_its_error(ray_session, synth_capture, tmp_path, monkeypatch):
    monkeypatch.setenv("GIFSTREAM_TEST_CRASH", "2:8:always")
    run = str(tmp_path / "run")
    with pytest.raises(RunError, match=r"GOP 2 failed: its worker died on each of 2 attempts .*--resume"):
        _parallel(synth_capture, run, retries=1)
    # the other GOPs finished; the failed one kept its checkpoint for --resume
    assert all(os.path.isfile(os.path.join(run, f"gop_{g:03d}", "model.pt")) for g in (0, 1))
    assert os.path.isfile(os.path.join(run, "gop_002", "checkpoint.pt"))
    assert not os.path.isfile(os.path.join(run, "gop_002", "model.pt"))
    monkeypatch.delenv("GIFSTREAM_TEST_CRASH")
    from gifstream_engine.scale.ray_backend import ParallelOptions, train_parallel

    cfg = load_config(["preview"], OVERRIDES)
    report = train_parallel(load_capture(synth_capture), cfg, run, ParallelOptions("ray", threads=1), log=lambda *_: None,
                            resume=True)
    assert report.status == "finished" and [t.gop for t in report.timings] == [2]  # only the failed GOP ran again


GPU_SCRIPT = """
import json, sys, ray
from gifstream_engine.capture import load_capture
from gifstream_engine.scale.ray_backend import ParallelOptions, outcome_json, train_parallel
from gifstream_engine.train.config import load_config

ray.init(address="local", num_cpus=4, num_gpus=2, object_store_memory=100 * 2**20, include_dashboard=False,
         log_to_driver=False, logging_level="WARNING")
cfg = load_config(["preview"], json.loads(sys.argv[3]))
report = train_parallel(load_capture(sys.argv[1]), cfg, sys.argv[2], ParallelOptions("ray", threads=1), log=lambda *_: None)
print("GPUS", report.gpus_per_task)
print("OUTCOMES", outcome_json(report))
"""


def test_placeholder_gpus_pin_one_gop_per_gpu(synth_capture, tmp_path):
    """A cluster of 4 CPUs and 2 (placeholder) GPUs: GOP tasks ask for one GPU each, so at most two train at once,
    each with its own CUDA_VISIBLE_DEVICES. Own cluster in a subprocess (one Ray per process)."""
    overrides = OVERRIDES + ["train.gop_length=1", "train.steps=12"]  # six GOPs: more tasks than GPUs
    out = subprocess.run([sys.executable, "-c", GPU_SCRIPT, synth_capture, str(tmp_path / "run"), json.dumps(overrides)],
                         env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if line.startswith(("GPUS", "OUTCOMES")))
    assert lines["GPUS"] == "1"
    outcomes = json.loads(lines["OUTCOMES"])
    assert len(outcomes) == 7  # GOP 0 to its warm start, then GOP 0's rest and GOPs 1..5
    assert all(o["cuda_visible_devices"] in ("0", "1") for o in outcomes)
    for i, o in enumerate(outcomes):
        for p in outcomes[i + 1:]:
            if p["entered"] < o["ended"] and o["entered"] < p["ended"]:
                assert p["cuda_visible_devices"] != o["cuda_visible_devices"]  # never one GPU for two GOPs at once
    at_once = max(sum(p["entered"] <= o["entered"] < p["ended"] for p in outcomes) for o in outcomes)
    assert at_once == 2  # GOPs did train side by side, never more than the two GPUs


def _gifstream(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "gifstream_engine.cli", *args], env=_env(), capture_output=True,
                          text=True, timeout=600, **kwargs)


def _openjd() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "openjd")
    return beside if os.path.isfile(beside) else "openjd"


def test_openjd_farm_job_trains_the_run_and_a_failing_gop_fails_it(synth_capture, serial_gifs, tmp_path):
    run, job = str(tmp_path / "shared" / "run"), str(tmp_path / "job.yaml")
    sets = [a for o in OVERRIDES for a in ("--set", o)]
    made = _gifstream("farm-job", synth_capture, "--out", run, *sets, "-o", job,
                      "--command", os.path.join(os.path.dirname(sys.executable), "gifstream"))
    assert made.returncode == 0, made.stderr
    check = subprocess.run([_openjd(), "check", job], capture_output=True, text=True, env=_env())
    assert check.returncode == 0, check.stdout + check.stderr
    import yaml

    template = yaml.safe_load(open(job))
    assert [s["name"] for s in template["steps"]] == ["TrainGop0", "TrainGops", "Assemble"]
    assert template["steps"][1]["parameterSpace"]["taskParameterDefinitions"][0]["range"] == "1-2"
    assert template["steps"][2]["dependencies"] == [{"dependsOn": "TrainGops"}]
    command = [_openjd(), "run", "--step", "Assemble", "--run-dependencies", "-p", f"CaptureDir={synth_capture}",
               "-p", f"RunDir={run}", job]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    with open(os.path.join(run, "run.gifs"), "rb") as f:
        assert f.read() == serial_gifs  # one process per GOP, one torch thread: the serial run's bytes
    assert os.path.isfile(os.path.join(run, "eval.json"))
    # GOP 2's checkpoint is damaged: its task fails, so the job fails and nothing is assembled
    os.remove(os.path.join(run, "run.gifs"))
    os.remove(os.path.join(run, "gop_002", "model.pt"))
    with open(os.path.join(run, "gop_002", "checkpoint.pt"), "wb") as f:
        f.write(b"not a checkpoint")
    failed = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=900)
    assert failed.returncode != 0
    assert "gop_002/checkpoint.pt is damaged" in failed.stdout + failed.stderr
    assert not os.path.exists(os.path.join(run, "run.gifs"))


def test_one_gop_commands_check_their_order_and_options(synth_capture, tmp_path):
    run = str(tmp_path / "run")
    sets = [a for o in OVERRIDES for a in ("--set", o)]
    early = _gifstream("train", synth_capture, "--out", run, "--gop", "1")
    assert early.returncode == 2 and "train GOP 0 first" in early.stderr
    bad = _gifstream("train", synth_capture, "--out", run, "--workers", "slurm")
    assert bad.returncode == 2 and "expected ray (a local cluster), auto" in bad.stderr
    both = _gifstream("train", synth_capture, "--out", run, "--workers", "ray", "--gop", "0")
    assert both.returncode == 2 and "cannot be combined with --workers" in both.stderr
    first = _gifstream("train", synth_capture, "--out", run, "--gop", "0", "--threads", "1", "--events", *sets)
    assert first.returncode == 0, first.stderr
    results = [e for e in map(parse_event, first.stdout.splitlines()) if e and e["type"] == "result"]
    assert results[-1]["data"]["status"] == "finished" and results[-1]["data"]["gop"] == 0
    missing = _gifstream("assemble", run)
    assert missing.returncode == 2 and "GOPs 1, 2 have not finished" in missing.stderr
    other = _gifstream("train", synth_capture, "--out", run, "--gop", "2", "--set", "train.steps=30")
    assert other.returncode == 2 and "configuration other than the run's" in other.stderr
    nonexistent = _gifstream("train", synth_capture, "--out", run, "--gop", "3")
    assert nonexistent.returncode == 2 and "GOP 3 does not exist" in nonexistent.stderr


def test_ray_missing_is_a_clear_error(monkeypatch):
    from gifstream_engine.scale import ray_backend

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'gifstream-engine\[ray\]'"):
        with ray_backend.ray_cluster("ray"):
            pass
