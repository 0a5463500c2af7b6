"""The plain Gaussians of one frame: what every model produces and every backend renders."""

from __future__ import annotations

import dataclasses

import torch

from ..errors import RenderError


@dataclasses.dataclass
class Gaussians:
    means: torch.Tensor  # (N, 3) world positions
    quats: torch.Tensor  # (N, 4) rotations as (w, x, y, z); normalised by the renderer
    scales: torch.Tensor  # (N, 3) standard deviations along the rotated axes (linear, not log)
    opacities: torch.Tensor  # (N,) in [0, 1]
    colors: torch.Tensor  # (N, 3) RGB in [0, 1]

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expected = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,), "colors": (n, 3)}
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise RenderError(f"Gaussians.{name} has shape {got}, expected {shape}")

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def device(self) -> torch.device:
        return self.means.device

    def to(self, device) -> "Gaussians":
        return Gaussians(*(t.to(device) for t in self.tensors()))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    def select(self, index: torch.Tensor) -> "Gaussians":
        """A subset by boolean mask or index tensor."""
        return Gaussians(*(t[index] for t in self.tensors()))

    @staticmethod
    def cat(parts: list["Gaussians"]) -> "Gaussians":
        return Gaussians(*(torch.cat(ts) for ts in zip(*(p.tensors() for p in parts))))

    def detach(self) -> "Gaussians":
        return Gaussians(*(t.detach() for t in self.tensors()))


def gaussians_from_points(points, colors, opacity: float = 0.9, neighbours: int = 3, device="cpu") -> Gaussians:
    """Isotropic Gaussians on a point cloud, sized by the mean distance to the nearest neighbours.

    points (N, 3) float, colors (N, 3) uint8 — the usual first look at an SfM cloud, and 3DGS's init.
    """
    import numpy as np
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        raise RenderError("cannot make Gaussians from an empty point cloud")
    k = min(neighbours + 1, len(points))
    dist, _ = cKDTree(points).query(points, k=k)
    radius = dist[:, 1:].mean(1) if k > 1 else np.full(len(points), 0.01)
    radius = np.clip(radius, 1e-4, None)
    n = len(points)
    as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731
    return Gaussians(
        means=as_tensor(points),
        quats=as_tensor(np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))),
        scales=as_tensor(np.repeat(radius[:, None], 3, axis=1)),
        opacities=as_tensor(np.full(n, opacity)),
        colors=as_tensor(np.asarray(colors, dtype=np.float32) / 255.0),
    )
