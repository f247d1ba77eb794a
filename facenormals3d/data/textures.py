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
def noise_bank(size: int = 256, seed: int = 20240611) -> np.ndarray:
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
    """Nearest-texel, wrapping lookup of every bank channel at tile coordinates ``P x 2`` (u, v).

    Returns ``P x C`` float32. Nearest (not bilinear) is enough: a texel of the bank is
    a third of a crop pixel on the face, and every feature spans several texels.
    """
    size = bank.shape[0]
    c = np.floor(np.asarray(coords, dtype=np.float32) * size).astype(np.int32) % size
    return np.take(bank.reshape(size * size, -1), c[:, 1] * size + c[:, 0], axis=0)


def surface_gradient(e1: np.ndarray, e2: np.ndarray, param_deltas: np.ndarray, dh: np.ndarray) -> np.ndarray:
    """Surface gradient of a height ``h`` given its derivatives along triangle parameters.

    For a pixel on triangle (p0, p1, p2) with K per-vertex parameters a (texture UV,
    neutral x/y, ...), ``h`` changes by ``dh . (a_i - a_0)`` from corner 0 to corner i.
    The gradient is the in-plane vector g with ``g . (p_i - p_0) = dh . (a_i - a_0)``,
    i = 1, 2, i.e. ``g = alpha e1 + beta e2`` from the 2 x 2 Gram system of the edges.

    Args:
        e1, e2: ``P x 3`` edge vectors p1 - p0 and p2 - p0 (mm).
        param_deltas: ``P x 2 x K`` parameter differences a1 - a0, a2 - a0.
        dh: ``P x K`` derivatives of h with respect to the parameters.

    Returns:
        ``P x 3`` float32 (mm of height per mm of surface).
    """
    s1 = np.einsum("pk,pk->p", dh, param_deltas[:, 0])
    s2 = np.einsum("pk,pk->p", dh, param_deltas[:, 1])
    g11 = np.einsum("pi,pi->p", e1, e1)
    g12 = np.einsum("pi,pi->p", e1, e2)
    g22 = np.einsum("pi,pi->p", e2, e2)
    det = g11 * g22 - g12 * g12
    det = np.where(np.abs(det) > 1e-12, det, np.float32(1e-12))
    alpha = (g22 * s1 - g12 * s2) / det
    beta = (g11 * s2 - g12 * s1) / det
    out = alpha[:, None] * e1
    out += beta[:, None] * e2
    return out.astype(np.float32, copy=False)


def perturb_normals(normals: np.ndarray, grad_h: np.ndarray) -> np.ndarray:
    """``normalize(n - tangential part of grad_h)`` for ``P x 3`` arrays."""
    g = grad_h - np.einsum("pi,pi->p", grad_h, normals)[:, None] * normals
    n = normals - g
    return n / np.maximum(np.sqrt(np.einsum("ij,ij->i", n, n)), 1e-12)[:, None]


def _groove(d: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-(d / width) ** 2)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of ``P x 2`` points to segment ab and the position along it in [0, 1]."""
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
    q = p - (a + t[:, None] * ab)
    return np.sqrt(q[:, 0] ** 2 + q[:, 1] ** 2), t


def near_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray, reach: float) -> np.ndarray:
    """Indices of the ``P x 2`` points inside the segment's bounding box grown by ``reach``.

    A cheap prefilter: grooves and strokes are thin, so only a few pixels need the full
    distance computation. Tests x first and y only on the survivors.
    """
    lo = np.minimum(a, b) - reach
    hi = np.maximum(a, b) + reach
    x = p[:, 0]
    idx = np.flatnonzero((x > lo[0]) & (x < hi[0]))
    y = p[idx, 1]
    return idx[(y > lo[1]) & (y < hi[1])]


def _add_groove(grad: np.ndarray, xy: np.ndarray, a, b, depth: float, width: float, t0: float = 0.0) -> None:
    """Add the gradient of a groove along segment ab to ``grad`` (``P x 2``, in place).

    The groove is ``h = -depth * exp(-(d / width)^2) * sin(pi * s)`` with ``d`` the
    distance to the segment and ``s = t0 + (1 - t0) * t`` (``t`` = position along it), so
    it fades out at the ends. Its gradient in closed form: with ``q`` = the point minus
    its closest point on the segment (``grad d = q / d``),
    ``grad h = -depth * g * (-2 q / width^2 * sin(pi s) + pi cos(pi s) (1 - t0) grad t)``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    idx = near_segment(xy, a, b, 3.0 * width)
    if len(idx) == 0:
        return
    p = xy[idx]
    ab = b - a
    ab2 = max(float(ab @ ab), 1e-9)
    t_raw = ((p - a) @ ab) / ab2
    t = np.clip(t_raw, 0.0, 1.0)
    q = p - (a + t[:, None] * ab)
    g = np.exp(-(q[:, 0] ** 2 + q[:, 1] ** 2) / width ** 2)
    s = t0 + (1 - t0) * t
    inside = ((t_raw > 0) & (t_raw < 1)).astype(np.float64)
    grad_t = inside[:, None] * ab[None] / ab2
    dh = -depth * g[:, None] * (-2.0 * q / width ** 2 * np.sin(np.pi * s)[:, None]
                                 + (np.pi * (1 - t0) * np.cos(np.pi * s))[:, None] * grad_t)
    grad[idx] += dh


