"""Host-device synchronisations of a training step on the CUDA path, counted on the CPU.

A `TorchFunctionMode` sees every torch call of a step; the calls that make a CUDA device wait for the host to read
back (`.item()`, `.tolist()`, `.cpu()`, `.numpy()`, `nonzero`, a boolean mask as an index, `bool()`/`int()`/`float()`
of a tensor, `repeat_interleave` without its output size, `unique`, `masked_select`) are counted by the engine file
that made them. Work that stays on the host by design is not a synchronisation there: the step's generator draws
(`GopTrainer._draw`, a CPU generator), the window sampler (`MotionPatchSampler.sample`, CPU masks) and Adam's step
counters (CPU tensors); neither is what happens inside gsplat (here a stand-in made of the PyTorch rasteriser).
"""

import collections
import traceback

import pytest
import torch
from torch.overrides import TorchFunctionMode

from gifstream_engine.render import api, gsplat_backend
from test_gpu_training import gpu_capture  # noqa: F401 - a fixture
from test_rasterizer import _gsplat_batch_stand_in, _gsplat_stand_in

T = torch.Tensor
READ_BACK = {T.item, T.tolist, T.cpu, T.numpy, T.nonzero, torch.nonzero, T.__bool__, T.__int__, T.__float__,
             T.__index__, torch.masked_select, T.masked_select, torch.unique, T.unique, torch.argwhere}
HOST_SIDE = ("_draw", "sample")  # functions whose tensors live on the host (see the module's docstring)


def _is_read_back(func, args, kwargs) -> bool:
    if func in READ_BACK:
        return True
    if func in (T.__getitem__, T.__setitem__):
        index = args[1] if isinstance(args[1], tuple) else (args[1],)
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index)
    if func in (torch.repeat_interleave, T.repeat_interleave):
        repeats = args[1] if len(args) > 1 else kwargs.get("repeats")
        return isinstance(repeats, torch.Tensor) and kwargs.get("output_size") is None
    return False


class SyncCounter(TorchFunctionMode):
    """Read-backs of device tensors during the block, by the engine file (and line) that made them."""

    def __init__(self):
        super().__init__()
        self.sites = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _is_read_back(func, args, kwargs):
            stack = traceback.extract_stack()[:-1]
            host = any(f.name in HOST_SIDE and "gifstream_engine" in f.filename for f in stack)
            host |= any("torch/optim" in f.filename or "test_rasterizer" in f.filename for f in stack)
            engine = [f for f in stack if "gifstream_engine/" in f.filename]
            if engine and not host:
                self.sites[f"{engine[-1].filename.split('gifstream_engine/')[1]}:{engine[-1].lineno}"] += 1
        return func(*args, **kwargs)


def _on_gsplat(monkeypatch) -> list:
    """The trainer's renders through the gsplat path, with stand-ins that rasterise on the CPU; returns the list
    where the batched stand-in records the shape of each call's means."""
    calls = []
    batch = _gsplat_batch_stand_in(calls)

    def rasterization(means, *args, **kwargs):
        return (batch if means.dim() == 3 else _gsplat_stand_in)(means, *args, **kwargs)

    monkeypatch.setattr(gsplat_backend, "gsplat_rasterization", lambda: rasterization)
    monkeypatch.setattr(api, "choose_backend", lambda requested, device: "gsplat")
    return calls


def test_a_step_reads_back_from_the_device_at_most_twice(synth_loaded, monkeypatch):
    """Outside growth and pruning steps, the whole step (its decodes with the fixed shape a GPU trainer uses, the
    renders of the image and its 8 windows in one gsplat call each, the loss, the optimiser and the growth
    statistics) reads back at most twice: the step's report, and at most one more. Each window's scene holds its
    own N * K Gaussians only (`render_batch(per_image=...)`), not every window's."""
    from gifstream_engine.train.config import load_config
    from gifstream_engine.train.driver import gop_seed
    from gifstream_engine.train.gop_data import load_gop_frames
    from gifstream_engine.train.seeding import initial_model
    from gifstream_engine.train.trainer import GopTrainer

    calls = _on_gsplat(monkeypatch)
    cfg = load_config(["preview"], ["train.steps=300", "train.seed_frames=2", "train.max_anchors=600",
                                    "train.densify_every=1000", "train.knn_every=1000"])
    gop = synth_loaded.gops(cfg.train.gop_length)[0]
    torch.manual_seed(gop_seed(cfg.train.seed, 0))
    model = initial_model(gop, cfg, lambda *_: None)
    trainer = GopTrainer(cfg, load_gop_frames(gop), model, torch.device("cpu"))
    assert not trainer.fixed_shape  # the CPU compacts what it decodes (its rasteriser's cost grows with it)
    trainer.fixed_shape = True  # as on a GPU
    trainer.train_step()  # step 0: the KNN and the window sampler are built
    assert cfg.train.motion_patches == 8
    for step in (1, 2, 3, 150, 250):  # canonical; QAT with uniform noise and the rate term; rounding
        if trainer.step != step:  # a step to set up the phase's state (the stream grid) first
            trainer.step = step - 1
            trainer.train_step()
        counter = SyncCounter()
        with counter:
            info = trainer.train_step()
        assert info["grown"] == 0 and info["pruned"] == 0 and 0 < info["gaussians"] < model.num_anchors * 5
        print(f"step {step} ({info['phase']}): {sum(counter.sites.values())} read-backs {dict(counter.sites)}")
        assert sum(counter.sites.values()) <= 2
        assert counter.sites["train/trainer.py:" + str(_line_of(trainer, "tolist()"))] == 1
        assert calls[-1] == (8, model.num_anchors * model.cfg.num_offsets, 3)


def _line_of(trainer, text: str) -> int:
    import inspect

    lines, first = inspect.getsourcelines(type(trainer)._train_step)
    return first + next(i for i, line in enumerate(lines) if text in line)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA and gsplat")
def test_the_same_count_on_a_gpu(gpu_capture):
    """On a GPU (no stand-ins): the step's read-backs, by the same counter: at most two."""
    from gifstream_engine.capture import load_capture
    from gifstream_engine.train.config import load_config
    from gifstream_engine.train.gop_data import load_gop_frames
    from gifstream_engine.train.seeding import initial_model
    from gifstream_engine.train.trainer import GopTrainer

    cfg = load_config(["preview"], ["train.steps=300", "train.seed_frames=2", "train.densify_every=1000",
                                    "train.knn_every=1000"])
    gop = load_capture(gpu_capture).gops(cfg.train.gop_length)[0]
    model = initial_model(gop, cfg, lambda *_: None)
    trainer = GopTrainer(cfg, load_gop_frames(gop), model, torch.device("cuda"))
    trainer.train_step()
    counter = SyncCounter()
    with counter:
        trainer.train_step()
    print(dict(counter.sites))
    assert trainer.fixed_shape and sum(counter.sites.values()) <= 2
