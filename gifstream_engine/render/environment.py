"""What this machine can render and train with: Python, torch and its CUDA, the GPUs, gsplat's kernels and what
building them needs (nvcc, a host compiler, ninja, Python.h), and the rasteriser each device would use.

`gifstream doctor` prints it; each problem comes with one line saying what to do. Nothing here compiles: gsplat's
kernels are only loaded where they are already built (its first CUDA call would otherwise build them, minutes).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig

import torch


@dataclasses.dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""  # one line: what to do (empty when ok or when nothing needs doing)


@dataclasses.dataclass
class EnvironmentReport:
    checks: list[Check]
    rasterizers: dict[str, str]  # device -> "torch" or "gsplat"

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and c.fix]

    def to_json(self) -> dict:
        checks = [dataclasses.asdict(c) | {"fix": "" if c.ok else c.fix} for c in self.checks]
        return {"checks": checks, "rasterizers": self.rasterizers,
                "problems": [c.fix for c in self.problems]}

    def table(self) -> str:
        lines = [f"{'ok' if c.ok else '--':<3} {c.name:<16} {c.detail}" for c in self.checks]
        lines += [f"rasteriser on {device}: {name}" for device, name in self.rasterizers.items()]
        lines += [f"to do: {c.fix}" for c in self.problems] or ["nothing to do"]
        return "\n".join(lines)


def cuda_devices() -> list[str]:
    """Names of the CUDA devices torch sees (empty on a CPU-only machine or a CPU build of torch)."""
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def find_nvcc() -> str | None:
    """nvcc as gsplat's build finds it: $CUDA_HOME/bin, then PATH, then /usr/local/cuda/bin."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    candidates = [os.path.join(home, "bin", "nvcc")] if home else []
    on_path = shutil.which("nvcc")
    candidates += [on_path] if on_path else []
    candidates.append("/usr/local/cuda/bin/nvcc")
    return next((c for c in candidates if os.path.isfile(c) and os.access(c, os.X_OK)), None)


def nvcc_version(nvcc: str) -> str | None:
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"release (\d+\.\d+)", out)
    return found.group(1) if found else None


def gsplat_kernels() -> tuple[str, str]:
    """("built", where), ("missing", why) or ("unavailable", why): gsplat's CUDA kernels, without building them."""
    try:
        import gsplat  # noqa: F401
    except ImportError as exc:
        return "unavailable", f"gsplat is not installed ({exc})"
    import importlib.util

    if importlib.util.find_spec("gsplat.csrc") is not None:
        return "built", "prebuilt (gsplat.csrc)"
    from torch.utils.cpp_extension import _get_build_directory

    folder = _get_build_directory("gsplat_cuda", verbose=False)
    library = os.path.join(folder, "gsplat_cuda.so")
    if os.path.isfile(library):
        return "built", library
    return "missing", f"not built yet (would be {library})"


def gsplat_kernels_load() -> tuple[bool, str]:
    """Whether built kernels load in this process (only called where they are built and a GPU exists)."""
    try:
        from gsplat.cuda._backend import _C
    except Exception as exc:  # noqa: BLE001 - a broken build raises anything from the loader
        return False, f"{type(exc).__name__}: {exc}"
    return (_C is not None), ("loaded" if _C is not None else "gsplat disabled them (no CUDA toolkit)")


