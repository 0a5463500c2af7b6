"""Camera and Rig: one camera's calibration, and what a sequence keeps of its capture's cameras.

Convention (everywhere inside the engine): OpenCV camera axes (x right, y down, z forward),
`w2c` is the 4x4 world-to-camera matrix, `K` the 3x3 pixel intrinsics, pixel centres at +0.5.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import validate
from ..errors import CaptureError

SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class Camera:
    name: str
    width: int
    height: int
    K: np.ndarray  # (3, 3) float64 pixel intrinsics
    w2c: np.ndarray  # (4, 4) float64 world-to-camera, OpenCV axes
    distortion: np.ndarray | None = None  # OpenCV (k1, k2, p1, p2[, k3]) or None
    split: str = "train"

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64)
        w2c = np.asarray(self.w2c, dtype=np.float64)
        if K.shape != (3, 3):
            raise CaptureError(f"camera {self.name!r}: K must be 3x3, got shape {K.shape}")
        if w2c.shape == (3, 4):
            w2c = np.vstack([w2c, [0.0, 0.0, 0.0, 1.0]])
        if w2c.shape != (4, 4):
            raise CaptureError(f"camera {self.name!r}: w2c must be 4x4, got shape {w2c.shape}")
        if not np.all(np.isfinite(K)) or not np.all(np.isfinite(w2c)):
            raise CaptureError(f"camera {self.name!r}: K or w2c holds NaN/inf")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise CaptureError(f"camera {self.name!r}: focal lengths must be positive pixels, got fx={K[0, 0]:g}, fy={K[1, 1]:g}")
        if not np.array_equal(K[2], [0.0, 0.0, 1.0]) or K[1, 0] != 0:
            raise CaptureError(f"camera {self.name!r}: K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")
        validate.image_size(self.width, self.height, f"camera {self.name!r}", CaptureError)
        rot = w2c[:3, :3]
        if abs(np.linalg.det(rot) - 1.0) > 1e-3 or np.abs(rot @ rot.T - np.eye(3)).max() > 1e-3:
            raise CaptureError(f"camera {self.name!r}: w2c rotation is not orthonormal (det={np.linalg.det(rot):.4f})")
        if self.split not in SPLITS:
            raise CaptureError(f"camera {self.name!r}: split must be one of {SPLITS}, got {self.split!r}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "w2c", w2c)
        if self.distortion is not None:
            object.__setattr__(self, "distortion", np.asarray(self.distortion, dtype=np.float64))

    @property
    def c2w(self) -> np.ndarray:
        return np.linalg.inv(self.w2c)

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, (3,)."""
        rot, t = self.w2c[:3, :3], self.w2c[:3, 3]
        return -rot.T @ t

    def scaled(self, factor: float) -> "Camera":
        """The same camera with its image downscaled by `factor` (>= 1); CaptureError when that leaves no pixels."""
        width, height = int(round(self.width / factor)), int(round(self.height / factor))
        if width < 1 or height < 1:
            raise CaptureError(f"a downscale factor of {factor:g} leaves camera {self.name!r} "
                               f"({self.width}x{self.height} pixels) {width}x{height} pixels; the factor must be below "
                               f"{2 * min(self.width, self.height)}")
        K = self.K.copy()
        K[0, :] *= width / self.width
        K[1, :] *= height / self.height
        return dataclasses.replace(self, width=width, height=height, K=K)

    def cropped(self, x0: int, y0: int, width: int, height: int) -> "Camera":
        """The same camera seeing only the window of `width` x `height` pixels whose top-left pixel is (x0, y0):
        its render is that window of the full camera's render, but for Gaussians centred well outside the window,
        whose projection Jacobian the rasterisers clamp to the window's own frustum (as gsplat does; on the demo
        under 1/255 of a pixel's value)."""
        if not (0 <= x0 and 0 <= y0 and width > 0 and height > 0 and x0 + width <= self.width and y0 + height <= self.height):
            raise CaptureError(f"camera {self.name!r}: crop {width}x{height} at ({x0}, {y0}) leaves the "
                               f"{self.width}x{self.height} image")
        K = self.K.copy()
        K[0, 2] -= x0
        K[1, 2] -= y0
        return dataclasses.replace(self, width=width, height=height, K=K)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) and depths (N,) of world points (N, 3)."""
        cam = points @ self.w2c[:3, :3].T + self.w2c[:3, 3]
        depth = cam[:, 2]
        uv = cam @ self.K.T
        return uv[:, :2] / depth[:, None], depth

    def pixels(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pixel (column, row), clipped to the image, of world points (N, 3), and whether each lands inside the
        image in front of the camera (N,) bool."""
        with np.errstate(divide="ignore", invalid="ignore"):
            uv, depth = self.project(points)
        u, v = uv[:, 0], uv[:, 1]
        inside = (depth > 1e-3) & (u >= 0) & (u < self.width) & (v >= 0) & (v < self.height)
        col = np.clip(np.nan_to_num(u), 0, self.width - 1).astype(np.int64)
        row = np.clip(np.nan_to_num(v), 0, self.height - 1).astype(np.int64)
        return col, row, inside

    @staticmethod
    def from_json(spec: dict, default_name: str = "camera") -> "Camera":
        """The inverse of `to_json`; name, distortion and split are optional."""
        spec = validate.mapping(spec, "camera", CaptureError)
        name = validate.text(spec.get("name", default_name), "camera name", CaptureError)
        size = [validate.number(validate.field(spec, k, f"camera {name!r}", CaptureError), f"camera {name!r}: {k}",
                                CaptureError, integer=True, minimum=1) for k in ("width", "height")]
        K = validate.array(validate.field(spec, "K", f"camera {name!r}", CaptureError), f"camera {name!r}: K", CaptureError, (3, 3))
        w2c = validate.array(validate.field(spec, "w2c", f"camera {name!r}", CaptureError), f"camera {name!r}: w2c",
                             CaptureError, (4, 4))
        dist = spec.get("distortion")
        if dist is not None:
            dist = validate.array(dist, f"camera {name!r}: distortion", CaptureError, (None,))
        return Camera(name, *size, K, w2c, dist, spec.get("split", "train"))

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "width": int(self.width),
            "height": int(self.height),
            "K": self.K.tolist(),
            "w2c": self.w2c.tolist(),
            "distortion": None if self.distortion is None else self.distortion.tolist(),
            "split": self.split,
        }


