"""Similarity alignment of a predicted mesh to a scan: landmark Procrustes, then ICP-style
refinement that minimises the scan-to-mesh distance.

Frames: the scan's frame is the reference (millimetres after unit conversion); a
:class:`Similarity` maps prediction points into it: ``x_scan = s * R @ x_pred + t``.
Reflections are never allowed (a mirrored face would otherwise fit well).

The refinement keeps the prediction mesh fixed in its own frame (one open3d BVH, built
once) and moves the scan points into it with the inverse similarity. Each round finds the
exact closest point on the mesh's triangles for every scan point
(``RaycastingScene.compute_closest_points``), then solves a small similarity update that
minimises the point-to-plane distances (see :func:`refine_similarity`). Under a similarity, distances
measured in the prediction frame are ``1/s`` times those in the scan frame, so the
objective is the same in both frames. A trimmed fraction of the largest residuals gets
zero weight each round: cropped scan parts the prediction does not cover (neck, hair cap,
ears) must not drag the fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facenormals3d.similarity import Similarity, umeyama  # noqa: F401 (re-exported)
from facenormals3d.raster import raycasting_scene


@dataclass(frozen=True)
class RefineSettings:
    """How the scan-to-mesh refinement runs."""

    with_scale: bool = True
    """Refine the scale too (False for metric evaluation: the scale stays as given)."""
    trim: float = 0.9
    """Fraction of scan points (smallest residuals) that drive each round; the rest get weight 0."""
    coarse_points: int = 20_000
    """Rounds first run on a fixed random subset of this many scan points, then on all."""
    max_rounds: int = 60
    """Upper bound on rounds on the coarse subset (or on all points when there is no subset)."""
    max_fine_rounds: int = 12
    """Upper bound on rounds on all points after the coarse stage converged."""
    tolerance: float = 1e-5
    """Stop a stage when the RMS motion of the points in a round is below this fraction of
    the scan's size."""
    seed: int = 0
    """Seed of the coarse subset (results are deterministic)."""


@dataclass
class RefineResult:
    """Outcome of :func:`refine_similarity`."""

    similarity: Similarity
    """Prediction -> scan map after refinement."""
    rounds: int
    """Closest-point rounds run (coarse + fine)."""
    history: list[float] = field(default_factory=list)
    """Trimmed RMS scan-to-mesh distance (scan units) after each round."""


class MeshDistance:
    """Exact unsigned point-to-triangle distances to one fixed mesh (open3d BVH)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        import open3d as o3d

        self._o3d = o3d
        v = np.asarray(vertices, dtype=np.float64)
        self.origin = 0.5 * (v.min(axis=0) + v.max(axis=0))
        self.scene = raycasting_scene(v - self.origin, faces)

    def closest(self, points: np.ndarray, with_normals: bool = False):
        """``N x 3`` closest points on the surface (float64) for ``N x 3`` query points, and
        with ``with_normals`` also the ``N x 3`` unit normals of the triangles they lie on."""
        # float32 in open3d: points are re-centred on the mesh so mm-scale scans far from
        # the origin (e.g. at 900 mm) keep ~1e-4 mm precision.
        q = self._o3d.core.Tensor(np.ascontiguousarray(points - self.origin, dtype=np.float32))
        out = self.scene.compute_closest_points(q)
        closest = out["points"].numpy().astype(np.float64) + self.origin
        if not with_normals:
            return closest
        return closest, out["primitive_normals"].numpy().astype(np.float64)

    def distance(self, points: np.ndarray) -> np.ndarray:
        """``N`` unsigned distances (float64) from ``points`` to the surface."""
        return np.linalg.norm(self.closest(points) - points, axis=1)


def refine_similarity(scan_points: np.ndarray, mesh: MeshDistance, init: Similarity,
                      settings: RefineSettings = RefineSettings()) -> RefineResult:
    """Refine ``init`` (prediction -> scan) to minimise trimmed scan-to-mesh distances.

    Each round linearises the point-to-plane distance (the distance to the closest
    triangle's plane, exact to first order near the surface) in a small similarity update
    and solves the 7 x 7 (6 x 6 without scale) weighted normal equations; this converges
    in a handful of rounds where point-to-point ICP slides for dozens.

    Args:
        scan_points: ``N x 3`` scan points (reference frame).
        mesh: the prediction mesh, in its own frame.
        init: starting similarity, e.g. from :func:`umeyama` on landmarks.
    """
    pts = np.asarray(scan_points, dtype=np.float64)
    size = float(np.linalg.norm(pts.max(0) - pts.min(0))) or 1.0
    rng = np.random.default_rng(settings.seed)
    stages = [(None, settings.max_rounds)]
    if len(pts) > settings.coarse_points:
        subset = np.sort(rng.choice(len(pts), settings.coarse_points, replace=False))
        stages = [(subset, settings.max_rounds), (None, settings.max_fine_rounds)]
    sim, history, rounds = init, [], 0
    for subset, max_rounds in stages:
        p = pts if subset is None else pts[subset]
        for _ in range(max_rounds):
            on_mesh, normals = mesh.closest(sim.inverse().apply(p), with_normals=True)
            m = sim.apply(on_mesh)  # closest points, scan frame
            n = normals @ sim.rotation.T
            resid = np.linalg.norm(m - p, axis=1)
            keep = resid <= np.quantile(resid, settings.trim) if settings.trim < 1 else np.ones(len(p), bool)
            history.append(float(np.sqrt(np.mean(resid[keep] ** 2))))
            step = _point_to_plane_step(m[keep], n[keep], p[keep], settings.with_scale)
            moved = np.sqrt(np.mean(np.sum((step.apply(m) - m) ** 2, axis=1)))
            sim = sim.then(step)
            rounds += 1
            if moved < settings.tolerance * size:
                break
    return RefineResult(similarity=sim, rounds=rounds, history=history)


def _point_to_plane_step(m: np.ndarray, n: np.ndarray, p: np.ndarray, with_scale: bool) -> Similarity:
    """Small similarity ``x -> (1 + ds) R(w) (x - c) + c + dt`` (scan frame) that moves the
    mesh points ``m`` (with unit normals ``n``) onto the planes through the scan points ``p``,
    least squares on ``n . (x(m) - p)`` linearised in ``(w, dt, ds)``."""
    c = m.mean(axis=0)
    mc = m - c
    cols = [np.cross(mc, n), n] + ([np.sum(n * mc, axis=1, keepdims=True)] if with_scale else [])
    a = np.concatenate(cols, axis=1)
    b = -np.sum(n * (m - p), axis=1)
    ata = a.T @ a
    # A tiny ridge keeps the system solvable when the surface does not pin a direction.
    ata += np.eye(len(ata)) * 1e-9 * np.trace(ata)
    x = np.linalg.solve(ata, a.T @ b)
    rot = _rodrigues(x[:3])
    scale = 1.0 + (x[6] if with_scale else 0.0)
    return Similarity(scale, rot, c + x[3:6] - scale * rot @ c)


def _rodrigues(w: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(w))
    if theta < 1e-12:
        return np.eye(3)
    k = w / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx
