"""The GIFStream trainer: one GOP at a time, the paper's schedule, checkpoints that resume bit-identically."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import time

import numpy as np
import torch

from ..capture import Capture
from ..capture.types import Camera
from ..eval.motion import temporal_median
from ..errors import ConfigError, RunError
from ..events import EventWriter
from ..model.gifstream import DecodeState, GIFStreamModel
from ..render import BatchMeta, render, render_batch
from . import densify
from .checkpoint import load_model, load_state, save_state
from .config import RunConfig
from .run_folder import RunFolder
from ..codec.entropy_models import EntropyModels
from ..codec.rate import TrainingStreamGrid, quantised_anchors, stream_frame_bits
from .losses import motion_importance, photometric
from .schedule import plan
from .progress import reporter_for
from .motion_init import TrackPrior, fit_motion
from .motion_patches import MotionPatchSampler
from .seeding import seed_anchors

PER_ANCHOR_LR = {"log_scale": "lr_scale", "offsets": "lr_offsets", "feat": "lr_feat", "stream": "lr_stream", "mask_logits": "lr_mask"}


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but torch sees no CUDA device; use device=cpu or auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclasses.dataclass
class GopData:
    capture: Capture
    train_cams: list[int]
    frames: torch.Tensor  # (num_train_cams, T, H, W, 3) uint8
    medians: torch.Tensor  # (num_train_cams, H, W, 3) float32 in [0, 1]: each camera's temporal median over the GOP


def load_gop_frames(capture: Capture) -> GopData:
    train = capture.split_indices("train")
    if not train:
        raise ConfigError(f"{capture.root}: the capture has no training cameras")
    sizes = {(capture.cameras[i].width, capture.cameras[i].height) for i in train}
    if len(sizes) > 1:
        raise ConfigError(f"{capture.root}: training cameras must share one image size, got {sorted(sizes)}")
    frames = np.stack([capture.frames(i) for i in train])
    return GopData(capture, train, torch.from_numpy(frames), torch.from_numpy(np.stack([temporal_median(f) for f in frames])))


@dataclasses.dataclass
class _DrawnWindows:
    """What one step's windows drew, kept until backward for the growth statistics."""
    aux: dict  # decode_windows' aux
    meta: BatchMeta  # render_batch's
    image: Camera  # a window's whole camera (all share one size)
    window: Camera  # a window (all share one size)


