"""Fit pose, identity and expression of the face model to the 478 mediapipe landmarks.

Frames: the model frame of :mod:`facenormals3d.fit.model` (mm) and the crop frame of the
pipeline (mm; x right, y up, z towards the camera; see :mod:`facenormals3d.face.coarse`).
The fit finds a similarity ``pose`` (model -> crop frame), identity coefficients
``alpha`` and expression weights ``beta`` minimising

    sum_i w_i * || D (pose(mean_i + B_i alpha + E_i beta) - target_i) ||^2
        + identity_prior * |alpha|^2 + expression_prior * |beta|^2,   0 <= beta <= 1, |alpha| <= 4

where ``D`` = diag(1, 1, sqrt(z_weight)) trusts mediapipe's depth less than its image
position, and ``w_i`` are robust (Geman-McClure) weights re-estimated each round after the
first ``robust_after`` rounds, so a few landmarks on an occluder or a hallucinated far-side
contour cannot drag the face. A weighted Umeyama pose on the mean face starts it; each round
is then one Gauss-Newton step on the coefficients and a linearised pose step together
(alternating pose and coefficients converges slowly: overall size is shared by the pose
scale and the identity modes). The projection is orthographic (mediapipe's landmarks are
weak-perspective).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from facenormals3d.errors import InputError
from facenormals3d.frame import CropFrame
from facenormals3d.fit.model import FaceModel
from facenormals3d.similarity import Similarity, check_point_set, umeyama

#: mediapipe's iris points (468-477): gaze makes them move independently of the face.
IRIS = tuple(range(468, 478))


@dataclass(frozen=True)
class LandmarkFitSettings:
    """How :func:`fit_landmarks` weighs the data and the priors."""

    iterations: int = 8
    """Alternations of pose and coefficient solves."""
    z_weight: float = 0.35
    """Weight of the depth residual relative to x and y (mediapipe's z is a guess)."""
    identity_prior: float = 64.0
    """Weight of |alpha|^2, in mm^2 per unit coefficient (~ the variance of the landmarks'
    error, whose correlated part is larger than a pixel's noise). Chosen with
    ``expression_prior`` on dev renders (seeds 783 and 785, 2026-12-06): from 6 and 10 to
    64 and 20 the full pipeline's meshes went 1.162 -> 1.101 mm (783) and 1.152 -> 1.126 mm
    (785), the normals unchanged (+0.01 deg); identity 96, 150 and 1000 were no better. The
    dense stage shares these priors (6 there with 96 here: 1.117 mm against 1.108 on 783)."""
    expression_prior: float = 20.0
    """Weight of |beta|^2, mm^2 per unit weight."""
    robust_after: int = 3
    """Rounds before the robust weights start (plain least squares until then)."""
    robust_scale_mm: float = 2.5
    """Geman-McClure scale floor: residuals well above it lose their weight."""
    n_identity: int | None = None
    """Use only the first N identity modes (None = all of the model's)."""
    use_expressions: bool = True
    """Solve for the expression weights (False = neutral face)."""


@dataclass
class LandmarkFit:
    """Result of :func:`fit_landmarks`."""

    pose: Similarity
    """Model frame -> crop frame (mm)."""
    alpha: np.ndarray
    """``K`` float64 identity coefficients (units of standard deviations)."""
    beta: np.ndarray
    """``E`` float64 expression weights in [0, 1]."""
    residuals_mm: np.ndarray
    """``478`` float64 distances between fitted and target landmarks (crop frame, mm, full 3D)."""
    weights: np.ndarray
    """``478`` float64 final robust weights (0 for the irises)."""
    seconds: float = 0.0
    info: dict = field(default_factory=dict)

    def summary(self) -> dict:
        used = self.weights > 0
        return {"landmark_rms_mm": float(np.sqrt(np.mean(self.residuals_mm[used] ** 2))),
                "landmark_median_mm": float(np.median(self.residuals_mm[used])),
                "outliers": int(np.sum(self.weights[used] < 0.25)), "seconds": self.seconds}


class LandmarkFitter:
    """Precomputes the model's landmark bases once; :meth:`fit` runs per face."""

    def __init__(self, model: FaceModel, settings: LandmarkFitSettings = LandmarkFitSettings()):
        self.model = model
        self.settings = settings
        k = model.n_identity if settings.n_identity is None else min(settings.n_identity, model.n_identity)
        self.n_identity = k
        self.mean = model.landmark_points(model.mean)  # 478 x 3
        bases = [model.landmark_basis(model.identity[:k])]
        if settings.use_expressions:
            bases.append(model.landmark_basis(model.expression))
        # M x 478 x 3, C order: np.tensordot copies any other layout on every call.
        self.basis = np.ascontiguousarray(np.concatenate(bases, axis=0))
        self.n_expression = model.n_expression if settings.use_expressions else 0
        self.used = np.ones(478, bool)
        self.used[list(IRIS)] = False

    def fit(self, target: np.ndarray, source: str = "<landmarks>") -> LandmarkFit:
        """Fit to ``target`` (``478 x 3`` crop-frame mm). Raises InputError on degenerate landmarks."""
        t0 = time.perf_counter()
        s = self.settings
        tgt = check_fit_landmarks(target, source)
        w = self.used.astype(np.float64)
        shape = self.mean.copy()
        pose = umeyama(shape[self.used], tgt[self.used])
        coef = np.zeros(self.basis.shape[0])
        for i in range(s.iterations):
            # One Gauss-Newton step on pose and coefficients together (alternating the two
            # converges slowly: overall size is shared by the pose scale and the identity).
            a, b = self.rows(tgt, pose, w, coef, with_pose=True)
            sol = self.solve(a, b, extra=7)
            coef, step = sol[:-7], sol[-7:]
            pose = _updated(pose, step)
            shape = self.mean + np.tensordot(coef, self.basis, axes=1)
            if i + 1 < s.robust_after:
                continue  # the first rounds only bring the shape near: no landmark is an outlier yet
            res = np.linalg.norm((pose.apply(shape) - tgt) * self.dz, axis=1)
            scale = max(1.4826 * float(np.median(res[self.used])), s.robust_scale_mm)
            w = self.used * (scale ** 2 / (scale ** 2 + res ** 2)) ** 2
        return self.result(tgt, pose, coef, w, time.perf_counter() - t0)

    @property
    def dz(self) -> np.ndarray:
        """Per-axis residual scale: x, y, sqrt(z_weight)."""
        return np.array([1.0, 1.0, np.sqrt(self.settings.z_weight)])

    def rows(self, target: np.ndarray, pose: Similarity, weights: np.ndarray, coef: np.ndarray | None = None,
             with_pose: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Weighted landmark equations ``A x ~ b``: ``(1434 x M[+7], 1434)``.

        ``x`` is the coefficient vector (M) and, with ``with_pose``, a pose step (scale
        change, rotation vector, translation change) linearised at ``pose`` and ``coef``.
        """
        rot = pose.scale * pose.rotation
        a = np.einsum("ij,mlj->lim", rot, self.basis)  # 478 x 3 x M
        b = target - (self.mean @ rot.T + pose.translation)
        if with_pose:
            shape = self.mean + np.tensordot(coef, self.basis, axes=1)
            r_shape = shape @ pose.rotation.T  # R X
            # d(sRX)/d(omega) for R -> R exp([omega]x): -s R [X]x ; columns for omega_x,y,z.
            cross = np.zeros((478, 3, 3))
            for j in range(3):
                e_j = np.zeros(3)
                e_j[j] = 1.0
                cross[:, :, j] = pose.scale * np.cross(e_j, shape) @ pose.rotation.T
            a = np.concatenate([a, r_shape[..., None], cross, np.broadcast_to(np.eye(3), (478, 3, 3))], axis=2)
        sw = np.sqrt(weights)[:, None] * self.dz[None, :]
        return (a * sw[..., None]).reshape(-1, a.shape[-1]), (b * sw).reshape(-1)

    def solve(self, a_rows: np.ndarray, b_rows: np.ndarray, extra: int = 0) -> np.ndarray:
        """``x`` minimising ``|A x - b|^2`` + the coefficient priors, with ``0 <= beta <= 1``
        and ``|alpha| <= 4``. The last ``extra`` unknowns (a pose step) are free and unpenalised.

        Normal equations with a small active set: solve, pin the unknowns that left their
        bounds at the bound, solve again (a few rounds; exact when no bound is active).
        """
        s, k, e = self.settings, self.n_identity, self.n_expression
        n = k + e + extra
        ata = a_rows.T @ a_rows
        atb = a_rows.T @ b_rows
        ata[np.arange(k), np.arange(k)] += s.identity_prior
        ata[np.arange(k, k + e), np.arange(k, k + e)] += s.expression_prior
        lower = np.concatenate([np.full(k, -4.0), np.zeros(e), np.full(extra, -np.inf)])
        upper = np.concatenate([np.full(k, 4.0), np.ones(e), np.full(extra, np.inf)])
        x = np.zeros(n)
        pinned = np.zeros(n, bool)
        for _ in range(6):
            free = ~pinned
            rhs = atb[free] - ata[np.ix_(free, pinned)] @ x[pinned]
            x[free] = np.linalg.solve(ata[np.ix_(free, free)], rhs)
            out = free & ((x < lower) | (x > upper))
            if not out.any():
                break
            x[out] = np.clip(x[out], lower[out], upper[out])
            pinned |= out
        return np.clip(x, lower, upper)

    def coefficients(self, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split a solution into full-length ``alpha`` (model's K) and ``beta`` (E)."""
        alpha = np.zeros(self.model.n_identity)
        alpha[:self.n_identity] = coef[:self.n_identity]
        beta = coef[self.n_identity:] if self.n_expression else np.zeros(self.model.n_expression)
        return alpha, beta

    def result(self, target: np.ndarray, pose: Similarity, coef: np.ndarray, weights: np.ndarray,
               seconds: float) -> LandmarkFit:
        shape = self.mean + np.tensordot(coef, self.basis, axes=1)
        alpha, beta = self.coefficients(coef)
        return LandmarkFit(pose=pose, alpha=alpha, beta=beta,
                           residuals_mm=np.linalg.norm(pose.apply(shape) - target, axis=1),
                           weights=weights, seconds=seconds)


def _updated(pose: Similarity, step: np.ndarray) -> Similarity:
    """Apply a pose step (scale change, rotation vector, translation change) to ``pose``."""
    from scipy.spatial.transform import Rotation

    omega = step[1:4]
    rot = pose.rotation @ Rotation.from_rotvec(omega).as_matrix()
    return Similarity(max(pose.scale + float(step[0]), 1e-6), rot, pose.translation + step[4:7])


def check_fit_landmarks(target: np.ndarray, source: str = "<landmarks>") -> np.ndarray:
    """``target`` as float64 ``478 x 3``; InputError naming ``source`` when unusable for a fit."""
    return check_point_set(target, 478, source)


def rotation_angles_deg(rotation: np.ndarray) -> dict[str, float]:
    """Yaw, pitch, roll (degrees) of ``R = Rz(roll) @ Rx(pitch) @ Ry(yaw)``.

    The synthetic engine's convention (:func:`facenormals3d.data.geometry.rotation_matrix`):
    positive yaw turns the face towards image right, positive pitch tilts the chin down,
    positive roll turns the face counter-clockwise as the camera sees it.
    """
    r = np.asarray(rotation, dtype=np.float64)
    pitch = np.arcsin(np.clip(r[2, 1], -1.0, 1.0))
    yaw = np.arctan2(-r[2, 0], r[2, 2])
    roll = np.arctan2(-r[0, 1], r[1, 1])
    return {"yaw": float(np.degrees(yaw)), "pitch": float(np.degrees(pitch)), "roll": float(np.degrees(roll))}


def fit_crop(fitter: LandmarkFitter, landmarks_crop: np.ndarray, size: int,
             source: str = "<landmarks>") -> tuple[LandmarkFit, np.ndarray, CropFrame]:
    """Fit crop landmarks (``478 x 3`` crop pixels, y down, z towards the camera).

    Returns ``(fit, target, frame)``: the fit in the crop frame (mm), the target landmarks
    in mm and the crop frame, whose scale is :func:`facenormals3d.face.coarse.metric_scale`.
    """
    from facenormals3d.face.coarse import metric_scale

    lm = check_fit_landmarks(landmarks_crop, source)
    try:
        s = metric_scale(lm)
    except ValueError as err:
        raise InputError(source, f"landmarks: {err}") from None
    frame = CropFrame(size, s)
    target = frame.to_mm(lm)
    return fitter.fit(target, source), target, frame


def fitted_view(model: FaceModel, fit: LandmarkFit, frame: CropFrame) -> tuple[np.ndarray, tuple]:
    """The fitted face posed in the crop frame and seen from the camera: ``(vertices V x 3
    float64 mm, hits)``, ``hits`` being :func:`~facenormals3d.raster.orthographic_hits` on the
    grid of ``frame``."""
    from facenormals3d.raster import orthographic_hits

    vertices = fit.pose.apply(model.shape(fit.alpha, fit.beta))
    return vertices, orthographic_hits(vertices, model.triangles, frame)


def fitted_normals(model: FaceModel, fit: LandmarkFit, frame: CropFrame, view: tuple | None = None) -> np.ndarray:
    """The fitted face's smooth normals seen in the crop: ``S x S x 3`` float32, NaN off the face.
    ``view``: :func:`fitted_view` of the same fit and frame, if the caller has it already."""
    from facenormals3d.face.coarse import render_orthographic

    vertices, hits = fitted_view(model, fit, frame) if view is None else view
    return render_orthographic(vertices, model.triangles, frame, hits)[1]
