"""Scoring a predicted face mesh against a ground-truth scan, NoW style.

Protocol (the NoW benchmark's, Sanyal et al. CVPR 2019; rules read from its public
evaluation code, ``scan2mesh_computations.py``):

1. Crop the scan to a sphere around its landmarks (:func:`crop_region`).
2. Similarity Procrustes on the 7 landmark pairs, prediction -> scan (no reflection).
3. Refine rotation, translation and scale to minimise the scan-to-mesh distance
   (:mod:`facenormals3d.evaluate.alignment`). ``metric=True`` keeps the scale fixed at 1
   (after unit conversion) in both steps, like NoW's metrical evaluation.
4. Report the median / mean / std of the unsigned distance from every cropped scan vertex
   to the aligned prediction's surface (exact point-to-triangle distances), in mm.

Differences from the reference code, on purpose: no reflections in Procrustes; the
refinement ignores the largest 10 % residuals each round (``trim``) so scan parts the
prediction does not cover do not drag the fit (all cropped points are still scored);
scans over ``max_points`` points after cropping are subsampled (:func:`scan_io.subsample`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facenormals3d.errors import InputError
from facenormals3d.evaluate.alignment import (MeshDistance, RefineSettings, Similarity,
                                              refine_similarity, umeyama)
from facenormals3d.evaluate.landmarks import check_landmarks

log = logging.getLogger("facenormals3d")


@dataclass(frozen=True)
class ScanEvalSettings:
    """How a prediction is scored against a scan."""

    metric: bool = False
    """Keep the prediction's scale (its units converted to mm); else solve for it."""
    crop_factor: float = 1.4
    """Crop radius factor of :func:`crop_region` (NoW: 1.4)."""
    trim: float = RefineSettings.trim
    """Fraction of residuals that drive each refinement round (see :class:`RefineSettings`)."""
    max_points: int = 300_000
    """Scans with more points than this after cropping are subsampled (seeded, uniform)."""
    seed: int = 0
    """Seed of every random subset (results are deterministic)."""
    refine: bool = True
    """Run step 3; False scores the landmark-only alignment."""


@dataclass
class ScanEvalResult:
    """Scan-to-mesh errors of one prediction (all lengths in mm)."""

    median: float
    """Median unsigned scan-to-mesh distance."""
    mean: float
    """Mean distance."""
    std: float
    """Standard deviation of the distances."""
    n_points: int
    """Scan points scored (after cropping and subsampling)."""
    distances: np.ndarray
    """``n_points`` float64 distances, in the order of :attr:`scan_indices`."""
    scan_indices: np.ndarray
    """Indices (into the loaded scan's points) of the scored points."""
    similarity: Similarity
    """Prediction (mm) -> scan map after alignment."""
    landmark_rmse: float
    """RMS landmark distance after the landmark Procrustes (step 2)."""
    landmark_rmse_final: float
    """RMS landmark distance after refinement (how far the refinement moved from the landmarks)."""
    rounds: int
    """Refinement rounds run."""
    crop_center: np.ndarray
    """Centre of the crop sphere (scan frame)."""
    crop_radius: float
    """Radius of the crop sphere."""
    notes: list[str] = field(default_factory=list)
    """Warnings (subsampling, repairs made while loading)."""

    def summary(self) -> dict:
        """JSON-ready numbers (no per-point arrays)."""
        return {"median_mm": self.median, "mean_mm": self.mean, "std_mm": self.std,
                "n_points": self.n_points, "scale": self.similarity.scale,
                "landmark_rmse_mm": self.landmark_rmse,
                "landmark_rmse_final_mm": self.landmark_rmse_final, "rounds": self.rounds,
                "crop_center": self.crop_center.tolist(), "crop_radius_mm": self.crop_radius,
                "similarity": self.similarity.to_dict(), "notes": list(self.notes)}


def crop_region(scan_landmarks: np.ndarray, factor: float = 1.4) -> tuple[np.ndarray, float]:
    """Centre and radius of the NoW crop sphere from 7 x 3 scan landmarks.

    NoW (``compute_mask`` in its evaluation code): nose bridge = midpoint of the inner eye
    corners; centre = nose bottom + 0.3 * (bridge - nose bottom); radius = 1.4 * (outer eye
    corner distance + bridge-to-nose-bottom distance) / 2.
    """
    lm = np.asarray(scan_landmarks, dtype=np.float64)
    bridge = 0.5 * (lm[1] + lm[2])
    centre = lm[4] + 0.3 * (bridge - lm[4])
    radius = factor * 0.5 * (np.linalg.norm(lm[0] - lm[3]) + np.linalg.norm(bridge - lm[4]))
    return centre, float(radius)


def evaluate_scan(pred_vertices: np.ndarray, pred_faces: np.ndarray, pred_landmarks: np.ndarray,
                  scan_points: np.ndarray, scan_landmarks: np.ndarray,
                  settings: ScanEvalSettings = ScanEvalSettings(), *,
                  names: tuple[str, str] = ("prediction landmarks", "scan landmarks")) -> ScanEvalResult:
    """Score a prediction (``V x 3`` mm, ``F x 3``, ``7 x 3`` landmarks on it) against a scan
    (``N x 3`` mm points, ``7 x 3`` landmarks) with the protocol in the module doc."""
    from facenormals3d.evaluate.scan_io import subsample

    pred_lm = check_landmarks(pred_landmarks, names[0])
    scan_lm = check_landmarks(scan_landmarks, names[1])
    pts = np.asarray(scan_points, dtype=np.float64)
    centre, radius = crop_region(scan_lm, settings.crop_factor)
    idx = np.nonzero(np.linalg.norm(pts - centre, axis=1) <= radius)[0]
    if len(idx) < 10:
        raise InputError(names[1], f"only {len(idx)} scan points lie within {radius:.1f} of the "
                                   "landmarks' face centre: are the landmarks in the scan's frame and units?")
    notes = []
    keep = subsample(len(idx), settings.max_points, settings.seed)
    if len(keep) < len(idx):
        notes.append(f"cropped scan has {len(idx)} points; scored a seeded uniform subset of {len(keep)}")
        log.warning("%s", notes[-1])
        idx = idx[keep]
    cropped = pts[idx]
    init = umeyama(pred_lm, scan_lm, with_scale=not settings.metric, fixed_scale=1.0)
    lm_rmse = _rms(init.apply(pred_lm) - scan_lm)
    mesh = MeshDistance(pred_vertices, pred_faces)
    sim, rounds = init, 0
    if settings.refine:
        ref = refine_similarity(cropped, mesh, init, RefineSettings(
            with_scale=not settings.metric, trim=settings.trim, seed=settings.seed))
        sim, rounds = ref.similarity, ref.rounds
    dist = sim.scale * mesh.distance(sim.inverse().apply(cropped))
    return ScanEvalResult(median=float(np.median(dist)), mean=float(dist.mean()),
                          std=float(dist.std()), n_points=len(dist), distances=dist,
                          scan_indices=idx, similarity=sim, landmark_rmse=lm_rmse,
                          landmark_rmse_final=_rms(sim.apply(pred_lm) - scan_lm), rounds=rounds,
                          crop_center=centre, crop_radius=radius, notes=notes)


def _rms(d: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(d * d, axis=1))))
