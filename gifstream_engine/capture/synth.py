"""The embedded default capture: a small dynamic scene rendered with Blender's Cycles, saved as N3DV.

The engine never imports bpy: Blender runs `blender_side/synthetic_scene.py` in its own process (the `bpy` module of
this interpreter by default, or a given Python/Blender executable). The rig is computed here, in OpenCV
convention, and the same numbers go to Blender and to `poses_bounds.npy`.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from .. import validate
from ..errors import CaptureError
from ..fileio import atomic_open
from .llff import w2c_to_llff
from .video import ImageSequenceSource, write_video

# Kept in a folder of its own: running it as a script puts its folder first on sys.path.
# the motions the scene script animates (its MOTIONS; tests/test_capture_readers.py checks that they agree)
MOTIONS = ("orbit", "translate", "spin", "enter")
SCENE_SCRIPT = os.path.join(os.path.dirname(__file__), "blender_side", "synthetic_scene.py")


@dataclasses.dataclass
class SynthConfig:
    num_cameras: int = 8
    num_frames: int = 30
    width: int = 160
    height: int = 120
    fps: float = 30.0
    samples: int = 16
    # Cycles' OpenImageDenoise on each rendered image: at 16 samples the raw path-tracing noise differs in every
    # camera (30.5 dB against a 512-sample render), which no 3D model can reproduce in a held-out view; denoised,
    # the footage is 33.0 dB from it (README, "Motion")
    denoise: bool = True
    seed: int = 0
    focal_px: float | None = None  # default: a 50 degree horizontal field of view
    arc_degrees: float = 100.0
    radius: float = 4.6
    height_m: float = 1.7
    target: tuple[float, float, float] = (0.0, 0.3, 0.7)
    motion: str = "orbit"  # what the ball and cube do (blender_side/synthetic_scene.py MOTIONS)

    def validate(self) -> None:
        if self.num_cameras < 2:
            raise CaptureError(f"a synthetic capture needs at least 2 cameras, got {self.num_cameras}")
        if self.num_frames < 1 or self.width < 16 or self.height < 16:
            raise CaptureError(f"synthetic capture needs >=1 frame and >=16x16 pixels, got {self.num_frames} frames at {self.width}x{self.height}")
        validate.image_size(self.width, self.height, "synthetic capture", CaptureError)
        if self.motion not in MOTIONS:
            raise CaptureError(f"unknown synthetic motion {self.motion!r}; choose one of {', '.join(MOTIONS)}")
        if self.width % 2 or self.height % 2:
            raise CaptureError(f"image size must be even for H.264 video, got {self.width}x{self.height}")


def look_at_c2w(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV camera-to-world (4, 4): z towards the target, y down, in a z-up world."""
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, float))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def synth_rig(cfg: SynthConfig) -> list[dict]:
    """Cameras on a horizontal arc in front of the scene, alternating heights, all looking at the target."""
    focal = cfg.focal_px or 0.5 * cfg.width / np.tan(np.radians(25.0))
    target = np.asarray(cfg.target, float)
    cams = []
    for i, a in enumerate(np.linspace(-cfg.arc_degrees / 2, cfg.arc_degrees / 2, cfg.num_cameras)):
        angle = np.radians(a) - np.pi / 2  # centred on the -y axis, facing the back wall at +y
        z = cfg.height_m + (0.35 if i % 2 else -0.25)
        eye = np.array([cfg.radius * np.cos(angle), cfg.radius * np.sin(angle), z])
        cams.append({"name": f"cam{i:02d}", "c2w": look_at_c2w(eye, target).tolist(), "focal_px": float(focal)})
    # N3DV holds out cam00; put the test view in the middle of the arc so it sees what the others see.
    middle = cfg.num_cameras // 2
    cams[0]["c2w"], cams[middle]["c2w"] = cams[middle]["c2w"], cams[0]["c2w"]
    return cams


def blender_command(script: str, spec_path: str, python: str | None) -> list[str]:
    exe = python or sys.executable
    if os.path.basename(exe).lower().startswith("blender"):
        return [exe, "-b", "--factory-startup", "-P", script, "--", spec_path]
    return [exe, script, spec_path]


def render_synthetic_capture(out: str, cfg: SynthConfig = SynthConfig(), python: str | None = None, log=print) -> str:
    """Render the default dynamic scene into `out` in the N3DV layout; returns `out`."""
    cfg.validate()
    rig = synth_rig(cfg)
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gifstream_synth_") as tmp:
        spec = {**dataclasses.asdict(cfg), "out": tmp, "cameras": rig, "blend_path": os.path.join(tmp, "scene.blend")}
        spec_path = os.path.join(tmp, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        cmd = blender_command(SCENE_SCRIPT, spec_path, python)
        log(f"rendering {cfg.num_cameras} cameras x {cfg.num_frames} frames at {cfg.width}x{cfg.height} with Cycles")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise CaptureError(f"Blender failed to render the synthetic capture ({' '.join(cmd)}):\n{tail}")
        rows = []
        for cam in rig:
            pngs = sorted(glob.glob(os.path.join(tmp, cam["name"], "*.png")))
            if len(pngs) != cfg.num_frames:
                raise CaptureError(f"Blender wrote {len(pngs)} frames for {cam['name']}, expected {cfg.num_frames}")
            source = ImageSequenceSource(pngs, cam["name"])
            frames = source.read(0, cfg.num_frames, cfg.width, cfg.height)
            write_video(os.path.join(out, f"{cam['name']}.mp4"), frames, cfg.fps)
            c2w = np.asarray(cam["c2w"])
            near, far = scene_depth_range(c2w)
            rows.append(w2c_to_llff(np.linalg.inv(c2w), cfg.height, cfg.width, cam["focal_px"], near, far))
        with atomic_open(os.path.join(out, "poses_bounds.npy")) as f:
            np.save(f, np.stack(rows))
        shutil.copy(spec["blend_path"], os.path.join(out, "scene.blend"))
        with open(os.path.join(out, "synth.json"), "w") as f:
            json.dump({k: v for k, v in spec.items() if k not in ("out", "blend_path")}, f, indent=1)
    return out


# The scene's static geometry spans this box (floor, walls and props of blender_side/synthetic_scene.py).
SCENE_BOX = np.array([[-3.5, -5.0, 0.0], [5.0, 3.0, 5.0]])


def scene_depth_range(c2w: np.ndarray) -> tuple[float, float]:
    """Near/far depths of the scene box's corners as seen from one camera (LLFF bounds)."""
    corners = np.array([[x, y, z] for x in SCENE_BOX[:, 0] for y in SCENE_BOX[:, 1] for z in SCENE_BOX[:, 2]])
    depth = (corners - c2w[:3, 3]) @ c2w[:3, 2]
    return max(0.1, float(depth[depth > 0].min(initial=1.0)) * 0.5), float(depth.max())
