"""Building gsplat's CUDA kernels ahead of training (`gifstream setup-gpu`), and before a CUDA training that finds
them missing.

gsplat ships CUDA sources; they are compiled once per machine by torch's extension builder (ninja), which needs
nvcc of torch's CUDA major version. PyTorch's CUDA wheels carry no nvcc, but NVIDIA publishes its compiler as
packages on the Python package index. Where no CUDA toolkit is installed, `setup-gpu` installs them with pip
(`--target`, `--no-deps`) into a folder of their own, never into the environment: they share names with torch's own
CUDA dependencies, and the user's torch and its libraries stay exactly as they are. That folder is
`<gifstream cache>/gpu/cuda-<major.minor>/` (the cache is `$GIFSTREAM_CACHE`, default `$XDG_CACHE_HOME/gifstream`,
else `~/.cache/gifstream`); its `home/` is a CUDA_HOME assembled from the packages' bin/include/lib folders. The
build runs in a child process with CUDA_HOME and PATH (the toolkit's bin, and this interpreter's bin for ninja);
its output is saved in `<gifstream cache>/gpu/gsplat-build.log`, and ninja's `[n/N]` lines are its progress. The
kernels themselves land where torch builds extensions (`$TORCH_EXTENSIONS_DIR`, default
`~/.cache/torch_extensions/`).

Every process that loads the kernels needs the same: gsplat only loads a built library when it finds a toolkit,
and torch re-runs ninja once per process; `use_toolkit()` sets CUDA_HOME and PATH for this process.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from typing import Callable

import torch

from ..errors import GIFStreamError, RenderError

EXIT_NO_CUDA = 3  # `gifstream setup-gpu` where torch has no CUDA device (a CPU build, or no GPU/driver)
BUILD_LOG = "gsplat-build.log"
# the child that builds and loads the kernels: gsplat compiles on import of its backend when they are missing
BUILD_SCRIPT = "import sys\nfrom gsplat.cuda._backend import _C\nsys.exit(0 if _C is not None else 3)\n"
NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\]")


class NoCudaError(GIFStreamError):
    """setup-gpu on a machine where torch sees no CUDA device."""

    exit_status = EXIT_NO_CUDA


@dataclasses.dataclass(frozen=True)
class Toolkit:
    """A CUDA toolkit to build with: its CUDA_HOME, nvcc and release ("12.8"); where it came from."""

    home: str
    nvcc: str
    version: str | None
    source: str  # "system" (CUDA_HOME, PATH, /usr/local/cuda) or "pip" (NVIDIA's packages, in the gifstream cache)

    def env(self, base: dict | None = None) -> dict:
        """The environment a build or a kernel load needs: CUDA_HOME, and PATH with the toolkit's bin and this
        interpreter's bin (ninja) in front."""
        env = dict(os.environ if base is None else base)
        env["CUDA_HOME"] = self.home
        front = [os.path.join(self.home, "bin"), interpreter_bin()]
        env["PATH"] = os.pathsep.join(front + [p for p in env.get("PATH", "").split(os.pathsep) if p and p not in front])
        return env


def interpreter_bin() -> str:
    """This interpreter's scripts folder (where pip puts `ninja`)."""
    return os.path.dirname(os.path.abspath(sys.executable))


def gpu_folder() -> str:
    """`<gifstream cache>/gpu`: the pip-installed toolkits and the build log."""
    root = os.environ.get("GIFSTREAM_CACHE")
    if root is None or root.strip().lower() in ("off", "0", "none", ""):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "gifstream")
    return os.path.join(root, "gpu")


def cuda_release(torch_cuda: str | None = None) -> str:
    """torch's CUDA major.minor ("12.8"); NoCudaError for a CPU build."""
    torch_cuda = torch.version.cuda if torch_cuda is None else torch_cuda
    if not torch_cuda:
        raise NoCudaError(f"setup-gpu: torch {torch.__version__} is a CPU build (no CUDA): install a CUDA build of "
                          "torch (https://pytorch.org/get-started/locally/) into this environment, then run "
                          "`gifstream setup-gpu` again; on this machine training runs on the CPU")
    return ".".join(torch_cuda.split(".")[:2])


def require_cuda_device() -> None:
    """NoCudaError unless torch has CUDA and sees a device (a CPU build is named as such)."""
    release = cuda_release()
    if not torch.cuda.is_available():
        raise NoCudaError(f"setup-gpu: torch {torch.__version__} (CUDA {release}) sees no CUDA device: check the "
                          "NVIDIA driver (nvidia-smi) and CUDA_VISIBLE_DEVICES; on this machine training runs on the CPU")


