"""Training configuration: one dataclass per concern, loaded from a TOML preset, overridable from the CLI."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from typing import Any

from .. import validate
from ..errors import ConfigError
from ..fileio import read_input
from ..frames import parse_frame_range
from ..model import ModelConfig, validate_model
from ..model.config import LEGACY_KNN_RULE

# shipped inside the package (a wheel carries them); the repository's presets/ is a link to this folder
MAX_PRESET_BYTES = 1 << 20  # a preset is a few dozen lines
PRESET_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "presets")


@dataclasses.dataclass
class TrainConfig:
    steps: int = 30000  # per GOP
    gop_length: int = 60
    downscale: float = 1.0
    frames: str = ""  # START:STOP of the capture to train (`--frames`); empty: every frame
    seed: int = 0
    device: str = "auto"  # auto, cpu or cuda
    # auto: gsplat on CUDA, PyTorch on the CPU; torch: the PyTorch rasteriser on any device (slower on a GPU: for a
    # machine whose gsplat kernels cannot be built, and for comparing the two); gsplat: CUDA only
    rasterizer: str = "auto"
    # schedule (fractions of steps)
    canonical_frac: float = 0.05
    joint_end_frac: float = 0.2  # uniform-noise quantisation from here
    round_frac: float = 0.6667  # straight-through rounding from here
    entropy_start_frac: float = 0.3333
    stream_window: int = 3  # f_t averaged over t±window at first, shrinking to 0 by joint_end_frac
    # learning rates
    lr_feat: float = 0.0075
    lr_stream: float = 0.0075
    lr_offsets: float = 0.01
    lr_scale: float = 0.007
    lr_mask: float = 0.01
    lr_mlp: float = 0.004
    lr_entropy: float = 0.002
    # loss weights
    ssim_weight: float = 0.2
    # the L1 term weighs a pixel 1 + motion_weight * (how far it departs from its camera's temporal median, 0..1):
    # DyNeRF-style importance for what moves (train/losses.py); 0 weighs every pixel alike
    motion_weight: float = 0.0
    # each step also renders this many windows of other (camera, frame) pairs centred on moving pixels, a
    # motion_patch_size fraction of the image's width and height, their loss weighted motion_patch_weight in all
    # (train/motion_patches.py); 0: one training image per step
    motion_patches: int = 0
    motion_patch_size: float = 0.3
    motion_patch_weight: float = 1.0
    lambda_scale: float = 0.01
    lambda_mask: float = 0.0005
    lambda_temporal: float = 0.01
    lambda_spatial: float = 0.001
    lambda_entropy: float = 0.001
    # quantisation steps
    feat_step: float = 1.0
    geo_step: float = 0.04
    # densification (Scaffold-GS rules with the time-mixed gradient)
    densify_every: int = 100
    densify_start_frac: float = 0.0167
    densify_end_frac: float = 0.5
    grad_threshold: float = 0.0002  # on the NDC-space 2D gradient, as 3DGS/Scaffold-GS
    time_mix_alpha: float = 0.1  # g = alpha * max_t g_t + (1 - alpha) * mean_t g_t
    min_opacity: float = 0.005
    prune_start_frac: float = 0.5
    prune_end_frac: float = 0.6667
    max_anchors: int = 1_000_000
    seed_frames: int = 1  # frames of the GOP (spread evenly, frame 0 first) whose SfM points seed the anchors
    knn_every: int = 100
    # output
    checkpoint_every: int = 1000
    log_every: int = 25
    train_eval_stride: int = 5  # frames between train-PSNR samples in eval
    disable_stream: bool = False  # the paper's ablation: no feature stream (M_de = 0 throughout)

    def validate(self, origin: str = "train") -> None:
        """Every value finite and of its type, then the ranges below (fields without a rule: finite only)."""
        validate.fields(self, origin, TRAIN_RULES, ConfigError)
        fr = (self.canonical_frac, self.joint_end_frac, self.round_frac)
        if not 0 <= fr[0] <= fr[1] <= fr[2] <= 1:
            raise ConfigError(
                f"schedule fractions must satisfy 0 <= canonical_frac <= joint_end_frac <= round_frac <= 1, got {fr}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"train.device must be auto, cpu or cuda, got {self.device!r}")
        if self.rasterizer not in ("auto", "gsplat", "torch"):
            raise ConfigError(f"train.rasterizer must be auto, gsplat or torch, got {self.rasterizer!r}")
        if self.frames:
            parse_frame_range(self.frames)  # START:STOP, or a FrameRangeError saying what is wrong
        if self.rasterizer == "gsplat" and self.device == "cpu":
            raise ConfigError("train.rasterizer=gsplat needs CUDA: use device=cuda, or rasterizer=auto or torch")


# field -> bounds for `validate.number` (`integer` follows the field's type); other numeric fields: finite
_FRACTION = {"minimum": 0.0, "maximum": 1.0}
TRAIN_RULES: dict[str, dict] = {
    "steps": {"minimum": 10}, "gop_length": {"minimum": 1}, "downscale": {"minimum": 1.0}, "seed": {"minimum": 0},
    "stream_window": {"minimum": 0}, "densify_every": {"minimum": 1}, "knn_every": {"minimum": 1},
    "max_anchors": {"minimum": 1}, "motion_weight": {"minimum": 0.0}, "motion_patches": {"minimum": 0, "maximum": 64},
    "motion_patch_size": {"above": 0.0, "maximum": 1.0}, "motion_patch_weight": {"minimum": 0.0}, "seed_frames": {"minimum": 1}, "checkpoint_every": {"minimum": 1}, "log_every": {"minimum": 1},
    "train_eval_stride": {"minimum": 1}, "feat_step": {"above": 0.0}, "geo_step": {"above": 0.0},
    **{name: {"above": 0.0} for name in ("lr_feat", "lr_stream", "lr_offsets", "lr_scale", "lr_mask", "lr_mlp", "lr_entropy")},
    **{name: {"minimum": 0.0} for name in ("lambda_scale", "lambda_mask", "lambda_temporal", "lambda_spatial",
                                           "lambda_entropy", "grad_threshold", "min_opacity")},
    **{name: _FRACTION for name in ("canonical_frac", "joint_end_frac", "round_frac", "entropy_start_frac",
                                    "densify_start_frac", "densify_end_frac", "prune_start_frac", "prune_end_frac",
                                    "time_mix_alpha", "ssim_weight")},
}
@dataclasses.dataclass
class RunConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self, origin: str = "") -> None:
        prefix = f"{origin}: " if origin else ""
        validate_model(self.model, prefix + "model")
        self.train.validate(prefix + "train")

    @staticmethod
    def from_dict(data: dict, origin: str = "saved config") -> "RunConfig":
        cfg = RunConfig()
        if not isinstance(data, dict):
            raise ConfigError(f"{origin}: expected an object with [model] and [train], got {type(data).__name__}")
        if isinstance(data.get("model"), dict) and "knn_rule" not in data["model"]:
            cfg.model.knn_rule = LEGACY_KNN_RULE  # saved before the rule was recorded: trained with the legacy one
        apply_section(cfg, data, origin)
        cfg.validate(origin)
        return cfg


def _coerce(current: Any, value: Any, key: str) -> Any:
    if isinstance(current, bool):
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{key} expects true/false, got {value!r}")
        return bool(value)
    if isinstance(current, (int, float)) and isinstance(value, bool):
        raise ConfigError(f"{key} expects a {type(current).__name__}, got {value!r}")
    try:
        if isinstance(current, int) and not isinstance(current, bool):
            number = float(value) if isinstance(value, (str, float)) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError("not a whole number")
            return int(number)
        if isinstance(current, float):
            return float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{key} expects a {type(current).__name__}, got {value!r}") from exc
    return value


def apply_section(cfg: RunConfig, data: dict, origin: str) -> None:
    for section, values in data.items():
        target = getattr(cfg, section, None) if section in ("model", "train") else None
        if target is None or not isinstance(values, dict):
            raise ConfigError(f"{origin}: unknown section [{section}]; expected [model] or [train]")
        for key, value in values.items():
            if not hasattr(target, key):
                known = ", ".join(f.name for f in dataclasses.fields(target))
                raise ConfigError(f"{origin}: unknown key {section}.{key}; known keys: {known}")
            setattr(target, key, _coerce(getattr(target, key), value, f"{origin}: {section}.{key}"))


def preset_path(name: str) -> str:
    if os.path.isfile(name) or (os.path.exists(name) and name.endswith(".toml")):  # the input rule says what it is
        return name
    path = os.path.join(PRESET_DIR, f"{name}.toml")
    if not os.path.isfile(path):
        names = sorted(f[:-5] for f in os.listdir(PRESET_DIR) if f.endswith(".toml")) if os.path.isdir(PRESET_DIR) else []
        raise ConfigError(f"unknown preset {name!r}; expected a TOML file or one of {names}")
    return path


# where a run trains, not what it trains: a run may resume with other values of these (e.g. on another device)
PLACEMENT = {"train": ("device", "rasterizer")}


def run_identity(config: dict) -> dict:
    """A run's configuration (`RunConfig.to_dict()`) without its placement: what must match for --resume."""
    return {section: {k: v for k, v in values.items() if k not in PLACEMENT.get(section, ())}
            if isinstance(values, dict) else values for section, values in config.items()}


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """`section.key=value` overrides applied to `cfg` (in place), then every value checked."""
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"override {item!r} is not of the form section.key=value (e.g. train.steps=2000)")
        apply_section(cfg, {section: {name: value.strip()}}, "--set")
    cfg.validate()
    return cfg


def load_config(presets: list[str], overrides: list[str] = ()) -> RunConfig:
    """Presets applied left to right (e.g. 'n3dv', 'r1'), then `section.key=value` overrides."""
    cfg = RunConfig()
    for name in presets:
        path = preset_path(name)
        try:
            data = tomllib.loads(read_input(path, "preset", ConfigError, MAX_PRESET_BYTES).decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"preset {path} is not valid TOML: {exc}") from exc
        apply_section(cfg, data, path)
    return apply_overrides(cfg, list(overrides))
