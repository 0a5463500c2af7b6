#!/usr/bin/env bash
# gpu_check.sh -- the first real CUDA run of gifstream_engine (gsplat 1.5.3 backend), on one NVIDIA H100.
#
# Run from the repository root:   bash tools/gpu_check.sh
# Target: Python 3.12, torch 2.11 (CUDA 13 build) installed system-wide, no internet except a Python package
# index (set PIP_INDEX_URL if it is not pip's default). Finishes in < 8 minutes: every stage runs under a
# deadline (BUDGET_S, default 470 s); a stage that would overrun is cut and the JSON says so. A rerun reuses the
# venv, the compiled gsplat extension and the SfM cache (WORK), and takes ~2-3 minutes.
#
# Knobs (environment):  OUT (default $WORK/out; all numbers go to $OUT/gpu_check.json, the full log to
#   $OUT/gpu_check.log, gsplat's build log (gifstream setup-gpu's) to $OUT/gsplat_build.log), WORK (default /tmp/gifstream_gpu_check),
#   STEPS (training steps, default 300), BUDGET_S (default 470), CAPTURE (an existing capture to train on,
#   e.g. the tests' tiny one rendered elsewhere with
#   `gifstream capture synth CAP --cameras 6 --num-frames 6 --width 96 --height 72 --samples 8 --no-denoise`),
#   PYTHON (interpreter that has the system torch), CPU_BASELINE_STEPS (default 20, 0 = skip), FRESH=1 (wipe WORK).
#
# Stages (expected time on one H100 + 16 cores, first run):
#   0 preflight ..... GPU, driver, python/torch/CUDA versions, host compiler, Python.h                 ~5 s
#   a install ....... venv --system-site-packages, the engine's deps (not torch), gsplat 1.5.3
#                     --no-deps, the engine itself (`pip install -e .`, as the README says)        30-90 s
#   a setup-gpu ..... `gifstream setup-gpu`: nvcc of torch's CUDA release (a system toolkit, else NVIDIA's
#                     compiler packages from the index into WORK/cache/gpu, never on sys.path), then
#                     gsplat's CUDA extension compiled once, timed (cached in WORK)                2-5 min
#   b parity ........ render() gsplat (CUDA) vs the PyTorch rasteriser (CPU): forward, backward,
#                     2D-mean gradients (densification), render_batch windows, probes              20-40 s
#   b gpu tests ..... `pytest -m gpu`: both rasterisers on one CUDA device, a CUDA training evaluated
#                     and encoded on the GPU, CUDA -> CPU resume, the step's read-backs            60-120 s
#   c capture+train . the tests' tiny capture (if Blender/bpy is there) or a Blender-free Panoptic
#                     capture rendered by the engine itself; preview preset, STEPS steps on CUDA:
#                     steps/s, PSNR, anchor growth; restore of the CUDA checkpoint              40-120 s
#   d codec ......... encode the GPU-trained run (GPU visible, and again with CUDA hidden: bytes
#                     equal?), decode + eval on the CPU, PSNR equal to the run's own eval; decoded
#                     frames rendered on GPU vs CPU; GPU checkpoint resumed on CPU; probes          20-40 s
#   e baseline ...... the same schedule's first CPU_BASELINE_STEPS steps on the CPU (speed ratio)    15-30 s
#
# gsplat 1.5.3 packaging (checked in an installed copy: gsplat-1.5.3.dist-info/WHEEL says py3-none-any):
#   the PyPI wheel ships no compiled module, only the CUDA/C++ sources (gsplat/cuda/csrc/*.cu, *.cpp,
#   cuda/include, csrc/third_party/glm) and ext.cpp. gsplat/cuda/_backend.py first tries `from gsplat import
#   csrc` (absent), then -- lazily, on the first CUDA op (_wrapper._make_lazy_cuda_func), not at `import gsplat`
#   -- JIT-compiles every csrc/*.cu + *.cpp + ext.cpp through torch.utils.cpp_extension._jit_compile (ninja)
#   into $TORCH_EXTENSIONS_DIR/py312_cu130/gsplat_cuda (default ~/.cache/torch_extensions/...). It needs:
#     * nvcc: $CUDA_HOME (or $CUDA_PATH), else `nvcc` on PATH, else /usr/local/cuda; its major version must be
#       torch.version.cuda's (torch raises on a major mismatch). torch's CUDA wheels do NOT ship nvcc. With no
#       toolkit gsplat only prints "No CUDA toolkit found. gsplat will be disabled." and sets _C = None: the
#       first rasterisation then fails with AttributeError ('NoneType' object has no attribute ...).
#     * the `ninja` executable on PATH (pip package `ninja` puts it in VENV/bin) -- and this is checked in EVERY
#       new process, even when the .so is already built (torch re-runs its ninja build step once per process).
#     * a host C++ compiler (`c++`, nvcc's `gcc`) that CUDA 13 supports, and Python.h of this interpreter.
#     * env: MAX_JOBS (gsplat defaults it to 10), TORCH_CUDA_ARCH_LIST (default: the visible GPUs' archs),
#       FAST_COMPILE=1 (-O0: faster build, much slower kernels), NO_FAST_MATH=1, VERBOSE=1 (build log),
#       USE_PRECOMPILED_HEADERS=1. A prebuilt wheel exists only on gsplat's own wheel index (not a Python package
#       index, and none for torch 2.11/cu130), so here it is always the JIT.
set -uo pipefail

REPO=$(pwd)
if [[ ! -f "$REPO/pyproject.toml" || ! -d "$REPO/gifstream_engine" ]]; then
    echo "gpu_check: run me from the gifstream repository root (pyproject.toml, gifstream_engine/)" >&2
    exit 2