def wrinkle_gradient(xy: np.ndarray, lm: np.ndarray, w: dict) -> np.ndarray:
    """Gradient ``P x 2`` (mm/mm) of the wrinkle height field at neutral-frame points.

    The height field is a sum of grooves (negative heights, mm) placed from the neutral
    landmarks: wavy forehead lines, frown lines, nasolabial folds, crow's feet and
    under-eye lines. Slowly varying fade-in windows are treated as constants.

    Args:
        xy: ``P x 2`` neutral-mesh (x, y) in mm of each pixel's surface point.
        lm: ``68 x 3`` neutral landmark positions (mm).
        w: drawn wrinkle parameters (see :func:`sample_wrinkles`).
    """
    grad = np.zeros((len(xy), 2), dtype=np.float64)
    brow_y = float(lm[17:27, 1].max())
    eye_w = float(lm[45, 0] - lm[36, 0])
    if w["forehead"] > 0:
        idx = np.flatnonzero((np.abs(xy[:, 0]) < 0.55 * eye_w) & (xy[:, 1] > brow_y + 4) & (xy[:, 1] < brow_y + 60))
        x, y = xy[idx, 0], xy[idx, 1]
        window = smoothstep(0.55 * eye_w, 0.25 * eye_w, np.abs(x)) * smoothstep(brow_y + 4, brow_y + 12, y)
        window *= smoothstep(brow_y + 60, brow_y + 45, y)
        wd = w["forehead_width"]
        for k in range(w["forehead_n"]):
            phase = x * w["forehead_freq"] + k * 1.7 + w["phase"]
            d = y - (brow_y + w["forehead_start"] + k * w["forehead_gap"]) - w["forehead_wave"] * np.sin(phase)
            # h = -D * window * exp(-(d/wd)^2); dh/dd = 2 D window d / wd^2 * exp(.)
            dh_dd = 2.0 * w["forehead"] * (1 - 0.15 * k) * window * d / wd ** 2 * np.exp(-(d / wd) ** 2)
            grad[idx, 0] += dh_dd * (-w["forehead_wave"] * w["forehead_freq"] * np.cos(phase))
            grad[idx, 1] += dh_dd
    if w["frown"] > 0:
        for sign in (-1, 1):
            _add_groove(grad, xy, [sign * 0.07 * eye_w, brow_y - 6], [sign * 0.1 * eye_w, brow_y + 12], w["frown"], 1.2)
    if w["nasolabial"] > 0:
        for wing, corner, sign in ((31, 48, -1), (35, 54, 1)):
            _add_groove(grad, xy, lm[wing, :2] + [sign * 6.0, 3.0], lm[corner, :2] + [sign * 7.0, -9.0],
                        w["nasolabial"], 2.8, t0=0.1)
    if w["crows"] > 0:
        for corner, sign in ((36, -1), (45, 1)):
            c = lm[corner, :2]
            for ang in w["crows_angles"]:
                dirv = np.array([sign * np.cos(ang), np.sin(ang)])
                _add_groove(grad, xy, c + dirv * 5.0, c + dirv * 16.0, w["crows"], 0.9)
    if w["undereye"] > 0:
        for a_i, b_i in ((36, 39), (42, 45)):
            _add_groove(grad, xy, lm[a_i, :2] + [0, -7.0], lm[b_i, :2] + [0, -7.0], w["undereye"], 1.3)
    return grad


def sample_wrinkles(rng: np.random.Generator, age: float) -> dict:
    """Random wrinkle parameters; depths (mm) grow with ``age`` in [0, 1]."""
    def depth(scale: float, p: float) -> float:
        return float(scale * age * rng.uniform(0.3, 1.0)) if rng.random() < p else 0.0

    return {"forehead": depth(0.3, 0.7), "forehead_n": int(rng.integers(2, 5)),
            "forehead_start": float(rng.uniform(10, 18)), "forehead_gap": float(rng.uniform(6, 10)),
            "forehead_wave": float(rng.uniform(0.5, 2.5)), "forehead_freq": float(rng.uniform(0.05, 0.15)),
            "forehead_width": float(rng.uniform(0.9, 1.8)), "phase": float(rng.uniform(0, 6.28)),
            "frown": depth(0.3, 0.5), "nasolabial": depth(0.7, 0.85), "crows": depth(0.2, 0.6),
            "crows_angles": rng.uniform(-0.7, 0.7, size=int(rng.integers(2, 5))).tolist(),
            "undereye": depth(0.2, 0.6)}
