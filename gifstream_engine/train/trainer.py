"""One GOP's training step: how a step works, from the drawn image to the optimiser and the growth policy.

A step draws one training image (camera, frame) and, with `motion_patches`, windows on moving pixels of other
(camera, frame) pairs; decodes the model's Gaussians for them (quantised as the schedule says); renders them;
adds the loss's named terms (photometric, windows, scale, the stream's priors, rate); steps the optimiser; and
lets the growth policy grow and prune. Checkpoints hold everything a step reads, so a resumed run continues
bit-identically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import torch

from ..codec.entropy_models import EntropyModels
from ..codec.rate import TrainingStreamGrid, quantised_anchors, stream_frame_bits
from ..errors import RunError
from ..model import GIFStreamModel
from ..render import render, render_batch
from . import losses
from .anchors import PER_ANCHOR_LR, AnchorState
from .checkpoint import load_model, load_state, save_state
from .config import RunConfig
from .densify import GrowthStats
from .gop_data import GopData
from .growth import Drawn, GrowthPolicy
from .motion_patches import MotionPatchSampler
from .schedule import StepPlan, plan

# a checkpoint's fields beyond those of every saved state (checkpoint.REQUIRED)
CHECKPOINT_FIELDS = {"entropy": dict, "optimizer": dict, "generator": torch.Tensor, "torch_rng": torch.Tensor, "stats": dict}


@contextlib.contextmanager
def deterministic_on_cpu(device: torch.device):
    """Deterministic algorithms for the duration of a CPU step, as the process had them before afterwards: CPU
    scatter-adds (index backward) are otherwise summed in thread order, and a resumed run would not be
    bit-identical. CUDA steps are left as they are (cuBLAS refuses deterministic mode without its workspace
    setting)."""
    if device.type != "cpu":
        yield
        return
    before, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


class GopTrainer:
    """Trains one GOP: owns the model's anchors (`AnchorState`), the optimiser, the entropy models and the
    random generator the step draws from."""

    def __init__(self, cfg: RunConfig, data: GopData, model: GIFStreamModel, device: torch.device):
        self.cfg, self.tc, self.data, self.device = cfg, cfg.train, data, device
        self.model = model.to(device)
        self.entropy = EntropyModels(cfg.model.feat_dim, cfg.model.stream_dim, cfg.model.num_offsets).to(device)
        self.generator = torch.Generator().manual_seed(cfg.train.seed)
        self.patches: MotionPatchSampler | None = None  # built at the first step that draws windows on what moves
        self.step = 0
        self.elapsed = 0.0
        self.optimizer = self._make_optimizer()
        self.anchors = AnchorState(self.model, self.optimizer,
                                   GrowthStats.zeros(model.num_anchors, cfg.model.num_offsets, device))
        self.growth = GrowthPolicy(cfg.train)
        # off the CPU, decode with a fixed shape: selecting the Gaussians that show reads back from the device
        self.fixed_shape = device.type != "cpu"

    def _make_optimizer(self) -> torch.optim.Adam:
        groups = [{"params": [p], "lr": getattr(self.tc, PER_ANCHOR_LR[name]), "name": name}
                  for name, p in self.model.per_anchor_parameters().items()]
        groups.append({"params": self.model.decoder_parameters(), "lr": self.tc.lr_mlp, "name": "mlp"})
        groups.append({"params": list(self.entropy.parameters()), "lr": self.tc.lr_entropy, "name": "entropy"})
        return torch.optim.Adam(groups, eps=1e-15)

    # --- one step ------------------------------------------------------------------------------
    def train_step(self) -> dict:
        with deterministic_on_cpu(self.device):
            return self._train_step()

    def _train_step(self) -> dict:
        tc, m = self.tc, self.model
        p = plan(self.step, tc)
        p = dataclasses.replace(p, decode=dataclasses.replace(p.decode, fixed_shape=self.fixed_shape))
        self.growth.before_step(p, self.anchors)
        cam_slot = self._draw(len(self.data.train_cams))
        t = self._draw(self.data.frames.shape[1])
        camera = self.data.capture.cameras[self.data.train_cams[cam_slot]]
        target = self.data.frames[cam_slot, t].to(self.device, torch.float32) / 255.0
        values, anchor_bits = None, None
        if p.decode.quantize != "none":  # QAT: the entropy models' adaptive steps quantise the anchors
            values, anchor_bits = quantised_anchors(m, self.entropy, p.decode)
        gaussians, aux = m.decode(t, camera, p.decode, return_aux=True, values=values)
        out = render(gaussians, camera, background=torch.zeros(3, device=self.device), backend=tc.rasterizer,
                     track_means2d_grad=len(gaussians) > 0)
        terms = {"photometric": self._photometric(out.rgb, target, self.data.medians[cam_slot])}
        if tc.motion_patches > 0:
            terms["windows"] = tc.motion_patch_weight * self._windows_loss(p, values)
        terms["scale"] = tc.lambda_scale * aux.mean_over_shown(aux.scales)
        if p.decode.use_stream:
            priors = losses.stream_regularisers(m, aux, t)
            weights = {"masks": tc.lambda_mask, "temporal": tc.lambda_temporal, "spatial": tc.lambda_spatial}
            terms.update({name: weights[name] * value for name, value in priors.items()})
        bits = torch.zeros((), device=self.device)
        if values is not None:
            bits = self._bits(p, t, anchor_bits)
            terms["rate"] = tc.lambda_entropy * bits / m.num_anchors
        loss = losses.total(terms)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        drawn = Drawn(aux, out.meta, camera.width, camera.height) if len(gaussians) > 0 else None
        report = self.growth.after_backward(p, self.anchors, drawn)
        if self.step % tc.knn_every == 0 and not report.knn_updated:
            m.update_knn()
        self.step += 1
        with torch.no_grad():
            # what the step reports, read from the device at once: its one synchronisation (a fixed-shape decode
            # returns every Gaussian, those that do not show with opacity 0)
            drawn_count = (gaussians.opacities > 0).sum().to(loss.dtype)
            loss_value, mse, bits_value, drawn_count = torch.stack(
                [loss, torch.mean((out.rgb - target) ** 2), bits, drawn_count]).tolist()
        return {"phase": p.phase, "loss": loss_value, "terms": {k: v.detach() for k, v in terms.items()},
                "psnr": -10 * math.log10(max(mse, 1e-10)), "kbytes": bits_value / 8192,
                "anchors": m.num_anchors, "gaussians": int(drawn_count), "grown": report.grown, "pruned": report.pruned}

    def _draw(self, n: int) -> int:
        """A uniform draw from 0..n-1 by the step's generator (on the host: no device synchronisation)."""
        return int(torch.randint(n, (1,), generator=self.generator))

    def _photometric(self, rgb: torch.Tensor, target: torch.Tensor, median: torch.Tensor) -> torch.Tensor:
        """The photometric loss of one image (H, W, 3) or the mean of a batch (B, H, W, 3) against its camera's
        temporal median."""
        pixel_weight = None
        if self.tc.motion_weight > 0:  # what moves gets more of the loss (and so of the growth gradient)
            pixel_weight = losses.motion_importance(target, median.to(self.device), self.tc.motion_weight)
        return losses.photometric(rgb, target, self.tc.ssim_weight, pixel_weight)

    def _windows_loss(self, p: StepPlan, values) -> torch.Tensor:
        """Mean photometric loss of `motion_patches` windows on moving pixels of other (camera, frame) pairs,
        decoded and rendered together (`decode_windows`, `render_batch`)."""
        tc = self.tc
        if self.patches is None:
            cameras = [self.data.capture.cameras[i] for i in self.data.train_cams]
            self.patches = MotionPatchSampler(self.data.frames, self.data.medians, self.data.footage, cameras,
                                              tc.motion_patch_size)
        if self.patches.empty:  # nothing moves in the GOP
            return torch.zeros((), device=self.device)
        patches = [self.patches.sample(self.generator) for _ in range(tc.motion_patches)]
        cameras = [patch.camera for patch in patches]
        gaussians, slot = self.model.decode_windows([patch.frame for patch in patches], cameras, p.decode, values)
        if len(gaussians) == 0:
            return torch.zeros((), device=self.device)
        rgb, _ = render_batch(gaussians, slot, cameras, background=torch.zeros(3, device=self.device), backend=tc.rasterizer,
                              per_image=self.model.rows_per_window(p.decode))
        return self._photometric(rgb, torch.stack([patch.target for patch in patches]).to(self.device),
                                 torch.stack([patch.median for patch in patches]))

    def _bits(self, p: StepPlan, t: int, anchor_bits: torch.Tensor) -> torch.Tensor:
        """The GOP's estimated bits as this step sees them: every anchor's plus T times frame t's stream. The
        entropy models learn from the start of QAT; the rate shapes the representation from `entropy_start`."""
        m, anchors = self.model, self.anchors
        if not p.entropy:
            _, anchor_bits = quantised_anchors(m, self.entropy, p.decode, rate_only=True)
        if anchors.stream_grid is None or self.step % self.tc.knn_every == 0:
            anchors.stream_grid = TrainingStreamGrid.of(m, p.decode)
        if anchors.stream_grid is None or not p.decode.use_stream:
            return anchor_bits.sum()
        frame_bits = stream_frame_bits(m, self.entropy, anchors.stream_grid, t, p.decode, rate_only=not p.entropy)
        return anchor_bits.sum() + m.num_frames * frame_bits

    # --- checkpoints ---------------------------------------------------------------------------
    def state(self) -> dict:
        grid = self.anchors.stream_grid
        return {"step": self.step, "elapsed": self.elapsed, "config": self.cfg.to_dict(),
                "num_frames": self.model.num_frames, "model": self.model.state_dict(), "entropy": self.entropy.state_dict(),
                "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state(), "stats": dataclasses.asdict(self.anchors.stats),
                "stream_grid": None if grid is None else grid.cells,
                # the quantisation noise of a CUDA step comes from the device's generator
                "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}

    def save(self, path: str) -> None:
        save_state(self.state(), path)

    @staticmethod
    def restore(path: str, cfg: RunConfig, data: GopData, device: torch.device) -> "GopTrainer":
        state = load_state(path, device, CHECKPOINT_FIELDS)
        trainer = GopTrainer(cfg, data, load_model(state, cfg, path), device)
        try:
            trainer.entropy.load_state_dict(state["entropy"])
            trainer.optimizer.load_state_dict(state["optimizer"])
            trainer.generator.set_state(state["generator"].cpu())
            torch.set_rng_state(state["torch_rng"].cpu())
            if device.type == "cuda" and isinstance(state.get("cuda_rng"), torch.Tensor):  # same device kind only
                torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
            trainer.anchors.stats = GrowthStats(**{k: v.to(device) for k, v in state["stats"].items()})
            if state.get("stream_grid") is not None:
                trainer.anchors.stream_grid = TrainingStreamGrid(state["stream_grid"].to(device))
        except (RuntimeError, TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            raise RunError(f"{path} is damaged: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
        trainer.step, trainer.elapsed = state["step"], state["elapsed"]
        return trainer