fi
WORK=${WORK:-/tmp/gifstream_gpu_check}
OUT=${OUT:-$WORK/out}
STEPS=${STEPS:-300}
BUDGET_S=${BUDGET_S:-470}
CPU_BASELINE_STEPS=${CPU_BASELINE_STEPS:-20}
if [[ "${FRESH:-0}" == 1 ]]; then rm -rf "$WORK"; fi
mkdir -p "$WORK/py" "$WORK/stages" "$OUT/parts"
rm -f "$OUT"/parts/*.json "$OUT/parts/stages.tsv" "$OUT/gpu_check.json"
exec > >(tee "$OUT/gpu_check.log") 2>&1

VENV="$WORK/venv"
VPY="$VENV/bin/python"
RUN="$WORK/run"
export REPO WORK OUT STEPS VENV VPY RUN CPU_BASELINE_STEPS
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export GIFSTREAM_CRASH_DIR="$OUT/crashes"        # the engine's crash logs (tracebacks of internal errors)
export GIFSTREAM_CACHE="$WORK/cache"             # its SfM cache: a rerun does not triangulate again
export TORCH_EXTENSIONS_DIR="$WORK/torch_extensions"   # gsplat's JIT build, kept for reruns
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
START=$SECONDS
left() { echo $((BUDGET_S - (SECONDS - START))); }

# ---------------------------------------------------------------- the interpreter that has the system torch
SYSPY=""
for candidate in ${PYTHON:-} python3.12 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import torch" >/dev/null 2>&1; then
        SYSPY=$(command -v "$candidate"); break
    fi
done
if [[ -z "$SYSPY" ]]; then
    SYSPY=$(command -v python3 || command -v python)
    echo "gpu_check: no interpreter on PATH imports torch (set PYTHON=...); continuing to record why" >&2
fi
export SYSPY

# jput PART KEY VALUE: VALUE (JSON, else a string) under KEY in $OUT/parts/PART.json
jput() {
    "$SYSPY" - "$OUT/parts/$1.json" "$2" "$3" <<'PY'
import json, os, sys
path, key, value = sys.argv[1:4]
data = json.load(open(path)) if os.path.exists(path) else {}
try:
    value = json.loads(value)
except ValueError:
    pass
data[key] = value
with open(path, "w") as f:
    json.dump(data, f, indent=1)
PY
}
export -f jput

# stage NAME LIMIT_S SCRIPT: run a stage script under min(LIMIT, what is left of the budget)
stage() {
    local name=$1 limit=$2 script=$3 t rc t0
    t=$(( $(left) - 10 ))
    (( limit < t )) && t=$limit
    if (( t < 8 )); then
        echo "=== [$name] skipped: the ${BUDGET_S}s budget is spent ==="
        printf '%s\t%s\t%s\n' "$name" "skipped" 0 >> "$OUT/parts/stages.tsv"
        return 125
    fi
    echo; echo "=== [$name] start (limit ${t}s, $(left)s of the budget left) ==="
    t0=$SECONDS
    timeout --kill-after=5 "$t" bash "$script"; rc=$?
    (( rc == 124 || rc == 137 )) && echo "=== [$name] TIMED OUT after ${t}s ==="
    echo "=== [$name] rc=$rc in $((SECONDS - t0)) s ==="
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$OUT/parts/stages.tsv"
    return $rc
}

# ====================================================================== stage scripts (bash)
cat > "$WORK/stages/0_preflight.sh" <<'SH'
set -uo pipefail
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -2
jput preflight nvidia_smi "$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -1)"
jput preflight python "$SYSPY"
jput preflight cpu_cores "$(nproc)"
jput preflight cxx "$( (c++ --version || g++ --version) 2>&1 | head -1)"
jput preflight gcc "$(gcc --version 2>&1 | head -1)"
jput preflight system_ninja "$(command -v ninja || echo none)"
"$SYSPY" - <<'PY'
import json, os, sys, sysconfig, subprocess
info = {"python_version": sys.version.split()[0]}
inc = sysconfig.get_paths()["include"]
info["python_h"] = os.path.isfile(os.path.join(inc, "Python.h"))
info["python_include"] = inc
try:
    import torch
    info |= {"torch": torch.__version__, "torch_file": torch.__file__, "torch_cuda": torch.version.cuda,
             "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info |= {"gpu": torch.cuda.get_device_name(0), "capability": "%d.%d" % torch.cuda.get_device_capability(0)}
except Exception as exc:
    info["torch_error"] = f"{type(exc).__name__}: {exc}"
try:
    import numpy
    info["system_numpy"] = numpy.__version__
except Exception:
    info["system_numpy"] = None
print(json.dumps(info, indent=1))
for k, v in info.items():
    subprocess.run(["bash", "-c", 'jput preflight "$0" "$1"', k, json.dumps(v)], check=False)
if not info["python_h"]:
    print("WARNING: Python.h is missing (python3.12-dev): no C++/CUDA extension can be JIT-compiled here")
PY
SH

cat > "$WORK/stages/a1_install.sh" <<'SH'
set -uo pipefail
# A venv that sees the system torch; everything the engine needs except torch goes into the venv
# (--ignore-installed: a system numpy 2.x or scipy built for it must not be picked up instead of the pins).
if [[ ! -x "$VPY" ]]; then
    if ! "$SYSPY" -m venv --system-site-packages "$VENV"; then
        echo "venv with pip failed (Debian/Ubuntu without python3.12-venv?): trying --without-pip"
        rm -rf "$VENV"; "$SYSPY" -m venv --system-site-packages --without-pip "$VENV" || exit 1
        jput install venv_without_pip true
    fi
fi
if "$VPY" -m pip --version >/dev/null 2>&1; then PIP=("$VPY" -m pip); else PIP=("$SYSPY" -m pip --python "$VPY"); fi
"${PIP[@]}" --version
# the pins of the repository's own .venv (py3.11) -- every one has a cp312 wheel; unpinned ranges as a fallback
PINNED=(numpy==1.26.4 scipy==1.17.1 pycolmap==4.2.1 constriction==0.5.0 av==18.1.0 openexr==3.5.3 plyfile==1.1.3
        jaxtyping==0.3.11 rich==15.0.0 ninja==1.13.2 tqdm==4.70.1 packaging pytest==9.2.0)
RANGES=("numpy<2" scipy pycolmap constriction av "openexr>=3.3" plyfile jaxtyping rich ninja tqdm packaging pytest)
if "${PIP[@]}" install -q --only-binary=:all: --ignore-installed "${PINNED[@]}"; then
    jput install deps pinned
elif "${PIP[@]}" install -q --only-binary=:all: --ignore-installed "${RANGES[@]}"; then
    jput install deps ranges
else
    jput install deps failed; exit 1
fi
# gsplat without its dependencies: its `torch` requirement must not pull a second torch (setup.sh does the same)
"${PIP[@]}" install -q --no-deps gsplat==1.5.3 || { jput install gsplat failed; exit 1; }
# the engine as documented (README, "Training on an NVIDIA GPU"): pip install -e . (requires-python >=3.11,<3.14)
"${PIP[@]}" install -q --no-deps -e "$REPO"; rc=$?
jput install engine_install_rc "$rc"
(( rc == 0 )) || "${PIP[@]}" install -q --no-deps --no-build-isolation -e "$REPO" || { jput install engine failed; exit 1; }
"$VPY" - <<'PY'
import importlib, json, subprocess, sys
found, errors = {}, {}
for name in ("torch", "numpy", "scipy", "pycolmap", "constriction", "av", "OpenEXR", "plyfile", "jaxtyping", "rich",
             "ninja", "gsplat", "gifstream_engine", "pytest", "setuptools"):
    try:
        module = importlib.import_module(name)
        found[name] = getattr(module, "__version__", "?")
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
import importlib.util
import torch
gsplat_spec = importlib.util.find_spec("gsplat")
out = {"versions": found, "import_errors": errors, "torch_file": torch.__file__, "torch_cuda": torch.version.cuda,
       "cuda_available": torch.cuda.is_available(), "engine_import_ok": "gifstream_engine" not in errors,
       "gsplat_file": gsplat_spec.origin if gsplat_spec else None,
       # a wheel from gsplat's own index carries a compiled gsplat/csrc*.so; PyPI's 1.5.3 does not (JIT instead)
       "gsplat_prebuilt_csrc": bool(gsplat_spec) and importlib.util.find_spec("gsplat.csrc") is not None}
print(json.dumps(out, indent=1))
for k, v in out.items():
    subprocess.run(["bash", "-c", 'jput install "$0" "$1"', k, json.dumps(v)], check=False)
essential = {"torch", "numpy", "scipy", "av", "constriction", "plyfile", "ninja", "gsplat", "gifstream_engine"}
sys.exit(1 if essential & set(errors) else 0)
PY
SH

cat > "$WORK/stages/a2_setup_gpu.sh" <<'SH'
set -uo pipefail
# gifstream setup-gpu: a system toolkit of torch's CUDA major version, else NVIDIA's compiler packages from the
# package index into $GIFSTREAM_CACHE/gpu/cuda-X.Y (pip --target, never on sys.path), then gsplat's kernels built
# in a child process (log $GIFSTREAM_CACHE/gpu/gsplat-build.log). Exit status 3: torch sees no CUDA device.
echo "export PATH=\"$VENV/bin:\$PATH\"" > "$WORK/env.sh"   # ninja (VENV/bin); without a toolkit later stages still run
ARCH=${TORCH_CUDA_ARCH_LIST:-$("$VPY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability(0))' 2>/dev/null)}
export TORCH_CUDA_ARCH_LIST="$ARCH"
jput setup_gpu torch_cuda_arch_list "\"$ARCH\""
( while sleep 30; do echo "  ... still compiling: $(find "$TORCH_EXTENSIONS_DIR" -name '*.o' 2>/dev/null | wc -l) objects built"; done ) &
ticker=$!
t0=$SECONDS
"$VENV/bin/gifstream" setup-gpu --events > "$WORK/setup_gpu.jsonl" 2>&1; rc=$?
kill "$ticker" 2>/dev/null
jput setup_gpu rc "$rc"
jput setup_gpu seconds "$((SECONDS - t0))"
grep -v '"type": "progress"' "$WORK/setup_gpu.jsonl" | tail -n 20
cp "$GIFSTREAM_CACHE/gpu/gsplat-build.log" "$OUT/gsplat_build.log" 2>/dev/null || true
"$SYSPY" - "$WORK/setup_gpu.jsonl" <<'PY'
import json, subprocess, sys
result, error, steps = None, None, 0
for line in open(sys.argv[1]):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    kind = event.get("type")
    result = event.get("data") if kind == "result" else result
    error = event.get("message") if kind == "error" else error
    steps = max(steps, int(event.get("step", 0))) if kind == "progress" else steps
out = {"result": result, "error": error, "ninja_steps": steps, "loaded": result is not None}
for k, v in out.items():
    subprocess.run(["bash", "-c", 'jput setup_gpu "$0" "$1"', k, json.dumps(v)], check=False)
home = ((result or {}).get("toolkit") or {}).get("home")
if home:  # every later process loads the kernels through this toolkit (gsplat needs one) and ninja
    with open(__import__("os").environ["WORK"] + "/env.sh", "a") as f:
        f.write(f'export CUDA_HOME="{home}"\nexport PATH="{home}/bin:$PATH"\n')
PY
echo "export TORCH_CUDA_ARCH_LIST=\"$ARCH\"" >> "$WORK/env.sh"
cat "$WORK/env.sh"
exit $rc
SH

cat > "$WORK/stages/b2_gpu_tests.sh" <<'SH'
set -uo pipefail
source "$WORK/env.sh"
export GIFSTREAM_TEST_CAPTURE=$(cat "$WORK/capture_path" 2>/dev/null)
cd "$REPO" && "$VPY" -m pytest -q -m gpu -p no:cacheprovider tests/test_rasterizer.py tests/test_rasterizer_stages.py \
    tests/test_gpu_training.py tests/test_gpu_syncs.py -rs 2>&1 | tee "$OUT/gpu_tests.log" | tail -n 30
rc=${PIPESTATUS[0]}
jput gpu_tests rc "$rc"
jput gpu_tests summary "$(tail -n 1 "$OUT/gpu_tests.log")"
exit $rc
SH

cat > "$WORK/stages/c1_capture.sh" <<'SH'
set -uo pipefail
source "$WORK/env.sh" 2>/dev/null || true
G="$VENV/bin/gifstream"
if [[ -n "${CAPTURE:-}" ]]; then
    echo "training on the given capture $CAPTURE"; echo "$CAPTURE" > "$WORK/capture_path"
    jput capture kind "given: $CAPTURE"
    jput capture extra_sets "[\"train.seed_frames=${SEED_FRAMES:-6}\"]"; exit 0   # SfM: ~5 s per seed frame
fi
CAP="$WORK/capture_tiny"
if [[ -f "$CAP/poses_bounds.npy" ]]; then
    echo "$CAP" > "$WORK/capture_path"; jput capture kind "tests' TINY capture (cached)"; jput capture extra_sets '[]'; exit 0
fi
# the tests' TINY capture (tests/conftest.py: 6 cameras, 6 frames, 96x72, 8 samples, no denoising) needs Cycles:
# bpy==5.0.1 exists for Python 3.11 only, so on 3.12 only a `blender` executable can render it
BL=""
if "$VPY" -c "import bpy" >/dev/null 2>&1; then BL="(bpy)"; elif command -v blender >/dev/null; then BL=$(command -v blender); fi
if [[ -n "$BL" ]]; then
    args=(capture synth "$CAP" --cameras 6 --num-frames 6 --width 96 --height 72 --samples 8 --no-denoise)
    [[ "$BL" != "(bpy)" ]] && args+=(--blender-python "$BL")
    if "$G" "${args[@]}"; then
        echo "$CAP" > "$WORK/capture_path"; jput capture kind "tests' TINY capture rendered with Blender $BL"
        jput capture extra_sets '[]'; exit 0
    fi
    echo "Blender rendering failed: falling back to the Blender-free capture"
fi
# Blender-free: a Panoptic-layout capture rendered by the engine's own CPU rasteriser; it ships its frame-0
# point cloud (init_pt_cld.npz), so seeding needs no SfM (train.seed_frames=1)
CAP="$WORK/capture_gaussians"
[[ -f "$CAP/train_meta.json" ]] || "$VPY" "$WORK/py/make_capture.py" "$CAP" || exit 1
echo "$CAP" > "$WORK/capture_path"
jput capture kind "Blender-free Panoptic capture rendered by the engine (no bpy for Python 3.12, no blender)"
jput capture extra_sets '["train.seed_frames=1"]'
"$G" capture info "$CAP" | head -12
SH

cat > "$WORK/stages/d_codec.sh" <<'SH'
set -uo pipefail
source "$WORK/env.sh"
G="$VENV/bin/gifstream"
CAP=$(cat "$WORK/capture_path")
[[ -f "$RUN/gop_000/model.pt" ]] || { echo "no trained run in $RUN"; exit 1; }
rm -rf "$WORK/decoded"; rm -f "$WORK"/run_*.gifs
# encode the GPU-trained run in a process that sees the GPU (the coder itself loads the run on the CPU) ...
"$G" encode "$RUN" -o "$WORK/run_gpu.gifs" --json > "$OUT/parts/encode_gpu_visible.json" || exit 1
# ... and in one that sees no GPU: a GPU-trained run must code the same bytes on a CPU-only machine
CUDA_VISIBLE_DEVICES= "$G" encode "$RUN" -o "$WORK/run_cpu.gifs" --json > "$OUT/parts/encode_cpu_only.json" || exit 1
"$SYSPY" -c 'import filecmp, sys; sys.exit(0 if filecmp.cmp(sys.argv[1], sys.argv[2], shallow=False) else 1)' \
    "$WORK/run_gpu.gifs" "$WORK/run_cpu.gifs" && same=true || same=false
jput codec encode_bytes_equal_gpu_visible_vs_cpu_only "$same"
# decode and evaluate on the CPU only
CUDA_VISIBLE_DEVICES= "$G" info "$WORK/run_gpu.gifs" | tail -n 12
CUDA_VISIBLE_DEVICES= "$G" decode "$WORK/run_gpu.gifs" --format npz --out "$WORK/decoded" || jput codec decode_cli failed
CUDA_VISIBLE_DEVICES= "$G" eval "$WORK/run_gpu.gifs" --capture "$CAP" --json > "$WORK/eval_bitstream.json" || exit 1
tail -n 1 "$WORK/eval_bitstream.json" > "$OUT/parts/eval_bitstream_cpu.json"
CAP="$CAP" "$VPY" "$WORK/py/codec_check.py" || echo "codec_check failed"
# the GPU checkpoint continued on a CPU-only machine, through the trainer (2 steps) and through the CLI
CUDA_VISIBLE_DEVICES= CAP="$CAP" "$VPY" "$WORK/py/resume_cpu.py" || echo "resume_cpu failed"
# (--resume --device cpu: the device is placement, not the run's identity; a finished run says so and exits 0)
CUDA_VISIBLE_DEVICES= "$G" train "$CAP" --out "$RUN" --resume --device cpu > "$WORK/resume_cli.out" 2>&1; rc=$?
jput codec cli_resume_device_cpu_on_cpu_only "rc=$rc $(grep -v '^ *$' "$WORK/resume_cli.out" | tail -n 1 | cut -c1-250)"
# a CPU trainer and then a CUDA trainer in one process (what pytest does on a GPU host)
CAP="$CAP" "$VPY" "$WORK/py/probe_deterministic.py" || echo "probe_deterministic failed"
exit 0
SH

# ====================================================================== python helpers
cat > "$WORK/py/parity.py" <<'PY'
"""(b) render() on CUDA (gsplat) against the PyTorch rasteriser on the CPU, forward and backward, on the tests'
random scenes (tests/conftest.py random_gaussians / pinhole), plus render_batch (the trainer's windows)."""
import json, os, sys, time
import torch

REPO, OUT = os.environ["REPO"], os.environ["OUT"]
sys.path.insert(0, os.path.join(REPO, "tests"))
res = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0), "scenes": {},
       "probes": {}}
try:
    from conftest import pinhole, random_gaussians  # the tests' own helpers
    res["scene_helpers"] = "tests/conftest.py"
except Exception as exc:  # pytest missing: the same two helpers
    res["scene_helpers"] = f"inline copy ({type(exc).__name__})"
    import numpy as np
    from gifstream_engine.capture.camera import Camera
    from gifstream_engine.render import Gaussians as _G

    def random_gaussians(n, seed=0, depth=4.0, requires_grad=False, dtype=None):
        g = torch.Generator().manual_seed(seed)
        dtype = dtype or torch.float32
        means = torch.randn(n, 3, generator=g, dtype=dtype) * torch.tensor([1.0, 0.8, 0.5], dtype=dtype)
        means[:, 2] += depth
        parts = (means, torch.randn(n, 4, generator=g, dtype=dtype), torch.rand(n, 3, generator=g, dtype=dtype) * 0.08 + 0.02,
                 torch.rand(n, generator=g, dtype=dtype) * 0.9 + 0.05, torch.rand(n, 3, generator=g, dtype=dtype))
        return _G(*(p.clone().requires_grad_(requires_grad) for p in parts))

    def pinhole(width=32, height=24, f=30.0, w2c=None, name="cam"):
        K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
        return Camera(name, width, height, K, np.eye(4) if w2c is None else w2c)

import gsplat
from gifstream_engine.render import Gaussians, gsplat_backend, render, render_batch

res["gsplat"] = gsplat.__version__
res["engine_gsplat_available"] = gsplat_backend.gsplat_available()
NAMES = ("means", "quats", "scales", "opacities", "colors")


def sync():
    torch.cuda.synchronize()


def copy(g, device):
    return Gaussians(*(t.detach().to(device).clone().requires_grad_(True) for t in g.tensors()))


def dmax(a, b):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max()) if a.numel() else 0.0


def objective(out, w, mask):
    """Fixed random weights on everything the trainer and the compositing layer read: rgb, alpha, depth."""
    w_rgb, w_a, w_d = (x.to(out.rgb.device) for x in w)
    return (w_rgb * out.rgb).sum() + (w_a * out.alpha).sum() + 0.01 * (w_d * out.depth * mask.to(out.rgb.device)).sum()


def single(g, cam, background=None, gpu_reps=3):
    gen = torch.Generator().manual_seed(0)
    w = [torch.rand(cam.height, cam.width, c, generator=gen) for c in (3, 1, 1)]
    gc = copy(g, "cpu")
    t0 = time.perf_counter()
    c = render(gc, cam, background=background, backend="torch", track_means2d_grad=True)
    mask = (c.alpha.detach() > 0.5).float()
    objective(c, w, mask).backward()
    cpu_s = time.perf_counter() - t0
    times = []
    for _ in range(gpu_reps):  # the first also pays CUDA's warm-up
        gg = copy(g, "cuda")
        sync(); t0 = time.perf_counter()
        o = render(gg, cam, background=None if background is None else background.cuda(), backend="gsplat",
                   track_means2d_grad=True)
        objective(o, w, mask).backward()
        sync(); times.append(time.perf_counter() - t0)
    assert o.meta.backend == "gsplat"
    vc, vg = c.meta.visible, o.meta.visible.cpu()
    both = vc & vg
    inside = mask[..., 0].bool()
    r = {"gaussians": len(g), "image": [cam.width, cam.height], "background": background is not None,
         "forward_max_abs": {"rgb": dmax(c.rgb, o.rgb), "alpha": dmax(c.alpha, o.alpha),
                             "depth_where_alpha_gt_0.5": dmax(c.depth[inside], o.depth.cpu()[inside])},
         "forward_mean_abs_rgb": float((c.rgb.detach() - o.rgb.detach().cpu()).abs().mean()),
         "visible": {"cpu": int(vc.sum()), "gpu": int(vg.sum()), "disagree": int((vc != vg).sum())},
         "radii_mismatch": int((c.meta.radii != o.meta.radii.cpu()).any(-1).sum()),
         "radii_max_diff": int((c.meta.radii.long() - o.meta.radii.cpu().long()).abs().max()),
         "means2d_max_abs_visible": dmax(c.meta.means2d[both], o.meta.means2d.cpu()[both]),
         "depths_max_abs_visible": dmax(c.meta.depths[both], o.meta.depths.cpu()[both]),
         "grad_max_abs": {}, "grad_rel": {}}
    for n, a, b in zip(NAMES, gc.tensors(), gg.tensors()):
        r["grad_max_abs"][n] = dmax(a.grad, b.grad)
        r["grad_rel"][n] = r["grad_max_abs"][n] / max(float(a.grad.abs().max()), 1e-12)
    m2c, m2g = c.meta.means2d_grad()[both], o.meta.means2d_grad().cpu()[both]  # the densification statistic
    r["means2d_grad_rel"] = dmax(m2c, m2g) / max(float(m2c.abs().max()), 1e-12)
    r["seconds_fwd_bwd"] = {"cpu_torch": cpu_s, "gpu_gsplat_first": times[0], "gpu_gsplat_best": min(times[1:] or times)}
    # the tests' thresholds (tests/test_rasterizer*.py): 1e-3 on pixels, 1e-2 relative on gradients
    r["pass"] = (max(r["forward_max_abs"]["rgb"], r["forward_max_abs"]["alpha"]) < 1e-3
                 and max(r["grad_rel"].values()) < 1e-2 and r["means2d_grad_rel"] < 1e-2)
    return r


def batch(g, camera, windows, image_of):
    gen = torch.Generator().manual_seed(1)
    w = torch.rand(len(windows), windows[0].height, windows[0].width, 3, generator=gen)
    outs = {}
    for dev, backend in (("cpu", "torch"), ("cuda", "gsplat")):
        gd = copy(g, dev)
        rgb, alpha = render_batch(gd, image_of.to(dev), windows, background=torch.zeros(3, device=dev), backend=backend)
        ((w.to(dev) * rgb).sum() + alpha.sum()).backward()
        outs[dev] = (gd, rgb, alpha)
    (gc, rc, ac), (gg, rg, ag) = outs["cpu"], outs["cuda"]
    r = {"gaussians": len(g), "windows": len(windows), "forward_max_abs": {"rgb": dmax(rc, rg), "alpha": dmax(ac, ag)},
         "grad_rel": {}}
    for n, a, b in zip(NAMES, gc.tensors(), gg.tensors()):
        r["grad_rel"][n] = dmax(a.grad, b.grad) / max(float(a.grad.abs().max()), 1e-12)
    r["pass"] = max(r["forward_max_abs"].values()) < 1e-3 and max(r["grad_rel"].values()) < 1e-2
    return r


def guarded(name, fn):
    try:
        res["scenes"][name] = fn()
    except Exception as exc:
        res["scenes"][name] = {"pass": False, "error": f"{type(exc).__name__}: {str(exc)[:400]}"}
    print(name, json.dumps(res["scenes"][name]), flush=True)


def probe(name, fn):
    try:
        fn()
        torch.cuda.synchronize()
        res["probes"][name] = "ok"
    except Exception as exc:
        res["probes"][name] = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
    print("probe", name, "->", res["probes"][name], flush=True)


# tests/test_rasterizer.py::test_parity_with_gsplat's scene, here with backward too
guarded("20k_gaussians_128x96", lambda: single(random_gaussians(20000, seed=5), pinhole(128, 96, f=100.0)))
# tests/test_rasterizer_stages.py::test_stage3's scene, with a background
guarded("2k_gaussians_96x72_background", lambda: single(random_gaussians(2000, seed=5), pinhole(96, 72, f=80.0),
                                                        background=torch.tensor([0.1, 0.2, 0.3])))
cam = pinhole(96, 72, f=80.0)
wins = [cam.cropped(0, 0, 32, 24), cam.cropped(30, 20, 32, 24), cam.cropped(64, 48, 32, 24)]
guarded("render_batch_3_windows", lambda: batch(random_gaussians(3000, seed=6, depth=3.0), cam, wins,
                                                torch.randint(3, (3000,), generator=torch.Generator().manual_seed(2))))

small, scam = random_gaussians(500, seed=9), pinhole(64, 48, f=60.0)
probe("cuda_gaussians_cpu_background (render() moves the background to the Gaussians' device)",
      lambda: render(small.to("cuda"), scam, background=torch.zeros(3)))
probe("float64_gaussians_on_gsplat", lambda: render(Gaussians(*(t.double().cuda() for t in small.tensors())), scam))
probe("zero_gaussians_on_gsplat",
      lambda: render(small.select(torch.zeros(len(small), dtype=torch.bool)).to("cuda"), scam,
                     background=torch.zeros(3, device="cuda")))


def throughput():
    g, c = random_gaussians(200_000, seed=11, depth=6.0), pinhole(640, 480, f=500.0)
    best = []
    for _ in range(3):
        gg = copy(g, "cuda")
        sync(); t0 = time.perf_counter()
        out = render(gg, c, background=torch.zeros(3, device="cuda"), track_means2d_grad=True)
        (out.rgb.sum() + out.alpha.sum()).backward()
        sync(); best.append(time.perf_counter() - t0)
    return {"gaussians": 200_000, "image": [640, 480], "gpu_fwd_bwd_ms_best": 1000 * min(best[1:])}


try:
    res["throughput"] = throughput()
except Exception as exc:
    res["throughput"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
res["pass"] = all(s.get("pass") for s in res["scenes"].values())
with open(os.path.join(OUT, "parts", "parity.json"), "w") as f:
    json.dump(res, f, indent=1)
print("PARITY", "PASS" if res["pass"] else "FAIL")
for name, s in res["scenes"].items():
    if "error" in s:
        print(f"  {name}: ERROR {s['error']}")
    else:
        print(f"  {name}: forward max|d| {s['forward_max_abs']}  grad rel {({k: f'{v:.1e}' for k, v in s['grad_rel'].items()})}"
              f"  means2d grad rel {s['means2d_grad_rel']:.1e}")
PY

cat > "$WORK/py/make_capture.py" <<'PY'
"""A Blender-free capture in the Panoptic layout (train_meta.json, test_meta.json, ims/, init_pt_cld.npz), for a
machine without Blender: a textured wall and floor, a pillar, and a ball crossing the scene, rendered with the
engine's own CPU rasteriser from the embedded capture's camera arc (capture/synth.py synth_rig), 6 cameras
(cam00 held out as the test view), 96x72, FALLBACK_FRAMES frames (default 8). The point cloud is frame 0's."""
import json, os, sys
import numpy as np
import torch

from gifstream_engine.capture.synth import SynthConfig, synth_rig
from gifstream_engine.capture.camera import Camera
from gifstream_engine.imageio import write_png
from gifstream_engine.render import Gaussians, render

root = sys.argv[1]
T, W, H, NC = int(os.environ.get("FALLBACK_FRAMES", "8")), 96, 72, 6
rng = np.random.default_rng(0)
rig = synth_rig(SynthConfig(num_cameras=NC, num_frames=T, width=W, height=H))


def plane(centre, u, v, normal_axis, half_u, half_v, spacing, palette):
    us, vs = np.arange(-half_u, half_u + 1e-9, spacing), np.arange(-half_v, half_v + 1e-9, spacing)
    uu, vv = (a.ravel() for a in np.meshgrid(us, vs, indexing="ij"))
    pts = np.asarray(centre) + uu[:, None] * np.asarray(u) + vv[:, None] * np.asarray(v)
    checker = ((np.floor(uu / (4 * spacing)) + np.floor(vv / (4 * spacing))) % 2).astype(int)
    cols = np.asarray(palette, float)[checker] + rng.normal(0, 0.06, (len(pts), 3))
    scales = np.full((len(pts), 3), 0.6 * spacing)
    scales[:, normal_axis] = 0.15 * spacing
    return pts, np.clip(cols, 0, 1), scales


def sphere(n, radius):
    i = np.arange(n) + 0.5
    phi, theta = np.arccos(1 - 2 * i / n), np.pi * (1 + 5 ** 0.5) * i
    unit = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)
    band = ((np.floor(phi / 0.45) + np.floor((theta % (2 * np.pi)) / 0.8)) % 2).astype(int)
    return radius * unit, np.array([[0.9, 0.15, 0.1], [0.95, 0.95, 0.9]])[band]


walls = [plane((0, 2.2, 1.6), (1, 0, 0), (0, 0, 1), 1, 4.0, 1.8, 0.08, [(0.75, 0.7, 0.6), (0.3, 0.35, 0.5)]),
         plane((0, 0.3, 0.0), (1, 0, 0), (0, 1, 0), 2, 4.0, 1.9, 0.08, [(0.55, 0.45, 0.35), (0.2, 0.2, 0.2)])]
ang, height = np.meshgrid(np.linspace(0, 2 * np.pi, 32, endpoint=False), np.linspace(0.0, 1.5, 30), indexing="ij")
pillar = np.stack([1.3 + 0.25 * np.cos(ang.ravel()), 1.0 + 0.25 * np.sin(ang.ravel()), height.ravel()], 1)
static_pts = np.concatenate([w[0] for w in walls] + [pillar])
static_cols = np.concatenate([w[1] for w in walls] + [np.tile([0.2, 0.6, 0.3], (len(pillar), 1)) + rng.normal(0, 0.05, (len(pillar), 3))])
static_scales = np.concatenate([w[2] for w in walls] + [np.full((len(pillar), 3), 0.04)])
ball, ball_cols = sphere(500, 0.3)


def ball_centre(t):
    s = t / max(T - 1, 1)
    return np.array([-1.2 + 2.4 * s, 0.0, 0.8 + 0.3 * np.sin(np.pi * s)])


def gaussians_at(t):
    pts = np.concatenate([static_pts, ball + ball_centre(t)])
    cols = np.clip(np.concatenate([static_cols, ball_cols]), 0, 1)
    scales = np.concatenate([static_scales, np.full((len(ball), 3), 0.05)])
    n = len(pts)
    quats = np.tile([1.0, 0, 0, 0], (n, 1))
    f = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    return Gaussians(f(pts), f(quats), f(scales), f(np.full(n, 0.95)), f(cols)), pts, cols


cams = []
for i, spec in enumerate(rig):
    K = np.array([[spec["focal_px"], 0, W / 2], [0, spec["focal_px"], H / 2], [0, 0, 1.0]])
    cams.append(Camera(f"cam{i:02d}", W, H, K, np.linalg.inv(np.asarray(spec["c2w"]))))
for t in range(T):
    g, pts, cols = gaussians_at(t)
    if t == 0:
        pick = rng.choice(len(pts), 2500, replace=False)
        data = np.concatenate([pts[pick] + rng.normal(0, 0.005, (2500, 3)), cols[pick], np.ones((2500, 1))], 1)
        os.makedirs(root, exist_ok=True)
        np.savez(os.path.join(root, "init_pt_cld.npz"), data=data)
    with torch.no_grad():
        for i, cam in enumerate(cams):
            rgb = render(g, cam, background=torch.zeros(3), backend="torch").rgb.clamp(0, 1).numpy()
            os.makedirs(os.path.join(root, "ims", str(i)), exist_ok=True)
            write_png(os.path.join(root, "ims", str(i), f"{t:06d}.png"), rgb)
for split, ids in (("train", list(range(1, NC))), ("test", [0])):
    meta = {"w": W, "h": H, "k": [[cams[i].K.tolist() for i in ids] for _ in range(T)],
            "w2c": [[cams[i].w2c.tolist() for i in ids] for _ in range(T)],
            "fn": [[f"{i}/{t:06d}.png" for i in ids] for t in range(T)], "cam_id": [ids for _ in range(T)]}
    with open(os.path.join(root, f"{split}_meta.json"), "w") as f:
        json.dump(meta, f)
print(f"wrote {root}: {NC} cameras x {T} frames at {W}x{H}, {len(static_pts) + len(ball)} Gaussians")
PY

cat > "$WORK/py/train_check.py" <<'PY'
"""(c) `gifstream train CAP --out RUN --preset preview --device cuda --steps N --set ...` as its functions run it
(cli.cmd_train -> train.pipeline.train_and_evaluate = Training.run + evaluate_and_report), with every step's info
recorded (phase, psnr, anchors, grown, pruned), which rasteriser the trainer called, and a restore of the CUDA
checkpoint onto CUDA."""
import json, os, statistics, time
import torch

from gifstream_engine.capture import load_capture
from gifstream_engine.render import api
from gifstream_engine.train.config import load_config
from gifstream_engine.train.pipeline import evaluate_and_report
from gifstream_engine.train.driver import Training
from gifstream_engine.train.gop_data import load_gop_frames
from gifstream_engine.train.trainer import GopTrainer

OUT, RUN, CAP = os.environ["OUT"], os.environ["RUN"], os.environ["CAP"]
steps = int(os.environ["STEPS"])
overrides = [f"train.steps={steps}", "train.device=cuda", "train.densify_every=50", "train.checkpoint_every=100",
             "train.log_every=25"] + json.loads(os.environ.get("EXTRA_SETS", "[]"))
res = {"capture": CAP, "run": RUN, "preset": "preview", "overrides": overrides}
part = os.path.join(OUT, "parts", "train.json")


def save():
    with open(part, "w") as f:
        json.dump(res, f, indent=1)


calls = {"gsplat": 0, "gsplat_windows": 0, "torch": 0}
real_gsplat, real_gsplat_batch, real_rasterize = api.render_gsplat, api.render_gsplat_batch, api.rasterize


def counted_gsplat(*a, **k):
    calls["gsplat"] += 1
    return real_gsplat(*a, **k)


def counted_gsplat_batch(*a, **k):  # a step's windows: one call for all of them
    calls["gsplat_windows"] += 1
    return real_gsplat_batch(*a, **k)


def counted_torch(*a, **k):
    calls["torch"] += 1
    return real_rasterize(*a, **k)


api.render_gsplat, api.render_gsplat_batch, api.rasterize = counted_gsplat, counted_gsplat_batch, counted_torch
logs = []


def log(msg):
    print(msg, flush=True)
    logs.append(str(msg))


class Recorder:
    """Wraps the run's step reporter: every step's info and wall time."""

    def __init__(self, inner):
        self.inner, self.rows = inner, []

    def step(self, gop, num_gops, step, total, info, eta):
        self.rows.append({"step": step, "t": time.perf_counter(), **{k: info[k] for k in
                          ("phase", "loss", "psnr", "anchors", "gaussians", "grown", "pruned", "kbytes")}})
        self.inner.step(gop, num_gops, step, total, info, eta)

    def close(self):
        self.inner.close()


cfg = load_config(["preview"], overrides)
t0 = time.perf_counter()
capture = load_capture(CAP, downscale=cfg.train.downscale)
training = Training(capture, cfg, RUN, log=log)
rec = training.reporter = Recorder(training.reporter)
torch.cuda.reset_peak_memory_stats()
try:
    res["status"] = training.run(overwrite=True)
except Exception as exc:
    res["status"] = "error"
    res["error"] = f"{type(exc).__name__}: {str(exc)[:600]}"
res["seconds_total_incl_seeding"] = time.perf_counter() - t0
res["rasteriser_calls_during_training"] = dict(calls)
res["peak_cuda_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
res["initial_anchors_log"] = next((l for l in logs if l.startswith("initial anchors")), None)
rows = rec.rows
if rows:
    walls = [r["t"] for r in rows]
    dts = [b - a for a, b in zip(walls, walls[1:])]
    steady = dts[9:] or dts or [float("nan")]
    by_phase = {}
    for r, dt in zip(rows[1:], dts):
        by_phase.setdefault(r["phase"], []).append(dt)
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    res |= {
        "steps_done": rows[-1]["step"],
        "steps_per_s_median": 1.0 / statistics.median(steady),
        "steps_per_s_mean": (len(dts) / (walls[-1] - walls[0])) if len(dts) else None,
        "step_ms_median_first_20": 1000 * statistics.median(dts[:19]) if dts else None,
        "step_ms_median_by_phase": {k: 1000 * statistics.median(v) for k, v in by_phase.items()},
        "train_psnr_first_25_steps": mean([r["psnr"] for r in rows[:25]]),
        "train_psnr_last_25_steps": mean([r["psnr"] for r in rows[-25:]]),
        "anchors_after_step_1": rows[0]["anchors"], "anchors_max": max(r["anchors"] for r in rows),
        "anchors_final": rows[-1]["anchors"], "grown_total": sum(r["grown"] for r in rows),
        "pruned_total": sum(r["pruned"] for r in rows),
        "densify_steps": [r["step"] - 1 for r in rows if r["grown"] or r["pruned"]],
        "loss_first": rows[0]["loss"], "loss_last": rows[-1]["loss"],
    }
    res["anchors_grew"] = res["grown_total"] > 0
    res["trained_on_gsplat"] = calls["gsplat"] > 0 and calls["torch"] == 0
save()
if res["status"] == "finished":
    try:
        ev = evaluate_and_report(capture, RUN, log)  # RUN/eval.json, on the GPU (render.device.run_device)
        res["eval"] = {k: ev.get(k) for k in ("test_psnr", "test_ssim", "train_psnr", "dynamic_psnr", "static_psnr",
                                                 "frozen_psnr", "num_anchors", "dynamic_fraction", "train_seconds",
                                                 "render_fps", "frames")}
        res["steps_per_s_from_train_seconds"] = steps / ev["train_seconds"] if ev.get("train_seconds") else None
    except Exception as exc:
        res["eval_error"] = f"{type(exc).__name__}: {str(exc)[:600]}"
    save()
    try:  # the CUDA checkpoint (Adam state, growth statistics, CPU RNG) restored onto CUDA: 3 more steps
        gop = capture.gops(cfg.train.gop_length)[0]
        tr = GopTrainer.restore(training.folder.checkpoint(0), cfg, load_gop_frames(gop), torch.device("cuda"))
        infos = [tr.train_step() for _ in range(3)]
        res["restore_on_cuda"] = {"ok": True, "step": tr.step, "psnr": infos[-1]["psnr"],
                                  "params_on": str(tr.model.feat.device)}
    except Exception as exc:
        res["restore_on_cuda"] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:400]}"}
    save()
print("TRAIN", json.dumps({k: res.get(k) for k in ("status", "steps_done", "steps_per_s_median", "anchors_after_step_1",
                                                  "anchors_max", "grown_total", "pruned_total", "trained_on_gsplat",
                                                  "rasteriser_calls_during_training", "error")}))
print("EVAL", json.dumps(res.get("eval")))
raise SystemExit(0 if res["status"] == "finished" else 1)
PY

cat > "$WORK/py/codec_check.py" <<'PY'
"""(d) the bitstream of the GPU-trained run: its CPU eval against the run's own eval, and its decoded frames
rendered on the GPU (gsplat) against the CPU (PyTorch rasteriser)."""
import json, os
import torch

from gifstream_engine.capture import load_capture
from gifstream_engine.eval.metrics import psnr
from gifstream_engine.render import render
from gifstream_engine.sources import open_sequence

OUT, RUN, WORK, CAP = os.environ["OUT"], os.environ["RUN"], os.environ["WORK"], os.environ["CAP"]
part = os.path.join(OUT, "parts", "codec.json")
res = json.load(open(part)) if os.path.exists(part) else {}
run_eval = json.load(open(os.path.join(RUN, "eval.json")))
bit_eval = json.load(open(os.path.join(OUT, "parts", "eval_bitstream_cpu.json")))
enc = json.load(open(os.path.join(OUT, "parts", "encode_gpu_visible.json")))
res["bytes"], res["mbps"] = enc.get("bytes"), enc.get("mbps")
for key in ("test_psnr", "dynamic_psnr", "static_psnr", "test_ssim", "train_psnr"):
    a, b = run_eval.get(key), bit_eval.get(key)
    res[key] = {"run_eval_json": a, "bitstream_eval_cpu": b, "diff": None if a is None or b is None else b - a}
res["psnr_equal"] = abs(res["test_psnr"]["diff"]) < 1e-3 if res["test_psnr"]["diff"] is not None else False
res["decode_fps_cpu"] = bit_eval.get("decode_fps")
gifs = os.path.join(WORK, "run_gpu.gifs")
seq, start, stop = open_sequence(gifs)  # decoded on the CPU
capture = load_capture(CAP, downscale=seq.train_downscale)
cpu_p, gpu_p, worst = [], [], 0.0
with torch.no_grad():
    for c in capture.split_indices("test"):
        cam = capture.cameras[c]
        for t in range(start, stop):
            g = seq.gaussians(t, cam)
            target = torch.from_numpy(capture.frame(c, t))
            a = render(g, cam, background=torch.zeros(3))  # CPU, PyTorch rasteriser
            b = render(g.to("cuda"), cam, background=torch.zeros(3, device="cuda"))  # CUDA, gsplat
            cpu_p.append(psnr(a.rgb, target))
            gpu_p.append(psnr(b.rgb.cpu(), target))
            worst = max(worst, float((a.rgb - b.rgb.cpu()).abs().max()))
res["decoded_rendered"] = {"frames": len(cpu_p), "psnr_cpu_torch": sum(cpu_p) / len(cpu_p),
                           "psnr_gpu_gsplat": sum(gpu_p) / len(gpu_p), "max_abs_pixel_diff": worst,
                           "backend_gpu": b.meta.backend}
res["gpu_render_of_bitstream_matches_cpu"] = abs(res["decoded_rendered"]["psnr_gpu_gsplat"] - res["decoded_rendered"]["psnr_cpu_torch"]) < 0.01
with open(part, "w") as f:
    json.dump(res, f, indent=1)
print("CODEC", json.dumps({"bytes": res["bytes"], "test_psnr": res["test_psnr"], "psnr_equal": res["psnr_equal"],
                           "decoded_rendered": res["decoded_rendered"]}))
PY

cat > "$WORK/py/resume_cpu.py" <<'PY'
"""The GPU-trained checkpoint continued on a machine without CUDA (CUDA_VISIBLE_DEVICES=''): 2 trainer steps."""
import json, os, subprocess
import torch

from gifstream_engine.capture import load_capture
from gifstream_engine.train.run_folder import RunFolder
from gifstream_engine.train.gop_data import load_gop_frames
from gifstream_engine.train.trainer import GopTrainer

RUN, CAP = os.environ["RUN"], os.environ["CAP"]
out = {"cuda_visible": torch.cuda.is_available()}
try:
    folder = RunFolder(RUN)
    cfg = folder.read_config()
    capture = load_capture(CAP, downscale=cfg.train.downscale)
    gop = capture.gops(cfg.train.gop_length)[0]
    tr = GopTrainer.restore(folder.checkpoint(0), cfg, load_gop_frames(gop), torch.device("cpu"))
    infos = [tr.train_step() for _ in range(2)]
    out |= {"ok": True, "saved_train_device": cfg.train.device, "psnr": infos[-1]["psnr"]}
except Exception as exc:
    out |= {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:400]}"}
print("RESUME_ON_CPU", json.dumps(out))
subprocess.run(["bash", "-c", 'jput codec resume_gpu_checkpoint_on_cpu "$0"', json.dumps(out)], check=False)
PY

cat > "$WORK/py/probe_deterministic.py" <<'PY'
"""A CPU GopTrainer switches torch's deterministic mode on for the whole process (trainer.py:80-82) and nothing
switches it off; then a CUDA trainer in the same process (pytest on a GPU host: tests/test_trainer.py builds CPU
trainers, then test_multi_gop_training_warm_starts_later_gops trains with device auto)."""
import json, os, subprocess
import torch

from gifstream_engine.capture import load_capture
from gifstream_engine.train.run_folder import RunFolder
from gifstream_engine.train.gop_data import load_gop_frames
from gifstream_engine.train.trainer import GopTrainer

RUN, CAP = os.environ["RUN"], os.environ["CAP"]
folder = RunFolder(RUN)
cfg = folder.read_config()
capture = load_capture(CAP, downscale=cfg.train.downscale)
data = load_gop_frames(capture.gops(cfg.train.gop_length)[0])
out = {"CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
       "deterministic_before": torch.are_deterministic_algorithms_enabled()}
try:
    GopTrainer.restore(folder.checkpoint(0), cfg, data, torch.device("cpu"))
    out["deterministic_after_cpu_trainer"] = torch.are_deterministic_algorithms_enabled()
    GopTrainer.restore(folder.checkpoint(0), cfg, data, torch.device("cuda")).train_step()
    out["cuda_step_after_cpu_trainer"] = "ok"
except Exception as exc:
    out["cuda_step_after_cpu_trainer"] = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
print("DETERMINISTIC_PROBE", json.dumps(out))
subprocess.run(["bash", "-c", 'jput codec deterministic_mode_leak "$0"', json.dumps(out)], check=False)
PY

cat > "$WORK/py/cpu_baseline.py" <<'PY'
"""(e) the first CPU_BASELINE_STEPS steps of the same schedule on the CPU (CUDA hidden), as `--device cpu` trains."""
import json, os, statistics, time
import torch

from gifstream_engine.capture import load_capture
from gifstream_engine.train.config import load_config
from gifstream_engine.train.driver import gop_seed
from gifstream_engine.train.gop_data import load_gop_frames
from gifstream_engine.train.seeding import initial_model
from gifstream_engine.train.trainer import GopTrainer

OUT, CAP = os.environ["OUT"], os.environ["CAP"]
n = int(os.environ["CPU_BASELINE_STEPS"])
overrides = [f"train.steps={os.environ['STEPS']}", "train.device=cpu", "train.densify_every=50"] + \
    json.loads(os.environ.get("EXTRA_SETS", "[]"))
cfg = load_config(["preview"], overrides)
capture = load_capture(CAP, downscale=cfg.train.downscale)
gop = capture.gops(cfg.train.gop_length)[0]
torch.manual_seed(gop_seed(cfg.train.seed, 0))
model = initial_model(gop, cfg, lambda *_: None)
tr = GopTrainer(cfg, load_gop_frames(gop), model, torch.device("cpu"))
dts = []
for _ in range(n):
    t0 = time.perf_counter()
    tr.train_step()
    dts.append(time.perf_counter() - t0)
out = {"steps": n, "threads": torch.get_num_threads(), "step_ms_median": 1000 * statistics.median(dts[1:] or dts)}
with open(os.path.join(OUT, "parts", "cpu_baseline.json"), "w") as f:
    json.dump(out, f, indent=1)
print("CPU_BASELINE", json.dumps(out))
PY

cat > "$WORK/py/merge.py" <<'PY'
"""(e) every stage's numbers into $OUT/gpu_check.json, with a verdict."""
import glob, json, os, subprocess

OUT, REPO = os.environ["OUT"], os.environ["REPO"]
parts = {}
for path in sorted(glob.glob(os.path.join(OUT, "parts", "*.json"))):
    try:
        parts[os.path.basename(path)[:-5]] = json.load(open(path))
    except Exception as exc:
        parts[os.path.basename(path)[:-5]] = {"unreadable": str(exc)}
stages = {}
tsv = os.path.join(OUT, "parts", "stages.tsv")
if os.path.exists(tsv):
    for line in open(tsv):
        name, rc, sec = line.rstrip("\n").split("\t")
        stages[name] = {"rc": rc, "seconds": int(sec)}
try:
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
except Exception:
    commit = None
train, codec, parity = parts.get("train", {}), parts.get("codec", {}), parts.get("parity", {})
cpu = parts.get("cpu_baseline", {})


def get(d, *keys):
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


verdict = {
    "install_ok": get(parts, "install", "engine_import_ok"),
    "engine_installed_with_pip_install_e": get(parts, "install", "engine_install_rc") == 0,
    "gsplat_compiled": get(parts, "setup_gpu", "loaded"),
    "gsplat_compile_seconds": get(parts, "setup_gpu", "seconds"),
    "gpu_tests": get(parts, "gpu_tests", "summary"),
    "parity_pass": parity.get("pass"),
    "trained_on_gsplat": train.get("trained_on_gsplat"),
    "training_status": train.get("status"),
    "steps_per_s": train.get("steps_per_s_median"),
    "test_psnr": get(train, "eval", "test_psnr"),
    "anchors_grew": train.get("anchors_grew"),
    "bitstream_psnr_equals_run_psnr": codec.get("psnr_equal"),
    "encode_bytes_equal_gpu_vs_cpu": codec.get("encode_bytes_equal_gpu_visible_vs_cpu_only"),
    "gpu_render_of_bitstream_matches_cpu": codec.get("gpu_render_of_bitstream_matches_cpu"),
    "resume_gpu_checkpoint_on_cpu": get(codec, "resume_gpu_checkpoint_on_cpu", "ok"),
    "restore_on_cuda": get(train, "restore_on_cuda", "ok"),
}
if cpu.get("step_ms_median") and train.get("step_ms_median_first_20"):
    verdict["gpu_speedup_first_20_steps"] = cpu["step_ms_median"] / train["step_ms_median_first_20"]
doc = {"script": "gpu_check.sh", "repo_commit": commit, "stages": stages, "verdict": verdict, **parts}
with open(os.path.join(OUT, "gpu_check.json"), "w") as f:
    json.dump(doc, f, indent=1)
print("\n==================== gpu_check summary ====================")
for k, v in verdict.items():
    print(f"  {k:40s} {v}")
print(f"  {'stages':40s} " + ", ".join(f"{k}:{v['rc']}/{v['seconds']}s" for k, v in stages.items()))
print(f"numbers: {os.path.join(OUT, 'gpu_check.json')}   log: {os.path.join(OUT, 'gpu_check.log')}")
PY

# ====================================================================== run
echo "gpu_check: repo $REPO, work $WORK, out $OUT, python $SYSPY, budget ${BUDGET_S}s, MAX_JOBS=$MAX_JOBS"
stage preflight 30 "$WORK/stages/0_preflight.sh"
stage a_install 200 "$WORK/stages/a1_install.sh"; install_rc=$?
if (( install_rc == 0 )); then
    stage a_setup_gpu 420 "$WORK/stages/a2_setup_gpu.sh"
    # (b) parity
    cat > "$WORK/stages/b_parity.sh" <<'SH'
source "$WORK/env.sh" && "$VPY" "$WORK/py/parity.py"
SH
    stage b_parity 120 "$WORK/stages/b_parity.sh"
    # (c) capture, then training on CUDA
    stage c_capture 150 "$WORK/stages/c1_capture.sh"; cap_rc=$?
    if (( cap_rc == 0 )); then
        cat > "$WORK/stages/c_train.sh" <<'SH'
source "$WORK/env.sh"
export CAP=$(cat "$WORK/capture_path")
export EXTRA_SETS=$("$SYSPY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])).get("extra_sets", [])))' "$OUT/parts/capture.json")
s=$STEPS
if (( ${LEFT_S:-999} < 110 && s > 150 )); then s=150; echo "little time left: $s steps instead of $STEPS"; fi
STEPS=$s "$VPY" "$WORK/py/train_check.py"
SH
        export LEFT_S=$(left)
        stage c_train 200 "$WORK/stages/c_train.sh"; train_rc=$?
        # (d) encode on the GPU machine, decode/eval on the CPU
        if (( train_rc == 0 )); then stage d_codec 120 "$WORK/stages/d_codec.sh"; fi
        stage b_gpu_tests 180 "$WORK/stages/b2_gpu_tests.sh"
        # CPU speed of the same schedule's first steps
        if (( CPU_BASELINE_STEPS > 0 )); then
            cat > "$WORK/stages/e_cpu.sh" <<'SH'
source "$WORK/env.sh"
export CAP=$(cat "$WORK/capture_path")
export EXTRA_SETS=$("$SYSPY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])).get("extra_sets", [])))' "$OUT/parts/capture.json")
CUDA_VISIBLE_DEVICES= "$VPY" "$WORK/py/cpu_baseline.py"
SH
            stage e_cpu_baseline 60 "$WORK/stages/e_cpu.sh"
        fi
    fi
fi
echo "total $((SECONDS - START)) s"
"$SYSPY" "$WORK/py/merge.py"
sleep 1  # let tee flush the log
