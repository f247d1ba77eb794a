"""Analytic surfaces with exact normals, for tests, benchmarks and synthetic data.

A surface is given on the pixel grid as a :class:`Field`: its value and its exact
derivatives along columns and rows (per pixel, pixel centres at ``+0.5``). Two
converters turn a field into normals:

* :func:`height_normals` - the field is an orthographic height (z towards the camera);
* :func:`depth_normals` - the field is a perspective depth seen through a camera.

Both use the exact derivatives, so the normals carry no finite-difference error and the
only error left in an integration test is the solver's own discretisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from integration.camera import Camera, normalized_rays

#: Face-like bumps ``(amplitude, x0, y0, sigma2)`` in units of the image width, y up:
#: a broad head, a nose, two brows and a chin; depth range ~0.3 of the width when
#: scaled by ``0.3 * width``.
FACE_BUMPS = ((1.0, 0.0, 0.0, 0.08), (0.35, 0.0, 0.02, 0.004), (0.08, -0.12, 0.12, 0.006),
              (0.08, 0.12, 0.12, 0.006), (0.1, 0.0, -0.22, 0.01), (-0.06, 0.0, -0.12, 0.003))


@dataclass
class Field:
    """A scalar field on an ``H x W`` grid with exact derivatives (float64 arrays)."""

    value: np.ndarray
    """Field value per pixel."""
    d_col: np.ndarray
    """Derivative per pixel step to the right."""
    d_row: np.ndarray
    """Derivative per pixel step down."""

    def __add__(self, other: "Field") -> "Field":
        return Field(self.value + other.value, self.d_col + other.d_col, self.d_row + other.d_row)

    def scaled(self, factor: float, offset: float = 0.0) -> "Field":
        return Field(self.value * factor + offset, self.d_col * factor, self.d_row * factor)


def _centred(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    """Pixel-centre coordinates in units of the width, x right and y up, origin at the centre."""
    h, w = shape
    x = (np.arange(w) + 0.5 - w / 2.0) / w
    y = (h / 2.0 - np.arange(h) - 0.5) / w
    return np.broadcast_to(x[None, :], shape), np.broadcast_to(y[:, None], shape), float(w)


def gaussian_bumps(shape: tuple[int, int], bumps=FACE_BUMPS, scale: float = 0.3) -> Field:
    """Sum of Gaussians ``sum a * exp(-((x-x0)^2 + (y-y0)^2) / s2)`` times ``scale * W`` pixels."""
    x, y, w = _centred(shape)
    val = np.zeros(shape)
    dx = np.zeros(shape)
    dy = np.zeros(shape)
    for a, x0, y0, s2 in bumps:
        g = a * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / s2)
        val += g
        dx += g * (-2.0 * (x - x0) / s2)
        dy += g * (-2.0 * (y - y0) / s2)
    # x and y are in widths: one pixel step is 1/w; rows go down while y goes up.
    return Field(val * scale * w, dx * scale, -dy * scale)


def plane(shape: tuple[int, int], slope_col: float, slope_row: float, offset: float = 0.0) -> Field:
    """``offset + slope_col * (col - W/2) + slope_row * (row - H/2)`` (slopes per pixel)."""
    h, w = shape
    c = np.arange(w) + 0.5 - w / 2.0
    r = np.arange(h) + 0.5 - h / 2.0
    val = offset + slope_col * c[None, :] + slope_row * r[:, None]
    return Field(val, np.full(shape, float(slope_col)), np.full(shape, float(slope_row)))


def sphere_cap(shape: tuple[int, int], radius: float, base: float = 0.0) -> Field:
    """Orthographic upper hemisphere of ``radius`` pixels centred in the image, height above
    ``base``. Outside the sphere's disc the value is NaN."""
    h, w = shape
    c = np.arange(w) + 0.5 - w / 2.0
    r = np.arange(h) + 0.5 - h / 2.0
    cc, rr = np.meshgrid(c, r)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.sqrt(radius**2 - cc**2 - rr**2)
        return Field(z + base, -cc / z, -rr / z)


def height_normals(height: Field, pixel_size: float = 1.0) -> np.ndarray:
    """Exact unit normals ``H x W x 3`` of an orthographic height field (in ``pixel_size`` units)."""
    dzdx = height.d_col / pixel_size
    dzdy = -height.d_row / pixel_size  # y is up
    n = np.stack([-dzdx, -dzdy, np.ones_like(dzdx)], axis=-1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def depth_normals(depth: Field, camera: Camera) -> np.ndarray:
    """Exact unit OpenGL normals ``H x W x 3`` of a perspective depth field (distance along
    the optical axis), facing the camera."""
    a, b = normalized_rays(camera, depth.value.shape)
    d = depth.value
    ray = np.stack([a, b, np.ones_like(a)], axis=-1)                      # y down, z forward
    dp_du = depth.d_col[..., None] * ray + d[..., None] * np.array([1.0 / camera.fx, 0, 0])
    dp_dv = depth.d_row[..., None] * ray + d[..., None] * np.array([0, 1.0 / camera.fy, 0])
    n = np.cross(dp_du, dp_dv)
    n *= -np.sign(np.einsum("hwc,hwc->hw", n, ray))[..., None]            # face the camera
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return n * np.array([1.0, -1.0, -1.0])                                # to OpenGL


def sphere_depth(camera: Camera, shape: tuple[int, int], centre, radius: float):
    """Perspective depth ``H x W`` and OpenGL normals of a sphere (``centre`` in OpenGL
    coordinates, in front of the camera: ``centre[2] < 0``). NaN where rays miss."""
    a, b = normalized_rays(camera, shape)
    ray = np.stack([a, -b, -np.ones_like(a)], axis=-1)                    # OpenGL, z = -1
    c = np.asarray(centre, dtype=np.float64)
    # |t ray - c|^2 = R^2, nearest root; t is the depth because ray_z = -1.
    qa = np.einsum("hwc,hwc->hw", ray, ray)
    qb = -2.0 * ray @ c
    qc = c @ c - radius**2
    disc = qb**2 - 4 * qa * qc
    with np.errstate(invalid="ignore"):
        t = (-qb - np.sqrt(disc)) / (2 * qa)
    t = np.where(disc > 0, t, np.nan)
    normals = (t[..., None] * ray - c) / radius
    return t, normals


def disc_mask(shape: tuple[int, int], radius: float = 0.45, hole: float = 0.0,
              hole_offset: tuple[float, float] = (0.15, 0.1)) -> np.ndarray:
    """Boolean disc of ``radius`` (fraction of the width) centred in the image, optionally
    with a round hole of radius ``hole`` at ``hole_offset`` (x right, y up, widths)."""
    x, y, _ = _centred(shape)
    mask = x**2 + y**2 < radius**2
    if hole > 0:
        mask &= (x - hole_offset[0]) ** 2 + (y - hole_offset[1]) ** 2 >= hole**2
    return mask
