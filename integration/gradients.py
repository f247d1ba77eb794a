"""Normals -> per-pixel depth slopes and trust weights (orthographic and perspective).

Both formulations give, for every pixel, the difference its normal predicts between the
solution at the next column (``gu``) or the next row (``gv``) and at the pixel itself:

Orthographic (height ``h``, z towards the camera, ``s`` = pixel size)::

    gu = -n_x / n_z * s        gv = +n_y / n_z * s      (rows go down, y goes up)

Perspective (solution ``log d``, ``d`` = distance along the optical axis; ``a, b`` the
normalised ray coordinates of :func:`integration.camera.normalized_rays`)::

    D  = n_z - n_x * a + n_y * b          (= -n . ray in the y-down/z-forward frame)
    gu = n_x / (f_x * D)       gv = -n_y / (f_y * D)

Derived from ``n . dP/du = 0`` with ``P = d * (a, b, 1)``. ``D / |ray|`` is the cosine
between the normal and the line of sight, so grazing pixels have a small ``D``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from integration.camera import Camera, normalized_rays


@dataclass
class GradientField:
    """Slopes and weights for every pixel of an ``H x W`` grid (float64)."""

    gu: np.ndarray
    """Predicted ``z[r, c+1] - z[r, c]`` from pixel ``(r, c)``'s normal, solution units."""
    gv: np.ndarray
    """Predicted ``z[r+1, c] - z[r, c]`` from pixel ``(r, c)``'s normal, solution units."""
    weight: np.ndarray
    """Trust in ``[0, inf)``: confidence times the grazing factor; 0 = unknown normal."""
    slope_scale: float
    """Multiplies a solution-unit difference per pixel into a dimensionless slope:
    ``1 / pixel_size`` (orthographic) or the mean focal length (perspective, log depth)."""


def gradients_from_normals(normals: np.ndarray, mask: np.ndarray, *, camera: Camera | None,
                           pixel_size: float, grazing_nz: float,
                           confidence: np.ndarray | None) -> GradientField:
    """Turn an ``H x W x 3`` camera-space normal map into a :class:`GradientField`.

    Normals need not be unit length (they are normalised here); NaN or zero-length normals
    and pixels outside ``mask`` get weight 0 and slope 0, so they never leak into the
    solution. Grazing pixels (cosine to the line of sight below ``grazing_nz``) get their
    cosine clamped to ``grazing_nz`` and weight ``(cos / grazing_nz)**2`` (0 if back-facing).
    """
    n = np.asarray(normals, dtype=np.float64)
    length = np.sqrt(np.einsum("hwc,hwc->hw", n, n))
    known = np.isfinite(length) & (length > 1e-12) & mask
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(known[..., None], n / np.where(known, length, 1.0)[..., None], 0.0)
    nx, ny, nz = n[..., 0], n[..., 1], n[..., 2]

    if camera is None:
        cosine = nz
        denom = np.maximum(cosine, grazing_nz)
        gu = -nx / denom * pixel_size
        gv = ny / denom * pixel_size
        slope_scale = 1.0 / pixel_size
    else:
        a, b = normalized_rays(camera, mask.shape)
        ray_len = np.sqrt(1.0 + a * a + b * b)
        d = nz - nx * a + ny * b
        cosine = d / ray_len
        denom = np.maximum(cosine, grazing_nz) * ray_len
        gu = nx / (camera.fx * denom)
        gv = -ny / (camera.fy * denom)
        slope_scale = 0.5 * (camera.fx + camera.fy)

    weight = np.where(known, np.clip(cosine / grazing_nz, 0.0, 1.0) ** 2, 0.0)
    if confidence is not None:
        weight = weight * confidence
    gu = np.where(known, gu, 0.0)
    gv = np.where(known, gv, 0.0)
    return GradientField(gu=gu, gv=gv, weight=weight, slope_scale=float(slope_scale))


def normals_from_height(height: np.ndarray, pixel_size: float = 1.0) -> np.ndarray:
    """Unit normals ``H x W x 3`` of an orthographic height map by central differences.

    Inverse of the orthographic formulas above; handy for tests and synthetic data.
    NaN heights propagate to their neighbours' normals.
    """
    z = np.asarray(height, dtype=np.float64)
    dz_dcol = np.gradient(z, axis=1) / pixel_size
    dz_drow = np.gradient(z, axis=0) / pixel_size
    # y is up while rows go down, hence the sign flip on the row derivative.
    n = np.stack([-dz_dcol, dz_drow, np.ones_like(z)], axis=-1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)
