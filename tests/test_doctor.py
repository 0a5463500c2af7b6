"""`gifstream doctor`: what this machine trains and renders with, and one line of what to do per problem."""

import json

import torch

from gifstream_engine.cli import main
from gifstream_engine.render import environment


def test_doctor_on_a_cpu_machine_says_cpu_and_torch(capsys, monkeypatch):
    monkeypatch.setattr(environment, "cuda_devices", lambda: [])
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in report["checks"]}
    assert not checks["cuda devices"]["ok"] and "none" in checks["cuda devices"]["detail"]
    assert report["rasterizers"] == {"cpu": "torch"}
    if torch.version.cuda is None:  # a CPU build on a CPU machine: nothing to fix
        assert report["problems"] == []
    assert main(["doctor"]) == 0 and "rasteriser on cpu: torch" in capsys.readouterr().out


def test_doctor_names_missing_kernels_and_build_tools(capsys, monkeypatch):
    """A GPU machine (stand-in) whose gsplat kernels were never built and that has no nvcc or ninja."""
    monkeypatch.setattr(environment, "cuda_devices", lambda: ["NVIDIA H100 80GB HBM3"])
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(environment, "gsplat_kernels", lambda: ("missing", "not built yet (would be /x/gsplat_cuda.so)"))
    monkeypatch.setattr(environment, "find_nvcc", lambda: None)
    monkeypatch.setattr(environment.shutil, "which", lambda name: None if name == "ninja" else f"/usr/bin/{name}")
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rasterizers"] == {"cpu": "torch", "cuda": "torch"}
    problems = "\n".join(report["problems"])
    assert "compile on the first CUDA training" in problems
    assert "CUDA 12 toolkit" in problems and "CUDA_HOME" in problems
    assert "pip install ninja" in problems
    assert "gifstream setup-gpu" in problems  # builds them now, installing NVIDIA's compiler packages
    assert "install g++" not in problems  # g++ was found


def test_doctor_uses_built_kernels_that_load(capsys, monkeypatch):
    monkeypatch.setattr(environment, "cuda_devices", lambda: ["NVIDIA H100"])
    monkeypatch.setattr(environment, "gsplat_kernels", lambda: ("built", "/x/gsplat_cuda.so"))
    monkeypatch.setattr(environment, "gsplat_kernels_load", lambda: (True, "loaded"))
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rasterizers"]["cuda"] == "gsplat" and report["problems"] == []


def test_the_addons_check_engine_reads_the_report():
    """The add-on's Check Engine runs `gifstream doctor --json` in the engine's Python (core/, no bpy)."""
    import sys

    from conftest import addon_module

    engine_client = addon_module("core.engine_client")
    report = engine_client.doctor(sys.executable)
    assert report["rasterizers"]["cpu"] == "torch"
    assert engine_client.doctor_summary(report).startswith("rasteriser cpu: torch")


def test_cuda_training_refuses_kernels_that_do_not_load_or_a_missing_gsplat(monkeypatch):
    """(Building missing kernels before training: tests/test_setup_gpu.py.)"""
    import pytest

    from gifstream_engine.errors import RenderError
    from gifstream_engine.render import gpu_setup

    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(gpu_setup, "use_toolkit", lambda release: None)
    monkeypatch.setattr(environment, "gsplat_kernels", lambda: ("built", "/x/gsplat_cuda.so"))
    monkeypatch.setattr(environment, "gsplat_kernels_load", lambda: (True, "loaded"))
    environment.prepare_gsplat(print)
    monkeypatch.setattr(environment, "gsplat_kernels_load", lambda: (False, "gsplat disabled them (no CUDA toolkit)"))
    with pytest.raises(RenderError, match=r"could not be loaded \(gsplat disabled them.*gifstream setup-gpu"):
        environment.prepare_gsplat(print)
    monkeypatch.setattr(environment, "gsplat_kernels", lambda: ("unavailable", "gsplat is not installed"))
    with pytest.raises(RenderError, match="CUDA training needs gsplat: gsplat is not installed"):
        environment.prepare_gsplat(print)
