"""Similarity transforms of 3D points and their least-squares fit (Umeyama 1991).

A :class:`Similarity` maps ``x -> s * R @ x + t`` (row-wise ``s * x @ R.T + t``) with a
proper rotation (no reflections). Used by the face-model fit (pose), the scan alignment
and the benchmarks; numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenormals3d.errors import InputError


def check_point_set(points: np.ndarray, n: int, source: str, what: str = "landmarks",
                    flat_ratio: float = 1e-3) -> np.ndarray:
    """``points`` as float64 ``n x 3`` when a similarity can be fitted to them, else
    :class:`InputError` naming ``source``: wrong shape, non-finite, all (nearly) equal, or
    (nearly) collinear (second singular value of the centred points below ``flat_ratio`` of
    the first)."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.shape != (n, 3):
        raise InputError(source, f"{what}: need {n} x 3, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(source, f"{what}: NaN or infinite coordinates")
    sv = np.linalg.svd(arr - arr.mean(0), compute_uv=False)
    if sv[0] < 1e-6 or sv[1] < flat_ratio * sv[0]:
        raise InputError(source, f"{what}: degenerate (all equal or collinear)")
    return arr


@dataclass(frozen=True)
class Similarity:
    """``x -> scale * rotation @ x + translation`` (row-wise: ``scale * x @ R.T + t``)."""

    scale: float
    """Uniform scale."""
    rotation: np.ndarray
    """3 x 3 proper rotation (det +1)."""
    translation: np.ndarray
    """3-vector."""

    @staticmethod
    def identity() -> "Similarity":
        return Similarity(1.0, np.eye(3), np.zeros(3))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map ``N x 3`` points (float64)."""
        return self.scale * np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation

    def inverse(self) -> "Similarity":
        r_inv = self.rotation.T
        return Similarity(1.0 / self.scale, r_inv, -(r_inv @ self.translation) / self.scale)

    def then(self, other: "Similarity") -> "Similarity":
        """The map ``other(self(x))``."""
        return Similarity(other.scale * self.scale, other.rotation @ self.rotation,
                          other.scale * other.rotation @ self.translation + other.translation)

    def to_dict(self) -> dict:
        return {"scale": float(self.scale), "rotation": self.rotation.tolist(),
                "translation": self.translation.tolist()}


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None, *,
            with_scale: bool = True, fixed_scale: float = 1.0) -> Similarity:
    """Least-squares similarity (Umeyama 1991) with ``dst ~ s * R @ src + t``, no reflection.

    Args:
        src, dst: ``N x 3`` corresponding points (N >= 3, not all collinear).
        weights: ``N`` non-negative weights (default all 1).
        with_scale: solve for the scale; otherwise use ``fixed_scale``.
    """
    a = np.asarray(src, dtype=np.float64)
    b = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(a)) if weights is None else np.asarray(weights, dtype=np.float64)
    total = w.sum()
    if total <= 0:
        raise ValueError("umeyama: all weights are zero")
    w = w / total
    mu_a, mu_b = w @ a, w @ b
    a0, b0 = a - mu_a, b - mu_b
    cov = (b0 * w[:, None]).T @ a0  # 3 x 3, sum_i w_i b_i a_i^T
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0  # the best reflection-free rotation
    rot = u @ np.diag(d) @ vt
    if with_scale:
        var_a = float(w @ np.sum(a0 * a0, axis=1))
        scale = float((sig * d).sum() / max(var_a, 1e-300))
    else:
        scale = float(fixed_scale)
    return Similarity(scale, rot, mu_b - scale * rot @ mu_a)
