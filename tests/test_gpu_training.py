"""What a lent GPU checks (marked `gpu`, skipped where torch sees no CUDA device): the two rasterisers on the same
CUDA device, a short CUDA training evaluated and encoded there, and a CUDA run resumed on the CPU.
Run them with `pytest -m gpu tests/`; tools/gpu_check.sh runs them as one of its stages."""

import os

import numpy as np
import pytest
import torch

from conftest import pinhole, random_gaussians

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (and gsplat's kernels)")]

FAST = ["train.steps=40", "train.seed_frames=2", "train.max_anchors=800", "train.log_every=1000",
        "train.densify_every=10", "train.checkpoint_every=10"]


@pytest.fixture
def gpu_capture(request) -> str:
    """$GIFSTREAM_TEST_CAPTURE (a capture folder: what tools/gpu_check.sh passes on a machine without Blender), else the
    tests' tiny capture rendered with Blender."""
    return os.environ.get("GIFSTREAM_TEST_CAPTURE") or request.getfixturevalue("synth_capture")


def _on_cuda(g):
    return type(g)(*(t.detach().cuda().requires_grad_(True) for t in g.tensors()))


def test_gsplat_and_the_pytorch_rasteriser_agree_on_one_cuda_device():
    from gifstream_engine.render import render, render_batch

    camera = pinhole(128, 96, f=100.0)
    g = random_gaussians(5000, seed=5)
    outs, grads = [], []
    for backend in ("torch", "gsplat"):
        gaussians = _on_cuda(g)
        out = render(gaussians, camera, background=torch.tensor([0.1, 0.2, 0.3]), backend=backend,
                     track_means2d_grad=True)
        assert out.meta.backend == backend and out.rgb.device.type == "cuda"
        weights = torch.rand(out.rgb.shape, generator=torch.Generator().manual_seed(1)).cuda()
        ((weights * out.rgb).sum() + out.alpha.sum()).backward()
        outs.append(out)
        grads.append([t.grad for t in gaussians.tensors()] + [out.meta.means2d_grad()])
    torch_out, gsplat_out = outs
    assert (torch_out.rgb - gsplat_out.rgb).abs().max() < 1e-3
    assert (torch_out.alpha - gsplat_out.alpha).abs().max() < 1e-3
    assert torch.equal(torch_out.meta.radii.int(), gsplat_out.meta.radii.int())
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-2, atol=1e-3)
    windows = [camera.cropped(0, 0, 32, 24), camera.cropped(40, 30, 32, 24), camera.cropped(90, 70, 32, 24)]
    image_of = torch.randint(3, (len(g),), generator=torch.Generator().manual_seed(0)).cuda()
    batches = [render_batch(_on_cuda(g), image_of, windows, torch.zeros(3), backend=b) for b in ("torch", "gsplat")]
    assert (batches[0][0] - batches[1][0]).abs().max() < 1e-3


def test_a_short_cuda_training_evaluates_and_encodes_on_the_gpu(gpu_capture, tmp_path):
    from gifstream_engine.capture import load_capture
    from gifstream_engine.codec.bitstream import encode_run
    from gifstream_engine.eval.evaluate import evaluate
    from gifstream_engine.eval.placement import _gop_to
    from gifstream_engine.render.device import run_device
    from gifstream_engine.train.config import load_config
    from gifstream_engine.train.driver import Training
    from gifstream_engine.train.run_folder import RunFolder

    capture = load_capture(gpu_capture)
    cfg = load_config(["preview"], FAST + ["train.device=cuda"])
    out = str(tmp_path / "run")
    assert Training(capture, cfg, out, log=print).run() == "finished"
    run = RunFolder(out).load()
    assert run_device(run) == torch.device("cuda")
    result = evaluate(run, capture)
    assert np.isfinite(result["test_psnr"]) and result["test_psnr"] > 10
    cpu_bytes = tmp_path / "cpu.gifs"
    encode_run(run, str(cpu_bytes), run.rig)
    for gop in run.gops:  # the models on the GPU: the coder's integer path is the same
        _gop_to(gop, torch.device("cuda"))
    encode_run(run, str(tmp_path / "gpu.gifs"), run.rig)
    assert cpu_bytes.read_bytes() == (tmp_path / "gpu.gifs").read_bytes()


def test_a_cuda_run_resumes_on_the_cpu(gpu_capture, tmp_path):
    from gifstream_engine.capture import load_capture
    from gifstream_engine.train.config import load_config
    from gifstream_engine.train.driver import Training
    from gifstream_engine.train.run_folder import RunFolder

    capture = load_capture(gpu_capture)
    out = str(tmp_path / "run")
    first = Training(capture, load_config(["preview"], FAST + ["train.device=cuda"]), out, log=print)
    first.step_callbacks.append(lambda done: done.step == 20 and first.request_stop())
    assert first.run() == "cancelled"
    second = Training(capture, load_config(["preview"], FAST + ["train.device=cpu"]), out, log=print)
    assert second.run(resume=True) == "finished"
    assert RunFolder(out).status() == "finished"