def toolkit_packages(release: str) -> list[str]:
    """NVIDIA's compiler packages on the package index for CUDA `release` (major.minor, torch's): nvcc, the
    runtime's headers and library, and CCCL (CUDA 12: one package each, NVVM inside nvcc's; CUDA 13 and later: the
    unified ones, NVVM and the CRT headers split from nvcc)."""
    major = int(release.split(".")[0])
    if major == 12:
        return [f"{name}-cu12=={release}.*" for name in ("nvidia-cuda-nvcc", "nvidia-cuda-runtime", "nvidia-cuda-cccl")]
    if major >= 13:
        return [f"{name}=={release}.*" for name in ("nvidia-cuda-nvcc", "nvidia-cuda-crt", "nvidia-nvvm",
                                                    "nvidia-cuda-runtime", "nvidia-cuda-cccl")]
    raise RenderError(f"torch is built for CUDA {release}: NVIDIA publishes no compiler packages for it on the package "
                      f"index; install the CUDA {major} toolkit and set CUDA_HOME to it")


def pip_folder(release: str) -> str:
    return os.path.join(gpu_folder(), f"cuda-{release}")


def system_toolkit(release: str) -> Toolkit | None:
    """An installed toolkit whose nvcc has torch's CUDA major version (as gsplat's build finds nvcc)."""
    from .environment import find_nvcc, nvcc_version

    nvcc = find_nvcc()
    version = nvcc_version(nvcc) if nvcc else None
    if not version or version.split(".")[0] != release.split(".")[0]:
        return None
    return Toolkit(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), nvcc, version, "system")


def pip_toolkit(release: str) -> Toolkit | None:
    """The toolkit setup-gpu installed for `release`, when its home holds an nvcc."""
    home = os.path.join(pip_folder(release), "home")
    nvcc = os.path.join(home, "bin", "nvcc")
    return Toolkit(home, nvcc, release, "pip") if os.path.isfile(nvcc) else None


def find_toolkit(release: str) -> Toolkit | None:
    return system_toolkit(release) or pip_toolkit(release)


Runner = Callable[[list[str]], int]


def run_pip(command: list[str]) -> int:
    """pip in a child process, its output shown (the default `Runner`)."""
    return subprocess.run(command, check=False).returncode


def install_toolkit(release: str, log, run: Runner | None = None) -> Toolkit:
    """NVIDIA's compiler packages for `release` from the package index into `pip_folder(release)` (never into the
    environment), and a CUDA_HOME assembled from them."""
    folder = pip_folder(release)
    packages = toolkit_packages(release)
    log(f"installing NVIDIA's CUDA {release} compiler packages into {folder}: {' '.join(packages)}")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--upgrade", "--target", os.path.join(folder, "packages"),
               *packages]
    if (run or run_pip)(command) != 0:
        raise RenderError(f"pip could not install {' '.join(packages)} (command: {' '.join(command)}); check the "
                          "package index (PIP_INDEX_URL), or install the CUDA toolkit and set CUDA_HOME")
    home = assemble_home(os.path.join(folder, "packages"), os.path.join(folder, "home"))
    toolkit = pip_toolkit(release)
    if toolkit is None:
        raise RenderError(f"the packages {' '.join(packages)} hold no nvcc (looked in {home}/bin)")
    return toolkit


TOOLKIT_FOLDERS = ("bin", "include", "lib", "nvvm")


def assemble_home(packages: str, home: str) -> str:
    """A CUDA_HOME at `home` laid out as a toolkit from the pip packages' folders (`packages`/nvidia/<pkg>/{bin,
    include,lib,nvvm}, merged): bin's programs copied (nvcc finds nvcc.profile, cicc and the headers from where its
    executable really is: $(TOP) is `home`), the rest linked; `targets/x86_64-linux/{include,lib}` as nvcc.profile
    names them, `lib64` beside `lib`, and `libcudart.so` for the linker where only `libcudart.so.N` exists."""
    shutil.rmtree(home, ignore_errors=True)
    root = os.path.join(packages, "nvidia")
    if not os.path.isdir(root):
        raise RenderError(f"{packages}: no nvidia/ folder; the compiler packages did not install")
    for package in sorted(os.listdir(root)):
        for name in TOOLKIT_FOLDERS:
            source = os.path.join(root, package, name)
            if os.path.isdir(source):
                _merge_links(source, os.path.join(home, name))
    bin_folder = os.path.join(home, "bin")
    for name in os.listdir(bin_folder) if os.path.isdir(bin_folder) else []:
        path = os.path.join(bin_folder, name)
        if os.path.islink(path) and os.path.isfile(path):
            source = os.path.realpath(path)
            os.remove(path)
            shutil.copy2(source, path)
    target = os.path.join(home, "targets", "x86_64-linux")
    os.makedirs(target)
    for name in ("include", "lib"):
        os.symlink(os.path.join("..", "..", name), os.path.join(target, name))
    lib = os.path.join(home, "lib")
    if os.path.isdir(lib):
        os.symlink("lib", os.path.join(home, "lib64"))
        if not os.path.exists(os.path.join(lib, "libcudart.so")):
            versioned = sorted(n for n in os.listdir(lib) if n.startswith("libcudart.so."))
            if versioned:
                os.symlink(versioned[0], os.path.join(lib, "libcudart.so"))
    return home