def diagnose() -> EnvironmentReport:
    checks = [Check("python", sys.version_info >= (3, 11), f"{platform.python_version()} ({sys.executable})",
                    "use Python 3.11 to 3.13")]
    cuda = torch.version.cuda
    checks.append(Check("torch", True, f"{torch.__version__}" + (f", built for CUDA {cuda}" if cuda else ", CPU build")))
    gpus = cuda_devices()
    # a CUDA build that sees no GPU: the driver or the visible devices; a CPU build: nothing to fix (PyTorch rasteriser)
    fix_gpu = "check the NVIDIA driver (nvidia-smi) and CUDA_VISIBLE_DEVICES" if cuda else ""
    checks.append(Check("cuda devices", bool(gpus), ", ".join(gpus) if gpus else "none (training runs on the CPU)", fix_gpu))
    rasterizers = {"cpu": "torch"}
    if not gpus:
        return EnvironmentReport(checks, rasterizers)
    state, where = gsplat_kernels()
    if state == "built":
        loads, why = gsplat_kernels_load()
        checks.append(Check("gsplat kernels", loads, f"{where}: {why}",
                            "" if loads else "rebuild them: remove that build folder and train once on CUDA"))
        rasterizers["cuda"] = "gsplat" if loads else "torch"
    else:
        checks.append(Check("gsplat kernels", False, where,
                            "pip install --no-deps gsplat==1.5.3 jaxtyping rich ninja packaging" if state == "unavailable"
                            else "run `gifstream setup-gpu` to build them now (else they compile on the first CUDA "
                                 "training, 2-5 min, with the tools below)"))
        rasterizers["cuda"] = "torch"
        checks += _build_tools(cuda)
    return EnvironmentReport(checks, rasterizers)


def _build_tools(torch_cuda: str | None) -> list[Check]:
    """What compiling gsplat's kernels needs: nvcc of torch's CUDA major version, a C++ compiler, ninja, Python.h."""
    from .gpu_setup import cuda_release, pip_toolkit

    major = (torch_cuda or "").split(".")[0]
    nvcc = find_nvcc()
    version = nvcc_version(nvcc) if nvcc else None
    if not (version and version.split(".")[0] == major) and torch_cuda:
        installed = pip_toolkit(cuda_release(torch_cuda))  # NVIDIA's packages, as setup-gpu installed them
        nvcc, version = (installed.nvcc, installed.version) if installed else (nvcc, version)
    nvcc_ok = bool(version) and version.split(".")[0] == major
    checks = [Check("nvcc", nvcc_ok, f"{nvcc} (CUDA {version})" if nvcc else "not found",
                    "" if nvcc_ok else f"run `gifstream setup-gpu` (it installs NVIDIA's CUDA {major} compiler packages), "
                                       f"or install the CUDA {major} toolkit (nvcc) and set CUDA_HOME to it")]
    compiler = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")
    checks.append(Check("c++ compiler", compiler is not None, compiler or "not found", "install g++ (or set CXX)"))
    ninja = shutil.which("ninja")
    checks.append(Check("ninja", ninja is not None, ninja or "not on PATH",
                        "pip install ninja into this environment and put its bin folder on PATH"))
    header = os.path.join(sysconfig.get_paths()["include"], "Python.h")
    checks.append(Check("Python.h", os.path.isfile(header), header,
                        "install this Python's development headers (e.g. python3-dev)"))
    return checks


def prepare_gsplat(log, progress=None) -> None:
    """Before CUDA training: gsplat's kernels loaded, built first where they are missing (the "compiling GPU kernels"
    phase: a log line, `progress(step, total)` per ninja step, not counted as training time); a RenderError saying
    what to run (`gifstream setup-gpu`, `gifstream doctor`) when they cannot be built or loaded."""
    from ..errors import RenderError
    from .gpu_setup import build_kernels, cuda_release, use_toolkit

    release = cuda_release()
    toolkit = use_toolkit(release)  # first: gsplat loads even built kernels only where it finds a toolkit, and ninja
    state, where = gsplat_kernels()
    if state == "unavailable":
        raise RenderError(f"CUDA training needs gsplat: {where}; run `gifstream doctor` for what to install")
    if state == "missing":
        if toolkit is None:
            raise RenderError(f"gsplat's CUDA kernels are not built and no CUDA {release.split('.')[0]} compiler was "
                              "found: run `gifstream setup-gpu` (it installs NVIDIA's compiler packages and builds "
                              "them), or train with --device cpu or --set train.rasterizer=torch")
        build_kernels(toolkit, log, progress)
    loads, why = gsplat_kernels_load()
    if not loads:
        raise RenderError(f"gsplat's CUDA kernels could not be loaded ({why}); run `gifstream setup-gpu`, "
                          "`gifstream doctor` for what is missing, or train with --device cpu")