@dataclasses.dataclass
class Rig:
    """What a sequence keeps of its capture so it can be viewed without it: frame rate, scene bounds, cameras.

    Saved in a run's config.json and in a bitstream's header (both as `to_json()`); `Capture.rig()` builds it."""

    fps: float
    scene_bounds: np.ndarray | None  # (2, 3): min and max corner in world units (None: not recorded)
    cameras: list[Camera]

    def to_json(self) -> dict:
        return {"fps": float(self.fps),
                "scene_bounds": None if self.scene_bounds is None else np.asarray(self.scene_bounds).tolist(),
                "cameras": [c.to_json() for c in self.cameras]}

    @staticmethod
    def from_json(spec, what: str, error: type[Exception] = CaptureError, sep: str = ".",
                  max_fps: float | None = None, require_bounds: bool = True, max_cameras: int | None = None) -> "Rig":
        """A rig read from a file: every field checked (at most `max_cameras` cameras are parsed), errors raised as
        `error` naming the field as `what` + `sep` + its name (e.g. "config.json: rig" "." "fps")."""
        spec = validate.mapping(spec, what, error)
        name = lambda key: f"{what}{sep}{key}"  # noqa: E731
        fps = validate.number(validate.field(spec, "fps", what, error), name("fps"), error, above=0.0, maximum=max_fps)
        bounds = spec.get("scene_bounds") if not require_bounds else validate.field(spec, "scene_bounds", what, error)
        if bounds is not None:
            bounds = validate.array(bounds, name("scene_bounds"), error, (2, 3))
        cams = validate.sequence(validate.field(spec, "cameras", what, error), name("cameras"), error, min_length=1)
        if max_cameras is not None and len(cams) > max_cameras:
            raise error(f"{what} lists {len(cams)} cameras, at most {max_cameras} are supported")
        cameras = []
        for i, cam in enumerate(cams):
            try:
                cameras.append(Camera.from_json(cam))
            except CaptureError as exc:
                raise error(f"{name('cameras')}[{i}]: {exc}") from exc
        return Rig(fps, bounds, cameras)

    def camera(self, name: str, what: str, error: type[Exception] = CaptureError) -> Camera:
        for camera in self.cameras:
            if camera.name == name:
                return camera
        raise error(f"{what}: no camera {name!r}; cameras are {sorted(c.name for c in self.cameras)}")

