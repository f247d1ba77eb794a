"""Procedural surface detail: a tileable noise bank in UV space and face wrinkles.

The PCA face is smooth; real skin has bumps, fine lines and folds at the scale of a
pixel or two of a 256 crop (about 0.6-1 mm). The detail layer is a height field ``h``
(mm, along the normal) whose surface gradient bends the shading normal::

    n' = normalize(n - grad_s h)

``grad_s h = h_a * grad_s a + h_b * grad_s b`` for any surface parametrisation (a, b):
texture UV for the random skin texture (seamless over the face, fixed to the skin so it
moves with expressions), and the neutral mesh's (x, y) in mm for wrinkles placed from
the landmarks (forehead lines, crow's feet, nasolabial folds, frown lines, under-eye).

All the noise is band-limited (nothing finer than ~2 texels / ~1.5 mm) so the normal
maps do not alias at 256 x 256.
"""

from __future__ import annotations

import functools

import numpy as np

#: Bank channels (see :func:`noise_bank`).
FINE, FINE_DU, FINE_DV = 0, 1, 2
MID, MID_DU, MID_DV = 3, 4, 5
LINES, LINES_DU, LINES_DV = 6, 7, 8
BLOTCH, FRECKLE, STREAK = 9, 10, 11
N_CHANNELS = 12


@functools.lru_cache(maxsize=2)
def noise_bank(size: int = 512, seed: int = 20240611) -> np.ndarray:
    """``size x size x N_CHANNELS`` float32 periodic noise with derivatives, unit std.

    Fixed seed: every process builds the same bank; samples vary it by the random
    affine map they look it up through (see :func:`lookup`). Derivatives are with
    respect to tile coordinates (the tile is [0, 1)^2) and exact (taken in Fourier space).
    """
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(size, d=1.0 / size)
    ku, kv = np.meshgrid(k, k)  # ku varies along columns (u), kv along rows (v)
    radius = np.hypot(ku, kv)

    def field(spectrum: np.ndarray, with_grad: bool) -> list[np.ndarray]:
        white = np.fft.fft2(rng.standard_normal((size, size)))
        f = white * spectrum
        base = np.real(np.fft.ifft2(f))
        std = base.std() + 1e-12
        out = [base / std]
        if with_grad:
            out.append(np.real(np.fft.ifft2(f * 2j * np.pi * ku)) / std)
            out.append(np.real(np.fft.ifft2(f * 2j * np.pi * kv)) / std)
        return out

    def ring(f0: float, width: float) -> np.ndarray:
        return np.exp(-0.5 * ((radius - f0) / width) ** 2) * (radius > 0)

    # Lines: energy concentrated at |kv| >> |ku| gives streaks along u (fine creases).
    lines = np.exp(-0.5 * ((np.abs(kv) - 40.0) / 12.0) ** 2) * np.exp(-0.5 * (ku / 5.0) ** 2)
    streak = np.exp(-0.5 * ((np.abs(kv) - 60.0) / 30.0) ** 2) * np.exp(-0.5 * (ku / 3.0) ** 2)
    chans = (field(ring(56.0, 14.0), True) + field(ring(16.0, 5.0), True) + field(lines, True)
             + field(ring(4.0, 2.0), False) + field(ring(36.0, 10.0), False) + field(streak, False))
    return np.stack(chans, axis=-1).astype(np.float32)


