import importlib
import os
import shutil
import sys
import types

import numpy as np
import pytest

from gifstream_engine.capture.synth import SynthConfig, render_synthetic_capture

# raw Cycles noise: at 8 samples and 96x72 the denoiser smooths the ball's checker away and SfM then finds none of
# the moving objects' points, which the seeding tests need (the demo's 160x120 at 16 samples keeps them)
TINY = SynthConfig(num_cameras=6, num_frames=6, width=96, height=72, samples=8, denoise=False)


@pytest.fixture(scope="session")
def synth_capture(tmp_path_factory) -> str:
    """A tiny capture rendered once with Cycles (N3DV layout). Tests copy it before changing it."""
    out = str(tmp_path_factory.mktemp("synth") / "capture")
    return render_synthetic_capture(out, TINY, log=lambda *_: None)


@pytest.fixture
def synth_copy(synth_capture, tmp_path) -> str:
    dst = str(tmp_path / "capture")
    shutil.copytree(synth_capture, dst)
    return dst


@pytest.fixture(scope="session")
def synth_loaded(synth_capture):
    from gifstream_engine.capture import load_capture

    return load_capture(synth_capture)


def random_gaussians(n, seed=0, depth=4.0, requires_grad=False, dtype=None):
    import torch

    from gifstream_engine.render import Gaussians

    g = torch.Generator().manual_seed(seed)
    dtype = dtype or torch.float32
    means = torch.randn(n, 3, generator=g, dtype=dtype) * torch.tensor([1.0, 0.8, 0.5], dtype=dtype)
    means[:, 2] += depth
    parts = (
        means,
        torch.randn(n, 4, generator=g, dtype=dtype),
        torch.rand(n, 3, generator=g, dtype=dtype) * 0.08 + 0.02,
        torch.rand(n, generator=g, dtype=dtype) * 0.9 + 0.05,
        torch.rand(n, 3, generator=g, dtype=dtype),
    )
    return Gaussians(*(p.clone().requires_grad_(requires_grad) for p in parts))


def pinhole(width=32, height=24, f=30.0, w2c=None, name="cam"):
    from gifstream_engine.capture.camera import Camera

    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    return Camera(name, width, height, K, np.eye(4) if w2c is None else w2c)


def addon_module(name: str):
    """A module of the add-on's parts without bpy (e.g. "core.engine_client", "scene.colour"), imported without the
    add-on's __init__ (which registers with Blender)."""
    package = "gifstream_addon_nobpy"
    if package not in sys.modules:
        module = types.ModuleType(package)
        module.__path__ = [os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "blender_addon")]
        sys.modules[package] = module
    return importlib.import_module(f"{package}.{name}")
