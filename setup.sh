#!/usr/bin/env bash
# Creates .venv and installs the engine with its dependencies, CPU-safe:
# torch first (the CPU build on local disk), gsplat without its dependencies, then everything else (with the test
# extra: pytest, bpy, ray for the parallel-training tests, openjd-cli for the farm template's). These pins are for
# this .venv and CI only; pyproject.toml declares ranges, so an install elsewhere keeps that machine's CUDA torch.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q --no-deps gsplat==1.5.3
.venv/bin/pip install -q -e ".[test]"
.venv/bin/python -c "import torch, gsplat, bpy, pycolmap, constriction, av, ray, OpenEXR; print('environment ready: torch', torch.__version__, '| bpy', bpy.app.version_string, '| ray', ray.__version__)"
.venv/bin/openjd --help >/dev/null
