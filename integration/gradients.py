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

Normal-space form (the bilateral method, after Cao et al. 2022): multiplying the slope
equation ``dz = g`` by ``n~ * unit`` gives one equation per direction that stays finite at
grazing pixels::

    n~ * unit_u * dz_u = b_u,   n~ * unit_v * dz_v = b_v

with ``n~ = n_z``, ``unit = 1 / s``, ``(b_u, b_v) = (-n_x, n_y)`` (orthographic) or
``n~ = D``, ``(unit_u, unit_v) = (f_x, f_y)``, ``(b_u, b_v) = (n_x, -n_y)`` (perspective).
Its residuals are dimensionless (normal components), which is what the bilateral
sharpness ``k`` is measured in.
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
    trust: np.ndarray
    """Confidence alone in ``[0, inf)`` (1 when none was given), 0 = unknown normal; the
    bilateral method's own grazing factor is ``nz_tilde**2``."""
    nz_tilde: np.ndarray
    """``n~`` of the normal-space form (module docstring): ``n_z`` or ``D``, unclamped (may be
    <= 0 at grazing or back-facing pixels); 0 where the normal is unknown."""
    b_u: np.ndarray
    """Right-hand side of the normal-space equation along columns; 0 where unknown."""
    b_v: np.ndarray
    """Right-hand side of the normal-space equation along rows; 0 where unknown."""
    unit_u: float
    """Turns a solution-unit difference along columns into a slope: ``1 / pixel_size``
    (orthographic) or ``f_x`` (perspective, log depth)."""
    unit_v: float
    """The same along rows: ``1 / pixel_size`` or ``f_y``."""


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
        nz_tilde, b_u, b_v = nz, -nx, ny
        unit_u = unit_v = 1.0 / pixel_size
    else:
        a, b = normalized_rays(camera, mask.shape)
        ray_len = np.sqrt(1.0 + a * a + b * b)
        d = nz - nx * a + ny * b
        cosine = d / ray_len
        denom = np.maximum(cosine, grazing_nz) * ray_len
        gu = nx / (camera.fx * denom)
        gv = -ny / (camera.fy * denom)
        nz_tilde, b_u, b_v = d, nx, -ny
        unit_u, unit_v = camera.fx, camera.fy

    trust = known.astype(np.float64)
    if confidence is not None:
        trust = trust * confidence
    weight = np.clip(cosine / grazing_nz, 0.0, 1.0) ** 2 * trust
    gu = np.where(known, gu, 0.0)
    gv = np.where(known, gv, 0.0)
    return GradientField(gu=gu, gv=gv, weight=weight, trust=trust, nz_tilde=np.where(known, nz_tilde, 0.0),
                         b_u=np.where(known, b_u, 0.0), b_v=np.where(known, b_v, 0.0),
                         unit_u=float(unit_u), unit_v=float(unit_v))


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
