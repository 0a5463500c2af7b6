import io
import json
import zipfile

import pytest

from gifstream_engine.events import EventWriter, parse_event


def test_events_are_json_lines_that_parse_back():
    buf = io.StringIO()
    events = EventWriter(buf)
    events.progress("train", 5, 100, psnr=21.5)
    events.error("disk full")
    lines = buf.getvalue().splitlines()
    assert [parse_event(line)["type"] for line in lines] == ["progress", "error"]
    assert json.loads(lines[0])["psnr"] == 21.5
    assert parse_event("plain log text") is None and parse_event('{"type": "nope"}') is None
    with pytest.raises(ValueError):
        events.emit("bogus")


def test_build_addon_zip_is_an_extension(tmp_path):
    import build_addon

    path = build_addon.build(str(tmp_path))
    assert path.endswith(f"gifstream_blender-{build_addon.addon_version()}.zip")
    names = zipfile.ZipFile(path).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert {"core/__init__.py", "core/engine_job.py", "scene/__init__.py", "ui/__init__.py"} <= set(names)
    assert not any("__pycache__" in n for n in names)


def test_training_job_shows_the_gpu_kernel_compile_as_its_own_phase():
    """The engine's 'compile' progress events (gsplat's kernels built before the first CUDA step) read as compiling,
    not as training steps; training events afterwards read as steps again."""
    from conftest import addon_module

    TrainingJob = addon_module("core.training").TrainingJob
    job = object.__new__(TrainingJob)  # no engine process: only the event handling
    job.phase, job.psnr, job.eta, job.anchors, job.stage, job.done, job.total = "", 0.0, 0.0, 0, "train", 0, 0
    job._on_progress({"stage": "compile", "step": 3, "total": 40})
    assert job._progress_text().startswith("compiling GPU kernels 3/40")
    job._on_progress({"stage": "train", "step": 5, "total": 100, "phase": "canonical", "psnr": 20.0})
    assert job._progress_text().startswith("step 5/100 canonical")
