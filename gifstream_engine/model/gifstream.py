"""The GIFStream representation of one GOP: canonical anchors, feature streams, masks and decoders.

`GIFStreamModel.decode(t, camera, state, values)` is the one path from parameters to the plain `Gaussians` of
frame t; the trainer, the renderer and the bitstream decoder all call it. `values` carries time-invariant
attributes already quantised elsewhere (by the entropy models' adaptive steps, or decoded from a bitstream).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..render.gaussians import Gaussians
from ..render.api import camera_tensors
from ..render.projection import MAX_EXTEND, quat_to_rotmat, reach_image
from .anchors import initial_spacing
from .config import AnchorValues, DecodeAux, DecodeState, ModelConfig
from .knn import nearest_kept
from .quantize import CLOSED_LOGIT, MASK_NAMES, OPEN_LOGIT, quantize_mask, quantize_values
from .time_code import time_code, time_embedding


def mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, out))


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], -1)


class GIFStreamModel(nn.Module):
    def __init__(self, anchors: np.ndarray, colors: np.ndarray | None, num_frames: int, cfg: ModelConfig,
                 occupancy: np.ndarray | None = None):
        """occupancy (N, T) bool: for anchors seeded where something moved (train/seeding.py), the frames it was
        there; all False for the others. Moving anchors start with M_de and M_dy open and a stream that encodes
        time relative to those frames (`time_code`), so the decoders can show each where and when it was seen;
        the others start with the masks nearly closed until the canonical phase's gradients open them."""
        super().__init__()
        self.cfg = cfg
        self.num_frames = num_frames
        n, k = len(anchors), cfg.num_offsets
        self.register_buffer("anchor_xyz", torch.as_tensor(anchors, dtype=torch.float32))
        self.register_buffer("knn_index", torch.zeros(n, cfg.knn, dtype=torch.long))
        spacing = initial_spacing(anchors, cfg.voxel_size)
        self.log_scale = nn.Parameter(torch.log(torch.as_tensor(spacing, dtype=torch.float32))[:, None].repeat(1, 6))
        self.offsets = nn.Parameter(torch.zeros(n, k, 3))
        feat = torch.zeros(n, cfg.feat_dim)
        if colors is not None:  # seed the first channels with the point colours: faster first iterations
            feat[:, :3] = torch.as_tensor(colors, dtype=torch.float32) / 255.0 - 0.5
        self.feat = nn.Parameter(feat)
        stream = torch.zeros(n, num_frames, cfg.stream_dim)
        moving = np.zeros(n, bool) if occupancy is None else np.asarray(occupancy, bool).any(1)
        if moving.any():
            stream[torch.as_tensor(moving)] = time_code(np.asarray(occupancy, bool)[moving], cfg.stream_dim)
        self.stream = nn.Parameter(stream)
        logits = torch.zeros(n, 4)
        logits[:, :2] = CLOSED_LOGIT
        logits[torch.as_tensor(moving), :2] = OPEN_LOGIT
        logits[:, 3] = 3.0  # M_p starts at ~0.95: keep every anchor
        self.mask_logits = nn.Parameter(logits)
        dim = cfg.feat_dim + cfg.stream_dim
        self.opacity_mlp = mlp(dim, cfg.hidden, k)
        self.color_mlp = mlp(dim, cfg.hidden, 3 * k)
        self.cov_mlp = mlp(dim, cfg.hidden, 7 * k)
        self.motion_mlp = mlp(dim + 2 * cfg.time_freqs, cfg.hidden, 7)
        nn.init.zeros_(self.motion_mlp[2].weight)  # no motion until the data asks for it
        nn.init.zeros_(self.motion_mlp[2].bias)
        self.update_knn()

    @staticmethod
    def from_state_dict(state: dict[str, torch.Tensor], num_frames: int, cfg: ModelConfig) -> "GIFStreamModel":
        """A model of the saved size with every parameter and buffer (anchor positions, KNN) loaded from `state`
        (a `state_dict()`; anchor_xyz (N, 3) sets N). Raises RuntimeError (missing/unexpected keys, other shapes)
        when `state` does not belong to a model of `cfg`."""
        model = GIFStreamModel(state["anchor_xyz"].detach().cpu().numpy(), None, num_frames, cfg)
        model.load_state_dict(state)
        return model

    # --- structure -------------------------------------------------------------------------
    @property
    def num_anchors(self) -> int:
        return self.anchor_xyz.shape[0]

    def per_anchor_parameters(self) -> dict[str, nn.Parameter]:
        return {"log_scale": self.log_scale, "offsets": self.offsets, "feat": self.feat,
                "stream": self.stream, "mask_logits": self.mask_logits}

    def decoder_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.opacity_mlp, self.color_mlp, self.cov_mlp, self.motion_mlp) for p in m.parameters()]

    @torch.no_grad()
    def update_knn(self) -> None:
        """Each anchor's `cfg.knn` nearest kept anchors (M_p > 1/2), itself excluded, by `cfg.knn_rule`
        (`knn.nearest_kept`: the same neighbours whatever the anchors' order, so the decoder finds the trainer's)."""
        kept = np.nonzero((self.mask_logits[:, 3] > 0).cpu().numpy())[0]
        idx = nearest_kept(self.anchor_xyz.cpu().numpy(), kept, self.cfg.knn, self.cfg.knn_rule, self.cfg.voxel_size)
        self.knn_index = torch.as_tensor(idx, dtype=torch.long, device=self.anchor_xyz.device)

    @torch.no_grad()
    def append_anchors(self, other: "GIFStreamModel") -> None:
        """Add `other`'s anchors (same config and frame count; its decoders are ignored), before training."""
        if other.num_frames != self.num_frames or other.cfg != self.cfg:
            raise ValueError("append_anchors needs a model of the same configuration and frame count")
        self.anchor_xyz = torch.cat([self.anchor_xyz, other.anchor_xyz.to(self.anchor_xyz)])
        for name, param in self.per_anchor_parameters().items():
            setattr(self, name, nn.Parameter(torch.cat([param.data, getattr(other, name).data.to(param)])))
        self.update_knn()

    # --- masks -----------------------------------------------------------------------------
    def masks(self, state: DecodeState) -> dict[str, torch.Tensor]:
        m = torch.sigmoid(self.mask_logits)
        quantized = state.quantize != "none"
        out = {name: quantize_mask(m[:, i], quantized) for i, name in enumerate(MASK_NAMES[:3])}
        out["p"] = m[:, 3] + ((m[:, 3] > 0.5).float() - m[:, 3]).detach()  # binarised with STE
        if not state.use_stream:
            out["de"] = torch.zeros_like(out["de"])
            out["dy"] = torch.zeros_like(out["dy"])
            out["knn"] = torch.full_like(out["knn"], 0.5)
        return out

    def stream_at(self, t: int, state: DecodeState) -> torch.Tensor:
        if state.stream_window > 0:
            lo, hi = max(0, t - state.stream_window), min(self.num_frames, t + state.stream_window + 1)
            return self.stream[:, lo:hi].mean(1)
        return self.stream[:, t]

    # --- decoding --------------------------------------------------------------------------
    def frame_inputs(self, frames: list[int], state: DecodeState, values: AnchorValues | None = None):
        """(h (F, N, C+P), masks) of each of `frames`: the time-invariant feature beside the stream gated by M_de,
        as every decoder sees them."""
        masks = values.masks if values is not None and values.masks is not None else self.masks(state)
        feat = values.feat if values is not None else quantize_values(self.feat, state.feat_step, state.quantize)
        stream = torch.stack([self.stream_at(t, state) for t in frames])
        stream = quantize_values(stream, state.feat_step, state.quantize)
        return torch.cat([feat.expand(len(frames), -1, -1), masks["de"][:, None] * stream], -1), masks

    def anchor_inputs(self, t: int, state: DecodeState, values: AnchorValues | None = None):
        """(h (N, C+P), masks) of frame t (`frame_inputs` of one frame)."""
        h, masks = self.frame_inputs([t], state, values)
        return h[0], masks

    def _motion(self, h: torch.Tensor, neighbours: torch.Tensor, embedding: torch.Tensor, m_knn: torch.Tensor,
                m_dy: torch.Tensor):
        """Translation (n, 3) and rotation (n, 4) from the rows' inputs h (n, D), their neighbours' mean (n, D),
        the time embedding (n, E) and their masks M_knn, M_dy (n, 1)."""
        motion_in = torch.cat([m_knn * h + (1 - m_knn) * neighbours, embedding], -1)
        motion = self.motion_mlp(motion_in) * m_dy
        anchor_rot = nn.functional.normalize(0.1 * motion[:, 3:] + torch.tensor([1.0, 0, 0, 0], device=h.device), dim=-1)
        return motion[:, :3], anchor_rot

    def _time_embeddings(self, frames: list[int], like: torch.Tensor) -> torch.Tensor:
        """(F, 2 * time_freqs) embedding of each frame of `frames`."""
        return torch.stack([time_embedding(t / max(1, self.num_frames - 1), self.cfg.time_freqs) for t in frames]).to(like)

    def decode(self, t: int, camera=None, state: DecodeState = DecodeState(), return_aux: bool = False,
               values: AnchorValues | None = None):
        """The Gaussians of frame t (0 <= t < num_frames) of this GOP: the one path from parameters to Gaussians.

        Args:
            camera: when given, only the anchors whose Gaussians can reach its image are decoded: those with M_p
                kept that, placed by their decoded motion at frame t, lie within a conservative bound of their
                Gaussians' extent of the image (`_reaches`). None: every anchor.
            state: how decoding is shaped (stream on/off, quantisation mode and steps, stream window, fixed shape).
            values: quantised time-invariant anchor values replacing the model's own: feat (N, C), log_scale
                (N, 6), offsets (N, K, 3), masks {de, dy, knn, p: (N,)} (None: quantise the parameters here).
            return_aux: also return what the trainer's losses and growth statistics need (`DecodeAux`).
        Returns:
            Gaussians with at most n * K entries (n anchors decoded, K offsets each; those of opacity <= 0 are
            dropped): means (M, 3), quats (M, 4), scales (M, 3), opacities (M,), colors (M, 3). With
            `state.fixed_shape`, all N * K, those that do not show with opacity 0. With `return_aux`, also the aux.
        """
        gaussians, _, aux = self._decode_rows([t], None if camera is None else [camera], state, values)
        return (gaussians, aux) if return_aux else gaussians

    def decode_windows(self, frames: list[int], windows: list, state: DecodeState = DecodeState(),
                       values: AnchorValues | None = None):
        """The Gaussians of frames[i] that can show in windows[i] (cameras of one image size, e.g. crops made
        by `Camera.cropped`), for several windows in one pass (the trainer's windows on moving pixels, which
        `render.render_batch` renders together): what `decode(frames[i], windows[i])` gives, for all i at once.
        Returns the Gaussians and (M,) long: the window each belongs to (with `state.fixed_shape`, in blocks of
        `rows_per_window(state)`, window after window)."""
        gaussians, slot, _ = self._decode_rows(frames, windows, state, values)
        return gaussians, slot

    def rows_per_window(self, state: DecodeState) -> int | None:
        """The Gaussians of each window of `decode_windows` when they come in equal, contiguous blocks, window after
        window: with `state.fixed_shape`, every anchor's K children (what `render_batch(per_image=...)` takes to
        give each of gsplat's scenes its own window only). None for a compact decode, whose counts differ."""
        return self.num_anchors * self.cfg.num_offsets if state.fixed_shape else None

    def _reach(self, idx: torch.Tensor, state: DecodeState, values: AnchorValues | None) -> torch.Tensor:
        """(n,) a bound on how far the 3.33-sigma extents of anchors idx's Gaussians reach from where the anchor
        is: the longest offset plus 3.33 times the largest scale, under any quantisation noise of the step."""
        with torch.no_grad():
            if values is not None:
                log_scale, offsets, slack = values.log_scale[idx], values.offsets[idx], 0.0
            else:
                log_scale, offsets = self.log_scale[idx], self.offsets[idx]
                slack = 0.5 * state.geo_step if state.quantize != "none" else 0.0
            longest = (offsets.abs() + slack).norm(dim=-1).amax(1) * torch.exp(log_scale[:, :3].amax(1) + slack)
            return longest + MAX_EXTEND * torch.exp(log_scale[:, 3:].amax(1) + slack)

    def _row_motion(self, h_flat: torch.Tensor, idx: torch.Tensor, slot: torch.Tensor, embeddings: torch.Tensor,
                    masks: dict[str, torch.Tensor]):
        """(h (n, D), translation (n, 3), rotation (n, 4)) of rows idx (n,) at frames slot (n,): h_flat (F * N, D)
        holds every anchor's input at each frame, embeddings (F, E) each frame's time embedding."""
        base = slot * self.num_anchors  # the row of each anchor's frame in h_flat
        h = h_flat[idx + base]
        translation, rotation = self._motion(h, h_flat[self.knn_index[idx] + base[:, None]].mean(1), embeddings[slot],
                                             masks["knn"][idx, None], masks["dy"][idx, None])
        return h, translation, rotation

    def _decode_rows(self, frames: list[int], cameras: list | None, state: DecodeState, values: AnchorValues | None):
        """Decode the anchors at frames[i] that can show in cameras[i]'s image (every anchor, one frame, when
        cameras is None): (Gaussians, (M,) the i of each Gaussian, `DecodeAux`).

        A compact decode (`state.fixed_shape` False) finds the rows that can show without autograd (motion of
        every anchor with M_p kept, `_reaches`) and builds the graph only for them; a fixed-shape one decodes
        every anchor at every frame and folds what a compact decode drops (rows that cannot show, children of
        opacity <= 0) into opacity 0 with no gradient, with no host-device read-back."""
        k, n_all, device = self.cfg.num_offsets, self.num_anchors, self.anchor_xyz.device
        h_frames, masks = self.frame_inputs(frames, state, values)  # (F, N, C+P)
        h_flat = h_frames.reshape(-1, h_frames.shape[-1])
        embeddings = self._time_embeddings(frames, h_flat)
        if cameras is None or state.fixed_shape:
            anchors = torch.arange(n_all, device=device)
        else:  # only what the motion-free part can show at all: M_p kept
            anchors = torch.nonzero(masks["p"] > 0).squeeze(1)
        idx = anchors.repeat(len(frames))
        slot = torch.arange(len(frames), device=device).repeat_interleave(len(anchors))
        if cameras is not None and not state.fixed_shape:
            with torch.no_grad():
                _, translation, _ = self._row_motion(h_flat, idx, slot, embeddings, masks)
            seen = torch.nonzero(self._reaches(idx, slot, translation, cameras, state, values)).squeeze(1)
            idx, slot = idx[seen], slot[seen]
        h, translation, anchor_rot = self._row_motion(h_flat, idx, slot, embeddings, masks)
        m_p = masks["p"][idx]
        shown = torch.ones_like(idx, dtype=torch.bool)
        if cameras is not None and state.fixed_shape:
            shown = (m_p > 0) & self._reaches(idx, slot, translation.detach(), cameras, state, values)

        opacity = torch.tanh(self.opacity_mlp(h)) * m_p[:, None]  # (n, K)
        color = torch.sigmoid(self.color_mlp(h)).reshape(-1, k, 3)
        cov = self.cov_mlp(h).reshape(-1, k, 7)
        if values is not None:
            log_scale, offsets = values.log_scale[idx], values.offsets[idx]
        else:
            log_scale = quantize_values(self.log_scale[idx], state.geo_step, state.quantize)
            offsets = quantize_values(self.offsets[idx], state.geo_step, state.quantize)
        scales = torch.exp(log_scale[:, None, 3:]) * torch.sigmoid(cov[..., :3]) * m_p[:, None, None]
        rot = nn.functional.normalize(cov[..., 3:], dim=-1)
        local = offsets * torch.exp(log_scale[:, None, :3])
        rotated = torch.einsum("nij,nkj->nki", quat_to_rotmat(anchor_rot), local)
        means = self.anchor_xyz[idx, None, :] + rotated + translation[:, None, :]
        quats = quat_multiply(anchor_rot[:, None, :].expand(-1, k, -1), rot)
        keep = ((opacity > 0) & shown[:, None]).reshape(-1)  # (n * K,) the children that show
        shown_opacity = torch.where(keep, opacity.reshape(-1), torch.zeros_like(keep, dtype=opacity.dtype))
        fields = [means.reshape(-1, 3), quats.reshape(-1, 4), scales.reshape(-1, 3), shown_opacity,
                  color.reshape(-1, 3), slot[:, None].expand(-1, k).reshape(-1)]
        if state.fixed_shape:  # every child, in order
            child = torch.arange(len(keep), device=device)
        else:
            child = torch.nonzero(keep).squeeze(1)
            fields = [field[child] for field in fields]
        *tensors, child_slot = fields
        gaussians = Gaussians(*tensors)
        return gaussians, child_slot, DecodeAux(idx, shown, child, opacity, scales, translation, masks)

    def _reaches(self, idx, slot, translation, cameras, state, values) -> torch.Tensor:
        """(n,) bool: whether anchor idx[i], moved by translation[i], can show in cameras[slot[i]]'s image (its
        Gaussians' extent bounded by `_reach`, tested by `render.projection.reach_image`)."""
        tensors = [camera_tensors(camera, idx.device) for camera in cameras]
        viewmats = torch.stack([v for v, _ in tensors]).index_select(0, slot)
        Ks = torch.stack([K for _, K in tensors]).index_select(0, slot)
        sizes = {(camera.width, camera.height) for camera in cameras}
        if len(sizes) != 1:
            raise ValueError(f"decoding several images at once needs cameras of one image size, got {sorted(sizes)}")
        (width, height), = sizes
        centres = self.anchor_xyz[idx] + translation.detach()
        return reach_image(centres, self._reach(idx, state, values), viewmats, Ks, width, height)