def lookup(bank: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Bilinear, wrapping lookup of every bank channel at tile coordinates ``P x 2`` (u, v).

    Returns ``P x C`` float32. (u, v) = (0, 0) is the corner of texel (0, 0).
    """
    size = bank.shape[0]
    x = np.asarray(coords[:, 0], dtype=np.float64) * size - 0.5
    y = np.asarray(coords[:, 1], dtype=np.float64) * size - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx = (x - x0).astype(np.float32)[:, None]
    fy = (y - y0).astype(np.float32)[:, None]
    i0 = x0.astype(np.int64) % size
    j0 = y0.astype(np.int64) % size
    i1, j1 = (i0 + 1) % size, (j0 + 1) % size
    top = bank[j0, i0] * (1 - fx) + bank[j0, i1] * fx
    bot = bank[j1, i0] * (1 - fx) + bank[j1, i1] * fx
    return top * (1 - fy) + bot * fy


def surface_gradients(tri_points: np.ndarray, tri_params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Surface gradients of two per-vertex parameters over each pixel's triangle.

    Args:
        tri_points: ``P x 3 x 3`` corner positions (any frame, mm).
        tri_params: ``P x 3 x 2`` corner values of the parameters (a, b).

    Returns:
        ``grad_a, grad_b``: ``P x 3`` float32 vectors in the plane of each triangle with
        ``grad_a . (p_k - p_0) = a_k - a_0`` (units: parameter per mm).
    """
    e1 = tri_points[:, 1] - tri_points[:, 0]
    e2 = tri_points[:, 2] - tri_points[:, 0]
    d1 = tri_params[:, 1] - tri_params[:, 0]
    d2 = tri_params[:, 2] - tri_params[:, 0]
    g11 = np.einsum("pi,pi->p", e1, e1)
    g12 = np.einsum("pi,pi->p", e1, e2)
    g22 = np.einsum("pi,pi->p", e2, e2)
    det = g11 * g22 - g12 * g12
    det = np.where(np.abs(det) > 1e-12, det, 1e-12)
    out = []
    for c in range(2):
        # Solve [g11 g12; g12 g22] [x; y] = [d1_c; d2_c] and gradient = x e1 + y e2.
        x = (g22 * d1[:, c] - g12 * d2[:, c]) / det
        y = (g11 * d2[:, c] - g12 * d1[:, c]) / det
        out.append((x[:, None] * e1 + y[:, None] * e2).astype(np.float32))
    return out[0], out[1]


def perturb_normals(normals: np.ndarray, grad_h: np.ndarray) -> np.ndarray:
    """``normalize(n - tangential part of grad_h)`` for ``P x 3`` arrays."""
    g = grad_h - np.einsum("pi,pi->p", grad_h, normals)[:, None] * normals
    n = normals - g
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _groove(d: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-(d / width) ** 2)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of ``P x 2`` points to segment ab and the position along it in [0, 1]."""
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1), t


def wrinkle_height(xy: np.ndarray, lm: np.ndarray, w: dict) -> np.ndarray:
    """Height (mm, negative = groove) of the face's wrinkles at neutral-frame ``P x 2`` points.

    Args:
        xy: neutral-mesh (x, y) in mm of each pixel's surface point.
        lm: ``68 x 3`` neutral landmark positions (mm).
        w: drawn wrinkle parameters (see :func:`sample_wrinkles`).
    """
    x, y = xy[:, 0], xy[:, 1]
    h = np.zeros(len(xy), dtype=np.float64)
    brow_y = float(lm[17:27, 1].max())
    eye_w = float(lm[45, 0] - lm[36, 0])
    # Forehead: horizontal lines above the brows, wavy, fading toward the temples.
    if w["forehead"] > 0:
        window = _smoothstep(0.55 * eye_w, 0.25 * eye_w, np.abs(x)) * _smoothstep(brow_y + 4, brow_y + 12, y)
        window *= _smoothstep(brow_y + 60, brow_y + 45, y)
        for k in range(w["forehead_n"]):
            yk = brow_y + w["forehead_start"] + k * w["forehead_gap"]
            d = y - yk - w["forehead_wave"] * np.sin(x * w["forehead_freq"] + k * 1.7 + w["phase"])
            h -= w["forehead"] * (1 - 0.15 * k) * window * _groove(d, w["forehead_width"])
    # Frown lines: two short vertical grooves between the brows.
    if w["frown"] > 0:
        for sign in (-1, 1):
            d, t = _segment_distance(xy, np.array([sign * 0.07 * eye_w, brow_y - 6]),
                                     np.array([sign * 0.1 * eye_w, brow_y + 12]))
            h -= w["frown"] * _groove(d, 1.2) * np.sin(np.pi * t)
    # Nasolabial folds: from beside the nose wing to beside the mouth corner.
    if w["nasolabial"] > 0:
        for wing, corner, sign in ((31, 48, -1), (35, 54, 1)):
            a = lm[wing, :2] + np.array([sign * 6.0, 3.0])
            b = lm[corner, :2] + np.array([sign * 7.0, -9.0])
            d, t = _segment_distance(xy, a, b)
            h -= w["nasolabial"] * _groove(d, 2.8) * np.sin(np.pi * np.clip(t * 0.9 + 0.1, 0, 1))
    # Crow's feet: a fan of short lines from the outer eye corners.
    if w["crows"] > 0:
        for corner, sign in ((36, -1), (45, 1)):
            c = lm[corner, :2]
            for ang in w["crows_angles"]:
                dirv = np.array([sign * np.cos(ang), np.sin(ang)])
                d, t = _segment_distance(xy, c + dirv * 5.0, c + dirv * 16.0)
                h -= w["crows"] * _groove(d, 0.9) * np.sin(np.pi * t)
    # Under-eye line: an arc below each eye.
    if w["undereye"] > 0:
        for a_i, b_i in ((36, 39), (42, 45)):
            a, b = lm[a_i, :2] + np.array([0, -7.0]), lm[b_i, :2] + np.array([0, -7.0])
            d, t = _segment_distance(xy, a, b)
            h -= w["undereye"] * _groove(d, 1.3) * np.sin(np.pi * t)
    return h


def sample_wrinkles(rng: np.random.Generator, age: float) -> dict:
    """Random wrinkle parameters; depths (mm) grow with ``age`` in [0, 1]."""
    def depth(scale: float, p: float) -> float:
        return float(scale * age * rng.uniform(0.3, 1.0)) if rng.random() < p else 0.0

    return {"forehead": depth(0.45, 0.7), "forehead_n": int(rng.integers(2, 5)),
            "forehead_start": float(rng.uniform(10, 18)), "forehead_gap": float(rng.uniform(6, 10)),
            "forehead_wave": float(rng.uniform(0.5, 2.5)), "forehead_freq": float(rng.uniform(0.05, 0.15)),
            "forehead_width": float(rng.uniform(0.9, 1.8)), "phase": float(rng.uniform(0, 6.28)),
            "frown": depth(0.4, 0.5), "nasolabial": depth(0.9, 0.85), "crows": depth(0.3, 0.6),
            "crows_angles": rng.uniform(-0.7, 0.7, size=int(rng.integers(2, 5))).tolist(),
            "undereye": depth(0.3, 0.6)}