def _merge_links(source: str, target: str) -> None:
    """Link every entry of `source` into `target`, merging folders that several packages share (include/crt...)."""
    os.makedirs(target, exist_ok=True)
    for name in sorted(os.listdir(source)):
        src, dst = os.path.join(source, name), os.path.join(target, name)
        if not os.path.lexists(dst):
            os.symlink(src, dst)
        elif os.path.isdir(src) and os.path.isdir(dst):
            if os.path.islink(dst):  # a folder a first package linked whole: make it a real folder of links
                first = os.path.realpath(dst)
                os.remove(dst)
                _merge_links(first, dst)
            _merge_links(src, dst)


def use_toolkit(release: str | None = None) -> Toolkit | None:
    """Point this process at the toolkit to build and load gsplat's kernels with (CUDA_HOME, PATH); None when there is
    none. torch's extension builder reads CUDA_HOME once, on import: it is updated too when already imported."""
    release = release or cuda_release()
    toolkit = find_toolkit(release)
    if toolkit is None:
        return None
    os.environ.update({k: v for k, v in toolkit.env().items() if k in ("CUDA_HOME", "PATH")})
    extension = sys.modules.get("torch.utils.cpp_extension")
    if extension is not None:
        extension.CUDA_HOME = toolkit.home
    return toolkit


BuildRunner = Callable[[list[str], dict, Callable[[str], None]], int]


def run_build(command: list[str], env: dict, on_line: Callable[[str], None]) -> int:
    """The build child, each line of its output handed to `on_line` as it comes (the default `BuildRunner`)."""
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace") as child:
        for line in child.stdout:
            on_line(line.rstrip("\n"))
        return child.wait()


def build_kernels(toolkit: Toolkit, log, progress: Callable[[int, int], None] | None = None,
                  run: BuildRunner | None = None) -> str:
    """Compile gsplat's CUDA kernels in a child process with `toolkit`; its output in the build log (whose path is
    returned); ninja's [n/N] steps to `progress`. RenderError naming the log when the build fails."""
    os.makedirs(gpu_folder(), exist_ok=True)
    log_path = os.path.join(gpu_folder(), BUILD_LOG)
    env = toolkit.env() | {"VERBOSE": "1"}  # gsplat: ninja's steps and the compiler's messages in the output
    log(f"compiling GPU kernels (gsplat, once per machine, a few minutes) with nvcc {toolkit.version or '?'} "
        f"({toolkit.source}: {toolkit.home}); log {log_path}")
    with open(log_path, "w") as out:
        def on_line(line: str) -> None:
            out.write(line + "\n")
            out.flush()
            step = NINJA_STEP.match(line)
            if step and progress is not None:
                progress(int(step.group(1)), int(step.group(2)))

        code = (run or run_build)([sys.executable, "-c", BUILD_SCRIPT], env, on_line)
    if code != 0:
        raise RenderError(f"compiling gsplat's CUDA kernels failed (exit status {code}); the compiler's output is in "
                          f"{log_path}; `gifstream doctor` lists what the build needs")
    log("GPU kernels ready")
    return log_path


def setup_gpu(log, progress: Callable[[int, int], None] | None = None, pip: Runner | None = None,
              build: BuildRunner | None = None) -> dict:
    """`gifstream setup-gpu`: a CUDA device checked, a toolkit found (or NVIDIA's compiler packages installed), gsplat's
    kernels built and loaded. Returns what it did."""
    from .environment import gsplat_kernels

    require_cuda_device()
    release = cuda_release()
    state, where = gsplat_kernels()
    if state == "unavailable":
        raise RenderError(f"setup-gpu needs gsplat: {where}; pip install --no-deps gsplat==1.5.3 jaxtyping rich ninja packaging")
    toolkit = find_toolkit(release) or install_toolkit(release, log, pip)
    use_toolkit(release)
    log_path = None
    if state == "built":
        log(f"gsplat's kernels are already built ({where})")
    else:
        log_path = build_kernels(toolkit, log, progress, build)
    return {"cuda": release, "toolkit": dataclasses.asdict(toolkit), "kernels": gsplat_kernels()[1], "build_log": log_path}
