"""Dense stage: refine the landmark fit's coefficients against depth integrated from normals.

Frames as in :mod:`facenormals3d.fit.landmarks` (crop frame, mm). Input is a depth map
``target_depth`` (``S x S``, z towards the camera) that the pipeline integrated from the
predicted normals with the landmark fit's own depth as the low-frequency prior, and a
per-pixel confidence. Keeping the landmark fit's pose, we solve for identity and
expression again with, beside the landmark equations and the priors, one point-to-plane
equation per sampled visible pixel:

    n_p . (pose(X(coef) at p) - (x_p, y_p, target_depth_p)) = 0

where ``p`` is the model surface point the pixel sees (fixed triangle and barycentric
weights) and ``n_p`` its normal. Pixel weights are robust (Huber) and scaled so the whole
dense term counts ``dense_weight`` times as much as the landmark term; bad normals can
therefore only move the shape within what the landmarks allow. A safeguard rejects the
update when it moves the landmarks away from their targets by more than
``max_landmark_increase`` (relative RMS).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from facenormals3d.frame import CropFrame
from facenormals3d.fit.landmarks import LandmarkFit, LandmarkFitter
from facenormals3d.surface import vertex_normals


@dataclass(frozen=True)
class DenseFitSettings:
    """Weights and sampling of :func:`fit_dense`."""

    dense_weight: float = 0.5
    """Total weight of the depth equations relative to the landmark equations."""
    huber_mm: float = 1.0
    """Residuals beyond this (mm) get down-weighted (Huber)."""
    stride: int = 3
    """Use every ``stride``-th pixel in each direction."""
    iterations: int = 2
    """Reweighting rounds."""
    max_landmark_increase: float = 0.25
    """Reject the dense update if the landmark RMS grows by more than this fraction."""
    min_pixels: int = 200
    """Skip the stage when fewer sampled pixels are usable."""


@dataclass
class DenseFit:
    """Result of :func:`fit_dense`: the refined fit and diagnostics."""

    fit: LandmarkFit
    """Pose (unchanged), refined alpha and beta, landmark residuals of the refined shape."""
    accepted: bool
    """False when the safeguard kept the landmark-only coefficients."""
    pixels: int
    """Sampled pixels used."""
    depth_rms_before_mm: float
    depth_rms_after_mm: float
    seconds: float = 0.0
    info: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"accepted": self.accepted, "pixels": self.pixels,
                "depth_rms_before_mm": self.depth_rms_before_mm, "depth_rms_after_mm": self.depth_rms_after_mm,
                "seconds": self.seconds}


def fit_dense(fitter: LandmarkFitter, landmark_fit: LandmarkFit, target: np.ndarray, triangle: np.ndarray,
              bary: np.ndarray, target_depth: np.ndarray, confidence: np.ndarray, frame: CropFrame,
              settings: DenseFitSettings = DenseFitSettings()) -> DenseFit:
    """Refine ``landmark_fit`` (made by ``fitter`` on ``target`` landmarks, ``478 x 3`` mm).

    Args:
        triangle, bary: ``S x S`` triangle index (-1 = none) and ``S x S x 3`` weights of the
            landmark-fit surface each pixel sees (:func:`facenormals3d.raster.orthographic_hits`).
        target_depth: ``S x S`` z (mm) integrated from the normals; NaN where unknown.
        confidence: ``S x S`` in [0, 1] trust in ``target_depth``.
        frame: the crop frame of the ``S x S`` maps.
    """
    t0 = time.perf_counter()
    model, s = fitter.model, settings
    sel = np.zeros_like(triangle, dtype=bool)
    sel[::s.stride, ::s.stride] = True
    sel &= (triangle >= 0) & np.isfinite(target_depth) & (confidence > 0.05)
    rows, cols = np.nonzero(sel)
    pose = landmark_fit.pose
    coef0 = np.concatenate([landmark_fit.alpha[:fitter.n_identity],
                            landmark_fit.beta if fitter.n_expression else np.zeros(0)])
    if len(rows) < s.min_pixels:
        return DenseFit(fit=landmark_fit, accepted=False, pixels=int(len(rows)), depth_rms_before_mm=float("nan"),
                        depth_rms_after_mm=float("nan"), seconds=time.perf_counter() - t0,
                        info={"skipped": f"only {len(rows)} usable pixels"})
    tri = triangle[rows, cols]
    b = bary[rows, cols].astype(np.float64)
    corners = model.triangles[tri]  # P x 3
    k = fitter.n_identity
    bases = [model.identity[:k]] + ([model.expression] if fitter.n_expression else [])
    # Model-frame basis at each pixel's surface point: M x P x 3.
    # (C order: einsum may return another layout, which np.tensordot would copy on every call.)
    basis = np.ascontiguousarray(np.concatenate([np.einsum("pc,mpcd->mpd", b, blk[:, corners]) for blk in bases],
                                                axis=0))
    mean = np.einsum("pc,pcd->pd", b, model.mean[corners].astype(np.float64))
    rot = pose.scale * pose.rotation
    q = np.stack([*frame.pixel_centres(cols, rows), target_depth[rows, cols]], axis=1)
    conf = confidence[rows, cols].astype(np.float64)
    a_lm, b_lm = fitter.rows(np.asarray(target, np.float64), pose, landmark_fit.weights)
    lm_energy = float(np.sum(b_lm ** 2)) + 1e-9  # landmark term at coef = 0, sets the scale

    def surface(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shape = mean + np.tensordot(coef, basis, axes=1)
        pts = shape @ rot.T + pose.translation
        # Normal of the fitted surface at each point (rotation of the model-frame normal).
        vn = vertex_normals(model.shape(*fitter.coefficients(coef)), model.triangles)
        n = np.einsum("pc,pcd->pd", b, vn[corners]) @ pose.rotation.T
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
        return pts, n

    pts, n = surface(coef0)
    before = np.einsum("pd,pd->p", n, pts - q)
    coef = coef0
    w = conf.copy()
    for _ in range(s.iterations):
        r = np.einsum("pd,pd->p", n, (mean + np.tensordot(coef, basis, axes=1)) @ rot.T + pose.translation - q)
        huber = np.where(np.abs(r) <= s.huber_mm, 1.0, s.huber_mm / np.maximum(np.abs(r), 1e-9))
        w = conf * huber
        # Scale the depth rows so their total weight is dense_weight x the landmark rows'.
        scale = np.sqrt(s.dense_weight * lm_energy / max(float(np.sum(w * (before ** 2 + s.huber_mm ** 2))), 1e-9))
        a_d = np.einsum("pd,mpd->pm", n @ rot, basis) * (np.sqrt(w) * scale)[:, None]
        b_d = np.einsum("pd,pd->p", n, q - mean @ rot.T - pose.translation) * np.sqrt(w) * scale
        coef = fitter.solve(np.concatenate([a_lm, a_d]), np.concatenate([b_lm, b_d]))
        pts, n = surface(coef)
    after = np.einsum("pd,pd->p", n, pts - q)
    refined = fitter.result(target, pose, coef, landmark_fit.weights, landmark_fit.seconds)
    used = landmark_fit.weights > 0
    rms0 = float(np.sqrt(np.mean(landmark_fit.residuals_mm[used] ** 2)))
    rms1 = float(np.sqrt(np.mean(refined.residuals_mm[used] ** 2)))
    accepted = rms1 <= rms0 * (1.0 + s.max_landmark_increase)
    return DenseFit(fit=refined if accepted else landmark_fit, accepted=accepted, pixels=int(len(rows)),
                    depth_rms_before_mm=float(np.sqrt(np.average(before ** 2, weights=conf))),
                    depth_rms_after_mm=float(np.sqrt(np.average(after ** 2, weights=conf))),
                    seconds=time.perf_counter() - t0,
                    info={"landmark_rms_before_mm": rms0, "landmark_rms_after_mm": rms1})

