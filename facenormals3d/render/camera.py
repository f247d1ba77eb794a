"""Orthographic preview cameras in the project's mesh frame, and their PyTorch3D twin.

Our frame (see :mod:`facenormals3d.conventions`): x right, y up, z towards the viewer,
millimetres. A preview looks at the mesh from a direction given by ``yaw`` and ``pitch``:

* ``yaw_deg > 0`` moves the camera towards +x, so it sees the mesh's +x side (for a face
  looking down +z that is the subject's left cheek); ``yaw_deg = 90`` is a side view.
* ``pitch_deg > 0`` moves the camera up, looking down on the mesh.

We first rotate the mesh so the camera looks down -z again (``R = Rx(pitch) @ Ry(-yaw)``),
then frame the rotated mesh's x/y bounding box in a square image. Pixel coordinates are
continuous, x to the right and y down, the top-left pixel's centre at (0.5, 0.5).

PyTorch3D's view space is +X left, +Y up, +Z into the screen (row vectors,
``X_view = X_world @ R + T``). :func:`pytorch3d_camera` uses ``R = diag(-1, 1, -1)`` and
``T = (0, 0, z_max + 1)`` on the *normalised* rotated vertices, so our +x lands on
the image's right and +y on its top, and nearer points get a smaller z-buffer value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

@dataclass(frozen=True)
class OrthoView:
    """A square orthographic view of a mesh in our frame."""

    rotation: np.ndarray
    """3 x 3 float64; ``p_rot = rotation @ p`` turns the mesh so the camera looks down -z."""
    center: np.ndarray
    """3 float64, a point of the rotated frame that lands at the image centre (mm)."""
    half_extent: float
    """Half the image side, in mesh units (mm), as seen in the rotated frame."""
    size: int
    """Image side in pixels."""

    def normalise(self, points: np.ndarray) -> np.ndarray:
        """Map ``N x 3`` mesh points to the rotated frame scaled so the image spans [-1, 1]."""
        p = np.asarray(points, dtype=np.float64) @ self.rotation.T
        return (p - self.center) / self.half_extent

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """``N x 3`` mesh points -> ``N x 2`` continuous pixel coordinates (x right, y down)."""
        q = self.normalise(points)
        u = (q[:, 0] + 1.0) * 0.5 * self.size
        v = (1.0 - q[:, 1]) * 0.5 * self.size
        return np.stack([u, v], axis=1)

    @property
    def mm_per_pixel(self) -> float:
        return 2.0 * self.half_extent / self.size


def view_rotation(yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> np.ndarray:
    """3 x 3 rotation ``Rx(pitch) @ Ry(-yaw)`` that brings the camera direction to +z."""
    b = np.radians(-yaw_deg)
    a = np.radians(pitch_deg)
    ry = np.array([[np.cos(b), 0.0, np.sin(b)], [0.0, 1.0, 0.0], [-np.sin(b), 0.0, np.cos(b)]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])
    return rx @ ry


def frame_mesh(vertices: np.ndarray, *, yaw_deg: float = 0.0, pitch_deg: float = 0.0,
               size: int = 512, margin: float = 1.08) -> OrthoView:
    """The view that fits ``vertices`` (``V x 3``, mm) in a ``size`` square image.

    The image is centred on the x/y bounding box of the rotated vertices and its half side is
    ``margin`` times the larger half side of that box (so the mesh keeps its aspect ratio).
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"vertices must be a non-empty V x 3 array, got shape {v.shape}")
    finite = np.all(np.isfinite(v), axis=1)
    if not finite.any():
        raise ValueError("vertices are all non-finite")
    rot = view_rotation(yaw_deg, pitch_deg)
    p = v[finite] @ rot.T
    lo, hi = p.min(axis=0), p.max(axis=0)
    center = 0.5 * (lo + hi)
    half = 0.5 * float(max(hi[0] - lo[0], hi[1] - lo[1]))
    # A degenerate (point or line) mesh still gets a usable frame.
    half = margin * max(half, 1e-6 * max(1.0, float(np.abs(p).max())), 1e-9)
    return OrthoView(rotation=rot, center=center, half_extent=half, size=int(size))


def pytorch3d_camera(z_min: float, z_max: float, device: str = "cpu"):
    """FoVOrthographicCameras for vertices already passed through :meth:`OrthoView.normalise`.

    ``z_min``/``z_max`` bound the normalised z of the vertices; the camera sits 1 unit in
    front of the nearest one and the far plane 1 unit behind the farthest, so nothing is
    clipped however deep the mesh is.
    """
    import torch
    from pytorch3d.renderer import FoVOrthographicCameras

    r = torch.diag(torch.tensor([-1.0, 1.0, -1.0]))[None]
    t = torch.tensor([[0.0, 0.0, float(z_max) + 1.0]])
    return FoVOrthographicCameras(znear=0.5, zfar=float(z_max - z_min) + 2.0, R=r, T=t,
                                  device=device)