class GopTrainer:
    """Trains one GOP: owns the model, the optimiser, the bit estimator and the growth statistics."""

    def __init__(self, cfg: RunConfig, data: GopData, model: GIFStreamModel, device: torch.device,
                 prior: TrackPrior | None = None):
        self.cfg, self.tc, self.data, self.device = cfg, cfg.train, data, device
        self.prior = None if prior is None else TrackPrior(prior.motion.to(device), prior.tracked.to(device))
        if device.type == "cpu":
            # CPU scatter-adds (index backward) are otherwise summed in thread order: resume would not be bit-identical
            torch.use_deterministic_algorithms(True)
        self.model = model.to(device)
        self.entropy = EntropyModels(cfg.model.feat_dim, cfg.model.stream_dim, cfg.model.num_offsets).to(device)
        self.stream_grid: TrainingStreamGrid | None = None  # dynamic anchors on the 2D grid, refreshed as they change
        self.generator = torch.Generator().manual_seed(cfg.train.seed)
        self.patches: MotionPatchSampler | None = None  # built at the first step that draws windows on what moves
        self.step = 0
        self.elapsed = 0.0
        self.stats = densify.GrowthStats.zeros(model.num_anchors, cfg.model.num_offsets, device)
        self.optimizer = self._make_optimizer()

    # --- optimiser with a resizable anchor set -----------------------------------------------
    def _make_optimizer(self) -> torch.optim.Adam:
        groups = [{"params": [p], "lr": getattr(self.tc, PER_ANCHOR_LR[name]), "name": name}
                  for name, p in self.model.per_anchor_parameters().items()]
        groups.append({"params": self.model.decoder_parameters(), "lr": self.tc.lr_mlp, "name": "mlp"})
        groups.append({"params": list(self.entropy.parameters()), "lr": self.tc.lr_entropy, "name": "entropy"})
        return torch.optim.Adam(groups, eps=1e-15)

    def _resize(self, keep: torch.Tensor | None, new: dict[str, torch.Tensor] | None) -> None:
        """Keep the anchors `keep` (bool mask) and append `new` rows, carrying Adam's state along."""
        for group in self.optimizer.param_groups:
            name = group["name"]
            if name not in PER_ANCHOR_LR:
                continue
            old = group["params"][0]
            value = old.data if keep is None else old.data[keep]
            if new is not None:
                value = torch.cat([value, new[name].to(value)])
            param = torch.nn.Parameter(value)
            state = self.optimizer.state.pop(old, None)
            if state:
                for key in ("exp_avg", "exp_avg_sq"):
                    s = state[key] if keep is None else state[key][keep]
                    if new is not None:
                        s = torch.cat([s, torch.zeros_like(new[name]).to(s)])
                    state[key] = s
                self.optimizer.state[param] = state
            group["params"][0] = param
            setattr(self.model, name, param)
        self.stream_grid = None  # anchor indices changed
    @torch.no_grad()
    def _densify(self) -> tuple[int, int]:
        m, tc = self.model, self.tc
        centres, parents = densify.grow_candidates(m, self.stats, tc.grad_threshold, tc.time_mix_alpha)
        grown = 0
        if centres is not None:
            room = max(0, tc.max_anchors - m.num_anchors)
            centres, parents = centres[:room], parents[:room]
            grown = len(centres)
        prune = densify.low_opacity_anchors(self.stats, tc.min_opacity, m.cfg.num_offsets, tc.time_mix_alpha)
        if self._prior_weight() > 0:
            prune &= ~self.prior.tracked  # a tracked anchor is transparent until its motion reaches the object: keep it
        keep = ~prune
        if keep.sum() < 1:
            keep[:] = True
        new = None
        if grown:
            new = {
                "log_scale": torch.full((grown, 6), math.log(m.cfg.voxel_size)),
                "offsets": torch.zeros(grown, m.cfg.num_offsets, 3),
                "feat": m.feat[parents].cpu(),
                "stream": m.stream[parents].cpu(),
                "mask_logits": m.mask_logits[parents].cpu(),
            }
        pruned = int((~keep).sum())
        self._resize(keep, new)
        if self.prior is not None:  # kept rows, then one per grown anchor from its parent (an index before pruning)
            self.prior = self.prior.select(keep, parents.to(self.device) if grown else None)
        xyz = m.anchor_xyz[keep]
        if grown:
            xyz = torch.cat([xyz, centres.to(xyz)])
        m.anchor_xyz = xyz
        self.stats = self.stats.select(keep).extend(grown)
        self.stats.reset_growth()
        m.update_knn()
        return grown, pruned

    @torch.no_grad()
    def _prune_masked(self) -> int:
        keep = torch.sigmoid(self.model.mask_logits[:, 3]) > 0.5
        if keep.all() or not keep.any():
            return 0
        self._resize(keep, None)
        if self.prior is not None:
            self.prior = self.prior.select(keep)
        self.model.anchor_xyz = self.model.anchor_xyz[keep]
        self.stats = self.stats.select(keep)
        self.model.update_knn()
        return int((~keep).sum())

    @torch.no_grad()
    def _init_dynamic_masks(self) -> None:
        """End of the canonical phase: anchors whose static fit left large 2D gradients are the dynamic ones."""
        g = self.stats.dyn_grad / self.stats.anchor_seen.clamp(min=1)
        ref = torch.quantile(g, 0.95).clamp(min=1e-12)
        p = (0.05 + 0.9 * (g / ref).clamp(0, 1)).clamp(0.05, 0.95)
        logit = torch.log(p / (1 - p))
        # never below where seeding put them (anchors seeded on moving pixels start open)
        self.model.mask_logits[:, 0] = torch.maximum(logit, self.model.mask_logits[:, 0])  # M_de: the stream is needed where motion is
        self.model.mask_logits[:, 1] = torch.maximum(logit, self.model.mask_logits[:, 1])  # M_dy

    def _prior_weight(self) -> float:
        """The track prior's weight at this step (0 without a prior)."""
        tc = self.tc
        return 0.0 if self.prior is None else TrackPrior.weight(self.step, tc.steps, tc.track_prior, tc.track_prior_end_frac)

    # --- one step ------------------------------------------------------------------------------
    def _photometric(self, rgb: torch.Tensor, target: torch.Tensor, median: torch.Tensor) -> torch.Tensor:
        """The photometric loss of one image (H, W, 3) or the mean of a batch (B, H, W, 3) against its camera's
        temporal median."""
        pixel_weight = None
        if self.tc.motion_weight > 0:  # what moves gets more of the loss (and so of the growth gradient)
            pixel_weight = motion_importance(target, median.to(self.device), self.tc.motion_weight)
        return photometric(rgb, target, self.tc.ssim_weight, pixel_weight)

    def _motion_patch_loss(self, state, values) -> tuple[torch.Tensor, _DrawnWindows | None]:
        """Mean photometric loss of `motion_patches` windows on moving pixels of other (camera, frame) pairs, decoded
        and rendered together (`decode_windows`, `render_batch`), and, with `motion_patch_growth`, what they drew
        (for the growth statistics, after backward)."""
        tc = self.tc
        if self.patches is None:
            cameras = [self.data.capture.cameras[i] for i in self.data.train_cams]
            self.patches = MotionPatchSampler(self.data.frames, self.data.medians, cameras, tc.motion_patch_size,
                                              tc.motion_patch_frames)
        if self.patches.empty:  # nothing moves in the GOP
            return torch.zeros((), device=self.device), None
        patches = [self.patches.sample(self.generator) for _ in range(tc.motion_patches)]
        cameras = [patch.camera for patch in patches]
        gaussians, slot, aux = self.model.decode_windows([patch.frame for patch in patches],
                                                         [patch.view for patch in patches], cameras, state, values,
                                                         return_aux=True)
        if len(gaussians) == 0:
            return torch.zeros((), device=self.device), None
        rgb, _, meta = render_batch(gaussians, slot, cameras, background=torch.zeros(3, device=self.device),
                                    track_means2d_grad=tc.motion_patch_growth)
        loss = self._photometric(rgb, torch.stack([patch.target for patch in patches]).to(self.device),
                                 torch.stack([patch.median for patch in patches]))
        return loss, (_DrawnWindows(aux, meta, patches[0].view, cameras[0]) if tc.motion_patch_growth else None)

    def _accumulate_windows(self, drawn: _DrawnWindows) -> None:
        """The windows' 2D gradients into the growth statistics, each window as one render of its camera's whole
        image: a window's pixels weigh motion_patch_weight / (motion_patches * window pixels) in the loss against
        1 / (image pixels) for the training image's, so its gradients are scaled back by the ratio."""
        tc, image, window = self.tc, drawn.image, drawn.window
        weight = tc.motion_patches * window.width * window.height / (tc.motion_patch_weight * image.width * image.height)
        densify.accumulate_windows(self.stats, drawn.aux, drawn.meta.means2d_grad(), drawn.meta.visible, image.width,
                                   image.height, self.model.cfg.num_offsets, weight)

    def train_step(self) -> dict:
        tc, m = self.tc, self.model
        p = plan(self.step, tc)
        if p.init_dynamic_masks:
            self._init_dynamic_masks()
        cam_slot = int(torch.randint(len(self.data.train_cams), (1,), generator=self.generator))
        t = int(torch.randint(self.data.frames.shape[1], (1,), generator=self.generator))
        camera = self.data.capture.cameras[self.data.train_cams[cam_slot]]
        target = self.data.frames[cam_slot, t].to(self.device, torch.float32) / 255.0
        values, anchor_bits = None, None
        if p.decode.quantize != "none":  # QAT: the entropy models' adaptive steps quantise the anchors
            values, anchor_bits = quantised_anchors(m, self.entropy, p.decode)
        gaussians, aux = m.decode(t, camera, p.decode, return_aux=True, values=values)
        out = render(gaussians, camera, background=torch.zeros(3, device=self.device), track_means2d_grad=len(gaussians) > 0)
        loss_photo = self._photometric(out.rgb, target, self.data.medians[cam_slot])
        drawn_windows = None
        if tc.motion_patches > 0:
            loss_windows, drawn_windows = self._motion_patch_loss(p.decode, values)
            loss_photo = loss_photo + tc.motion_patch_weight * loss_windows
        idx, masks = aux["anchor_idx"], aux["masks"]
        loss = loss_photo + tc.lambda_scale * aux["scales"].mean()
        if p.decode.use_stream:
            de = masks["de"][idx]
            loss = loss + tc.lambda_mask * (masks["de"].mean() + masks["dy"].mean())
            f_t = m.stream[idx, t]
            t2 = min(t + 1, m.num_frames - 1) if t + 1 < m.num_frames else max(t - 1, 0)
            loss = loss + tc.lambda_temporal * (de[:, None] * (f_t - m.stream[idx, t2]) ** 2).mean()
            neighbours = m.stream[m.knn_index[idx], t]  # spatial smoothness over canonical neighbours
            loss = loss + tc.lambda_spatial * (de[:, None, None] * (f_t[:, None] - neighbours) ** 2).mean()
            weight = self._prior_weight()
            if weight > 0:
                loss = loss + weight * self.prior.loss(aux["translation"], idx, t)
        bits = torch.zeros((), device=self.device)
        if values is not None:
            # the entropy models learn from the start of QAT; the rate shapes the representation from entropy_start
            if not p.entropy:
                _, anchor_bits = quantised_anchors(m, self.entropy, p.decode, rate_only=True)
            if self.stream_grid is None or self.step % tc.knn_every == 0:
                self.stream_grid = TrainingStreamGrid.of(m, p.decode)
            if self.stream_grid is not None and p.decode.use_stream:
                frame_bits = stream_frame_bits(m, self.entropy, self.stream_grid, t, p.decode, rate_only=not p.entropy)
                bits = anchor_bits.sum() + m.num_frames * frame_bits
            else:
                bits = anchor_bits.sum()
            loss = loss + tc.lambda_entropy * bits / m.num_anchors
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if len(gaussians) > 0:  # growth statistics from the rasteriser's 2D gradient (an error if it has none)
            densify.accumulate(self.stats, aux, out.meta.means2d_grad(), out.meta.visible, camera.width, camera.height,
                               m.cfg.num_offsets)
        if drawn_windows is not None:
            self._accumulate_windows(drawn_windows)
        grown = pruned = 0
        if p.densify:
            grown, pruned = self._densify()
        elif p.prune_masked:
            pruned = self._prune_masked()
        if self.step % tc.knn_every == 0:
            m.update_knn()
        self.step += 1
        with torch.no_grad():
            mse = torch.mean((out.rgb - target) ** 2).item()
        return {"phase": p.phase, "loss": float(loss.item()), "psnr": -10 * math.log10(max(mse, 1e-10)),
                "kbytes": float(bits.item()) / 8192, "anchors": m.num_anchors, "gaussians": len(gaussians),
                "grown": grown, "pruned": pruned}

    # --- checkpoints ---------------------------------------------------------------------------
    def state(self) -> dict:
        return {"step": self.step, "elapsed": self.elapsed, "config": self.cfg.to_dict(),
                "num_frames": self.model.num_frames, "model": self.model.state_dict(), "entropy": self.entropy.state_dict(),
                "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state(), "stats": dataclasses.asdict(self.stats),
                "stream_grid": None if self.stream_grid is None else self.stream_grid.cells,
                "track_prior": None if self.prior is None else {"motion": self.prior.motion, "tracked": self.prior.tracked}}

    def save(self, path: str) -> None:
        save_state(self.state(), path)

    @staticmethod
    def restore(path: str, cfg: RunConfig, data: GopData, device: torch.device) -> "GopTrainer":
        state = load_state(path, device, CHECKPOINT_FIELDS)
        model = load_model(state, cfg, path)
        prior = state.get("track_prior")
        try:
            prior = None if prior is None else TrackPrior(prior["motion"], prior["tracked"])
        except (TypeError, KeyError) as exc:
            raise RunError(f"{path} is damaged: its track prior is not a dict of two tensors") from exc
        trainer = GopTrainer(cfg, data, model, device, prior)
        try:
            trainer.entropy.load_state_dict(state["entropy"])
            trainer.optimizer.load_state_dict(state["optimizer"])
            trainer.generator.set_state(state["generator"].cpu())
            torch.set_rng_state(state["torch_rng"].cpu())
            trainer.stats = densify.GrowthStats(**{k: v.to(device) for k, v in state["stats"].items()})
            if state.get("stream_grid") is not None:
                trainer.stream_grid = TrainingStreamGrid(state["stream_grid"].to(device))
        except (RuntimeError, TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            raise RunError(f"{path} is damaged: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
        trainer.step, trainer.elapsed = state["step"], state["elapsed"]
        return trainer


# a checkpoint's fields beyond those of every saved state (checkpoint.REQUIRED)
CHECKPOINT_FIELDS = {"entropy": dict, "optimizer": dict, "generator": torch.Tensor, "torch_rng": torch.Tensor, "stats": dict}


def gop_seeds(capture: Capture, cfg: RunConfig, track: bool = False):
    return seed_anchors(capture, cfg.train.seed_frames, cfg.model.voxel_size, cfg.train.seed, cfg.train.hull_cell,
                        cfg.train.max_anchors // 2, track=track)


def initial_model(capture: Capture, cfg: RunConfig, log) -> tuple[GIFStreamModel, TrackPrior | None]:
    """GOP 0's model from its seeds and, with `train.track_motion`, the prior that holds tracked anchors on their
    tracks (its motion decoder already fitted to them)."""
    seeds = gop_seeds(capture, cfg, track=cfg.train.track_motion)
    if len(seeds.xyz) > cfg.train.max_anchors:
        seeds = seeds.subset(np.random.default_rng(cfg.train.seed).choice(len(seeds.xyz), cfg.train.max_anchors, replace=False))
    log(f"initial anchors: {seeds.description}")
    model = GIFStreamModel(seeds.xyz, seeds.colors, capture.num_frames, cfg.model, seeds.occupancy)
    if seeds.tracked is not None and seeds.tracked.any() and cfg.train.motion_fit_steps > 0:
        tc = cfg.train
        state = DecodeState(quantize="noise", feat_step=tc.feat_step, geo_step=tc.geo_step)
        fit = fit_motion(model, seeds.motion, seeds.tracked, state, steps=tc.motion_fit_steps, seed=tc.seed)
        log(f"motion decoder fitted to the tracks: {fit.tracked} anchors {fit.rms_before:.3f} -> {fit.rms_after:.3f} m "
            f"from their tracks (rms), the others moved {fit.static_rms:.3f} m")
        return model, TrackPrior.of(seeds.motion, seeds.tracked)
    return model, None


def warm_started(warm_path: str, cfg: RunConfig, capture: Capture, device, log) -> GIFStreamModel:
    """A later GOP's model: GOP 0's early state with a fresh feature stream of this GOP's length, plus anchors
    seeded where this GOP's frames see something move in voxels GOP 0 left empty."""
    state = load_state(warm_path, device)
    model = load_model(state, cfg, warm_path)
    model.stream = torch.nn.Parameter(torch.zeros(model.num_anchors, capture.num_frames, cfg.model.stream_dim,
                                                  device=model.feat.device))
    model.num_frames = capture.num_frames
    seeds = gop_seeds(capture, cfg)
    occupied = {tuple(v) for v in np.floor(model.anchor_xyz.cpu().numpy() / cfg.model.voxel_size).astype(np.int64)}
    keys = np.floor(seeds.xyz / cfg.model.voxel_size).astype(np.int64)
    new = seeds.moving & np.array([tuple(k) not in occupied for k in keys], bool)
    new &= np.cumsum(new) <= max(0, cfg.train.max_anchors - model.num_anchors)
    if new.any():
        fresh = seeds.subset(new)
        model.append_anchors(GIFStreamModel(fresh.xyz, fresh.colors, capture.num_frames, cfg.model, fresh.occupancy).to(device))
    log(f"warm start: {model.num_anchors} anchors, {int(new.sum())} of them seeded on this GOP's moving pixels")
    return model


TEST_CRASH_ENV = "GIFSTREAM_TEST_CRASH"  # test-only: "GOP:STEP" ends the process there (os._exit) unless it resumed


def gop_seed(seed: int, g: int) -> int:
    """The global torch seed GOP g starts from: the run's seed for GOP 0, one of its own for each later GOP, so that
    a GOP trains the same whether the GOPs before it ran in this process or in another one (a Ray task, a farm)."""
    return seed if g == 0 else int(np.random.SeedSequence([seed, g]).generate_state(1)[0])


def _test_crash(g: int, step: int, resumed: bool) -> None:
    """A worker dying mid-GOP, for the tests of retries: `GOP:STEP` (first attempt only) or `GOP:STEP:always`."""
    spec = os.environ.get(TEST_CRASH_ENV)
    if not spec:
        return
    gop, at, *mode = spec.split(":")
    if int(gop) == g and int(at) == step and (not resumed or mode == ["always"]):
        os._exit(99)


class Training:
    """All GOPs of a capture into RUN/: config.json, gop_XXX/{checkpoint,model,warm_start}.pt, eval.json.

    `run` trains every GOP here, one after another; `begin` + `train_gop` let GOPs train in other processes (Ray
    tasks, farm tasks): each GOP folder has its own lock, and a GOP continues whatever its folder holds."""

    def __init__(self, capture: Capture, cfg: RunConfig, out: str, events: EventWriter | None = None, log=print,
                 progress_bar: bool = False, handle_signals: bool = True):
        """progress_bar: a live bar (a person at a terminal) instead of a line every `train.log_every` steps.
        handle_signals: SIGINT/SIGTERM save a checkpoint and stop (off in Ray workers, where Ray owns them)."""
        self.capture, self.cfg, self.out = capture, cfg, out
        self.folder = RunFolder(out)
        self.events = events or EventWriter(enabled=False)
        self.log = log
        self.reporter = reporter_for(log, cfg.train.log_every, progress_bar)
        self.device = resolve_device(cfg.train.device)
        self.handle_signals = handle_signals
        self.stop_requested = False
        self.gops = capture.gops(cfg.train.gop_length)

    def request_stop(self, *_):
        self.stop_requested = True

    def run(self, resume: bool = False, overwrite: bool = False) -> str:
        """Train every GOP; the run folder is locked meanwhile, and a run already there is only continued with
        `resume` or replaced with `overwrite`."""
        with self.folder.claim_for_training(resume, overwrite):
            self.write_config(resume)
            for g in range(len(self.gops)):
                if self.train_gop(g) == "cancelled":
                    return "cancelled"
        return "finished"

    def begin(self, resume: bool = False, overwrite: bool = False) -> None:
        """Claim the run folder and write its config.json without training: what runs before GOPs train elsewhere."""
        with self.folder.claim_for_training(resume, overwrite):
            self.write_config(resume)

    def write_config(self, resume: bool) -> None:
        os.makedirs(self.out, exist_ok=True)
        if resume and self.folder.has_config():
            if self.folder.read_saved().config != self.cfg.to_dict():
                raise ConfigError(f"{self.folder.config_path}: --resume with a different configuration; use the run's own settings")
        self.folder.write_config(self.cfg, self.capture.root, self.capture.num_frames, self.capture.rig())

    def gop_folder(self, g: int) -> str:
        return self.folder.gop_dir(g)

    def train_gop(self, g: int, until_warm: bool = False) -> str:
        """Train GOP g (its folder locked meanwhile), continuing its checkpoint; "finished", "cancelled", or "warm"
        when `until_warm` stopped GOP 0 at its warm start (later GOPs can start; its checkpoint continues it)."""
        if not 0 <= g < len(self.gops):
            raise ConfigError(f"GOP {g} does not exist: {self.capture.root} has {len(self.gops)} GOPs "
                              f"(0..{len(self.gops) - 1}) of {self.cfg.train.gop_length} frames")
        folder = self.gop_folder(g)
        os.makedirs(folder, exist_ok=True)
        previous = {sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)} \
            if self.handle_signals else {}
        try:
            with self.folder.locked_gop(g, f"training GOP {g}"):
                return self._train_gop(g, until_warm)
        finally:
            self.reporter.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _train_gop(self, g: int, until_warm: bool) -> str:
        gop, num_gops = self.gops[g], len(self.gops)
        final, ckpt, warm = self.folder.final(g), self.folder.checkpoint(g), self.folder.warm_start()
        if os.path.isfile(final):
            self.log(f"GOP {g}: already trained")
            return "finished"
        data = load_gop_frames(gop)
        resumed = os.path.isfile(ckpt)
        if resumed:
            trainer = GopTrainer.restore(ckpt, self.cfg, data, self.device)
            self.log(f"GOP {g}: resuming at step {trainer.step}")
        else:
            if g > 0 and not os.path.isfile(warm):
                raise RunError(f"GOP {g} starts from GOP 0's warm start {warm}, which does not exist yet; "
                               "train GOP 0 first (gifstream train CAPTURE --out RUN --gop 0)")
            torch.manual_seed(gop_seed(self.cfg.train.seed, g))
            model, prior = (warm_started(warm, self.cfg, gop, self.device, self.log), None) if g > 0 else \
                initial_model(gop, self.cfg, self.log)
            trainer = GopTrainer(self.cfg, data, model, self.device, prior)
        if self.handle_signals:
            # (again) after SfM: importing pycolmap installs glog's failure handlers, which would abort on SIGTERM
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.request_stop)
        tc = self.cfg.train
        warm_step = int(round(tc.joint_end_frac * tc.steps))
        while trainer.step < tc.steps:
            if g == 0 and until_warm and trainer.step >= warm_step and os.path.isfile(warm):
                trainer.save(ckpt)
                self.log(f"GOP 0: warm start ready at step {trainer.step}")
                return "warm"
            if self.stop_requested:
                trainer.save(ckpt)
                self.log(f"stopped at GOP {g} step {trainer.step}; checkpoint {ckpt}")
                self.events.result({"status": "cancelled", "checkpoint": ckpt, "gop": g, "step": trainer.step})
                return "cancelled"
            start = time.perf_counter()
            info = trainer.train_step()
            trainer.elapsed += time.perf_counter() - start
            if g == 0 and trainer.step == warm_step:
                trainer.save(warm)
            if trainer.step % tc.checkpoint_every == 0:
                trainer.save(ckpt)
            _test_crash(g, trainer.step, resumed)
            eta = trainer.elapsed / max(trainer.step, 1) * ((num_gops - g) * tc.steps - trainer.step)
            self.reporter.step(g, num_gops, trainer.step, tc.steps, info, eta)
            if trainer.step % tc.log_every == 0 or trainer.step == tc.steps:
                done = (g * tc.steps + trainer.step) / (num_gops * tc.steps)
                self.events.progress("train", g * tc.steps + trainer.step, num_gops * tc.steps, gop=g, gop_step=trainer.step,
                                     gop_steps=tc.steps, phase=info["phase"], loss=info["loss"], psnr=info["psnr"],
                                     anchors=info["anchors"], eta=eta, fraction=done)
        if g == 0 and not os.path.isfile(warm):
            trainer.save(warm)
        trainer.model.update_knn()  # the neighbours among the final kept anchors, as the bitstream's decoder finds them
        state = trainer.state()
        save_state({k: state[k] for k in ("step", "elapsed", "config", "num_frames", "model", "entropy")}
                    | {"frame_offset": gop.frame_offset}, final)
        trainer.save(ckpt)
        return "finished"
