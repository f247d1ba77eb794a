"""The crop frame: how the square face crop's pixels map to millimetres.

One orthographic front view, used by every stage that goes between the 256 x 256 crop
and the mesh (coarse face, fitting, detail, texture baking, refinement, landmark lifting,
previews). ``S`` is the crop side in pixels and ``s`` millimetres per crop pixel:

* a continuous crop pixel ``(u, v)`` (u right, v down, pixel centres at ``+0.5``; landmark
  ``z`` in pixels towards the camera) is the point ``x = (u - S/2) * s``,
  ``y = -(v - S/2) * s``, ``z = z_px * s`` (mm; x right, y up, z towards the camera, origin
  at the crop centre);
* pixel column ``c``, row ``r`` has its centre at ``x = (c + 0.5 - S/2) * s``,
  ``y = -(r + 0.5 - S/2) * s``.

:mod:`facenormals3d.integration` keeps its own general camera (it is dependency-isolated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CropFrame:
    """The square crop's orthographic mm <-> pixel mapping."""

    size: int
    """Crop side ``S`` in pixels."""
    mm_per_pixel: float
    """Millimetres per crop pixel ``s`` (the metric scale assumption)."""

    @property
    def half_extent_mm(self) -> float:
        """Half the crop side in mm (the orthographic view's half width)."""
        return 0.5 * self.size * float(self.mm_per_pixel)

    def to_mm(self, points: np.ndarray) -> np.ndarray:
        """Crop-pixel points ``N x 2`` or ``N x 3`` (u right, v down, z px towards the camera)
        -> ``N x 2`` or ``N x 3`` float64 mm in the crop frame."""
        p = np.asarray(points, dtype=np.float64)
        half, s = self.size / 2, self.mm_per_pixel
        out = np.empty((len(p), p.shape[1]))
        out[:, 0] = (p[:, 0] - half) * s
        out[:, 1] = -(p[:, 1] - half) * s
        if p.shape[1] > 2:
            out[:, 2] = p[:, 2] * s
        return out

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """Points ``N x 2+`` (mm, crop frame) -> ``N x 2`` continuous crop pixels ``(u, v)``
        (v down, pixel centres at +0.5). Keeps the input's float dtype."""
        p = np.asarray(points)
        half, s = self.size / 2, self.mm_per_pixel
        return np.stack([p[:, 0] / s + half, half - p[:, 1] / s], axis=1)

    def pixel_centres(self, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` in mm of the centres of pixel columns ``cols`` and rows ``rows`` (any
        shapes; the result follows their float dtype, float64 for integer indices)."""
        half, s = self.size / 2, self.mm_per_pixel
        return (cols + 0.5 - half) * s, -(rows + 0.5 - half) * s

    def resized(self, size: int) -> "CropFrame":
        """The same square region sampled with ``size`` pixels a side."""
        return CropFrame(int(size), self.mm_per_pixel * self.size / size)
