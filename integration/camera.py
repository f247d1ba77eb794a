"""Pinhole camera and turning depth maps into camera-space points.

Image coordinates: ``u`` to the right (column), ``v`` down (row); the centre of pixel
``(row, col)`` is ``(u, v) = (col + 0.5, row + 0.5)``. Camera space is OpenGL style: x
right, y up, z towards the viewer, so a visible point has ``z < 0``.

Perspective depth ``d`` is the positive distance along the optical axis; the pixel at
``(u, v)`` with depth ``d`` is the point::

    X = (u - cx) / fx * d,   Y = -(v - cy) / fy * d,   Z = -d

OpenCV (and most calibration tools) put pixel centres at *integer* coordinates instead:
the centre of pixel ``(row, col)`` is ``(col, row)`` there, so the same principal point has
coordinates 0.5 smaller. :meth:`Camera.from_K` converts such a 3x3 matrix by adding 0.5
to ``cx`` and ``cy``; build :class:`Camera` directly only from values in this module's
convention (e.g. ``cx = width / 2`` for a centred principal point).

Orthographic height ``h`` (z towards the camera) with ``pixel_size`` world units per pixel
puts the image centre on the optical axis::

    X = (col + 0.5 - W / 2) * pixel_size,   Y = -(row + 0.5 - H / 2) * pixel_size,   Z = h
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels of the image the normal map belongs to."""

    fx: float
    """Focal length along image x (columns), pixels."""
    fy: float
    """Focal length along image y (rows), pixels."""
    cx: float
    """Principal point, column coordinate (pixel centres at +0.5)."""
    cy: float
    """Principal point, row coordinate (pixel centres at +0.5)."""

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(np.isfinite(v) for v in values):
            raise ValueError(f"camera: intrinsics must be finite, got {values}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"camera: focal lengths must be positive, got fx={self.fx}, fy={self.fy}")

    @staticmethod
    def from_K(K) -> "Camera":
        """Camera from an OpenCV-style 3x3 intrinsic matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.

        OpenCV puts pixel centres at integer coordinates, this module at ``+0.5`` (see the
        module docstring), so the principal point moves by half a pixel: ``cx + 0.5``,
        ``cy + 0.5``. Skew is not supported.
        """
        k = np.asarray(K, dtype=np.float64)
        if k.shape != (3, 3):
            raise ValueError(f"K: expected a 3x3 matrix, got shape {k.shape}")
        if not np.all(np.isfinite(k)):
            raise ValueError("K: entries must be finite")
        if not np.allclose(k[2], [0.0, 0.0, 1.0]) or k[1, 0] != 0.0:
            raise ValueError(f"K: last row must be [0, 0, 1] and K[1, 0] zero, got {k.tolist()}")
        if abs(k[0, 1]) > 1e-9 * abs(k[0, 0]):
            raise ValueError(f"K: skew {k[0, 1]} is not supported")
        return Camera(fx=float(k[0, 0]), fy=float(k[1, 1]), cx=float(k[0, 2]) + 0.5,
                      cy=float(k[1, 2]) + 0.5)

    @staticmethod
    def from_fov(width: int, height: int, fov_x_deg: float) -> "Camera":
        """Square-pixel camera centred on a ``width x height`` image with horizontal FOV."""
        f = 0.5 * width / np.tan(np.radians(fov_x_deg) / 2.0)
        return Camera(fx=f, fy=f, cx=width / 2.0, cy=height / 2.0)


def normalized_rays(camera: Camera, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel ``(a, b) = ((u - cx) / fx, (v - cy) / fy)``, each ``H x W`` float64.

    ``a`` grows to the right and ``b`` grows downwards (image convention).
    """
    h, w = shape
    a = (np.arange(w, dtype=np.float64) + 0.5 - camera.cx) / camera.fx
    b = (np.arange(h, dtype=np.float64) + 0.5 - camera.cy) / camera.fy
    return np.broadcast_to(a[None, :], (h, w)), np.broadcast_to(b[:, None], (h, w))


def depth_to_points(depth: np.ndarray, camera: Camera) -> np.ndarray:
    """Back-project a perspective depth map ``H x W`` to OpenGL points ``H x W x 3``.

    NaN depth gives NaN points. See the module docstring for the formula.
    """
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth: expected an H x W array, got shape {d.shape}")
    a, b = normalized_rays(camera, d.shape)
    return np.stack([a * d, -b * d, -d], axis=-1)


def height_to_points(height: np.ndarray, pixel_size: float = 1.0) -> np.ndarray:
    """Orthographic height map ``H x W`` to OpenGL points ``H x W x 3`` (image centre at x=y=0)."""
    z = np.asarray(height, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"height: expected an H x W array, got shape {z.shape}")
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f"pixel_size: must be positive, got {pixel_size}")
    h, w = z.shape
    x = (np.arange(w, dtype=np.float64) + 0.5 - w / 2.0) * pixel_size
    y = -(np.arange(h, dtype=np.float64) + 0.5 - h / 2.0) * pixel_size
    return np.stack([np.broadcast_to(x[None, :], (h, w)), np.broadcast_to(y[:, None], (h, w)), z], axis=-1)

