"""`gifstream setup-gpu` and the kernels' build before CUDA training, on the CPU with stand-ins: a CUDA torch and a
GPU faked, gsplat's kernels missing, a pip runner that records its command and lays out NVIDIA's packages as their
wheels do, a build runner that prints ninja's steps."""

import os
import stat
import sys

import pytest
import torch

from gifstream_engine.cli import main
from gifstream_engine.errors import RenderError
from gifstream_engine.render import environment, gpu_setup


def test_setup_gpu_on_a_cpu_machine_exits_3_with_the_reason(capsys, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    assert main(["setup-gpu"]) == gpu_setup.EXIT_NO_CUDA == 3
    assert "is a CPU build (no CUDA)" in capsys.readouterr().err
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["setup-gpu"]) == 3
    assert "(CUDA 12.8) sees no CUDA device" in capsys.readouterr().err


def _wheel_layout(target: str) -> None:
    """What pip --target leaves for nvidia-cuda-{nvcc,runtime,cccl}-cu12: one folder per package under nvidia/."""
    files = {"cuda_nvcc/bin/nvcc": "#!/bin/sh\n", "cuda_nvcc/include/crt/host_config.h": "",
             "cuda_nvcc/nvvm/bin/cicc": "", "cuda_runtime/include/cuda_runtime.h": "",
             "cuda_runtime/include/crt/host_defines.h": "", "cuda_runtime/lib/libcudart.so.12": "",
             "cuda_cccl/include/cub/cub.cuh": ""}
    for name, text in files.items():
        path = os.path.join(target, "nvidia", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    nvcc = os.path.join(target, "nvidia", "cuda_nvcc", "bin", "nvcc")
    os.chmod(nvcc, os.stat(nvcc).st_mode | stat.S_IXUSR)


@pytest.fixture
def gpu_without_toolkit(monkeypatch, tmp_path):
    """A CUDA 12.8 torch that sees a GPU, gsplat installed with its kernels missing, no nvcc anywhere."""
    monkeypatch.setenv("GIFSTREAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(environment, "find_nvcc", lambda: None)
    kernels = {"state": ("missing", "not built yet (would be /x/gsplat_cuda.so)")}
    monkeypatch.setattr(environment, "gsplat_kernels", lambda: kernels["state"])
    monkeypatch.setattr(environment, "gsplat_kernels_load", lambda: (kernels["state"][0] == "built", "stand-in"))
    monkeypatch.setattr(environment, "cuda_devices", lambda: ["NVIDIA H100 80GB HBM3"])
    import torch.utils.cpp_extension as extension

    monkeypatch.setattr(extension, "CUDA_HOME", extension.CUDA_HOME)  # use_toolkit updates it
    for name in ("CUDA_HOME", "PATH"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
    return kernels


def test_setup_gpu_installs_the_compiler_packages_apart_and_builds_with_them(gpu_without_toolkit, tmp_path, capsys):
    kernels = gpu_without_toolkit
    commands, builds = [], []

    def pip(command):
        commands.append(command)
        _wheel_layout(command[command.index("--target") + 1])
        return 0

    def build(command, env, on_line):
        builds.append((command, env))
        for line in ("[1/3] nvcc -c a.cu", "compiling...", "[3/3] c++ -shared -o gsplat_cuda.so"):
            on_line(line)
        kernels["state"] = ("built", "/x/gsplat_cuda.so")
        return 0

    steps = []
    result = gpu_setup.setup_gpu(print, lambda step, total: steps.append((step, total)), pip=pip, build=build)
    folder = str(tmp_path / "cache" / "gpu" / "cuda-12.8")
    # pip: NVIDIA's CUDA 12.8 compiler packages into a folder of their own, nothing else (torch untouched)
    assert commands == [[sys.executable, "-m", "pip", "install", "--no-deps", "--upgrade", "--target",
                         os.path.join(folder, "packages"), "nvidia-cuda-nvcc-cu12==12.8.*",
                         "nvidia-cuda-runtime-cu12==12.8.*", "nvidia-cuda-cccl-cu12==12.8.*"]]
    # the CUDA_HOME assembled from them: nvcc, merged headers (crt/ from two packages), lib64 and libcudart.so
    home = os.path.join(folder, "home")
    for name in ("bin/nvcc", "nvvm/bin/cicc", "include/cuda_runtime.h", "include/crt/host_config.h",
                 "include/crt/host_defines.h", "include/cub/cub.cuh", "lib64/libcudart.so",
                 "targets/x86_64-linux/include/cuda_runtime.h", "targets/x86_64-linux/lib/libcudart.so"):
        assert os.path.exists(os.path.join(home, name)), name
    nvcc = os.path.join(home, "bin", "nvcc")  # a copy: nvcc's $(TOP) is the assembled home
    assert not os.path.islink(nvcc) and os.access(nvcc, os.X_OK)
    assert os.path.realpath(os.path.join(home, "lib64", "libcudart.so")).endswith("libcudart.so.12")
    # the build: a child of this interpreter, CUDA_HOME the assembled home, its bin and this interpreter's (ninja) on PATH
    (command, env), = builds
    assert command[:2] == [sys.executable, "-c"] and "gsplat.cuda._backend" in command[2]
    assert env["CUDA_HOME"] == home and env["VERBOSE"] == "1"
    assert env["PATH"].split(os.pathsep)[:2] == [os.path.join(home, "bin"), os.path.dirname(os.path.abspath(sys.executable))]
    assert steps == [(1, 3), (3, 3)]
    with open(result["build_log"]) as f:
        assert f.read().splitlines() == ["[1/3] nvcc -c a.cu", "compiling...", "[3/3] c++ -shared -o gsplat_cuda.so"]
    assert result["toolkit"]["source"] == "pip" and result["kernels"] == "/x/gsplat_cuda.so"
    # this process now finds that toolkit (doctor's nvcc line, and a training that loads the kernels)
    assert os.environ["CUDA_HOME"] == home
    report = environment.diagnose()
    assert report.rasterizers["cuda"] == "gsplat"
    # a second setup-gpu neither installs nor builds again
    gpu_setup.setup_gpu(print, pip=pip, build=build)
    assert len(commands) == 1 and len(builds) == 1


def test_a_failed_build_names_its_log(gpu_without_toolkit, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(gpu_setup, "run_pip", lambda command: _wheel_layout(command[command.index("--target") + 1]) or 0)
    monkeypatch.setattr(gpu_setup, "run_build", lambda command, env, on_line: on_line("nvcc fatal: unsupported gcc") or 1)
    assert main(["setup-gpu"]) == 2
    err = capsys.readouterr().err
    log = str(tmp_path / "cache" / "gpu" / "gsplat-build.log")
    assert "compiling gsplat's CUDA kernels failed (exit status 1)" in err and log in err
    with open(log) as f:
        assert "unsupported gcc" in f.read()


def test_cuda_training_without_kernels_builds_them_as_a_phase_or_names_setup_gpu(gpu_without_toolkit, monkeypatch):
    kernels = gpu_without_toolkit
    with pytest.raises(RenderError, match=r"no CUDA 12 compiler was found: run `gifstream setup-gpu`"):
        environment.prepare_gsplat(print)
    # with a toolkit (here: as setup-gpu installs it), the build is a phase of its own with progress
    monkeypatch.setattr(gpu_setup, "run_pip", lambda command: _wheel_layout(command[command.index("--target") + 1]) or 0)
    gpu_setup.install_toolkit("12.8", print)

    def build(command, env, on_line):
        on_line("[7/7] c++ -shared")
        kernels["state"] = ("built", "/x/gsplat_cuda.so")
        return 0

    monkeypatch.setattr(gpu_setup, "run_build", build)
    logged, steps = [], []
    environment.prepare_gsplat(logged.append, lambda step, total: steps.append((step, total)))
    assert logged[0].startswith("compiling GPU kernels") and logged[-1] == "GPU kernels ready" and steps == [(7, 7)]


def test_toolkit_packages_follow_torchs_cuda_release():
    assert gpu_setup.toolkit_packages("13.0") == ["nvidia-cuda-nvcc==13.0.*", "nvidia-cuda-crt==13.0.*",
                                                   "nvidia-nvvm==13.0.*", "nvidia-cuda-runtime==13.0.*",
                                                   "nvidia-cuda-cccl==13.0.*"]
    with pytest.raises(RenderError, match="CUDA 11.8: NVIDIA publishes no compiler packages"):
        gpu_setup.toolkit_packages("11.8")
