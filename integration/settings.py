"""Settings and result types of :func:`integration.integrate`.

Kept apart from the solvers so callers can build settings without importing scipy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Method = Literal["poisson", "dct", "fusion", "bilateral"]
Solver = Literal["amg", "direct"]


@dataclass
class IntegrationSettings:
    """How :func:`integration.integrate` solves. Every field has a usable default."""

    method: Method = "poisson"
    """``poisson``: masked least squares on the mask's own pixels. ``dct``: DCT Poisson on
    the mask's bounding box (exact for a full rectangle with unit weights; gradients are
    zero-filled outside the mask otherwise, which biases the mask edge). ``fusion``: like
    ``poisson`` but a prior depth is required and enters the same least-squares system.
    ``bilateral``: iteratively reweighted one-sided differences that cut the surface at
    depth discontinuities (see :mod:`integration.bilateral`)."""
    solver: Solver = "amg"
    """Linear solver of the sparse methods: ``amg`` = conjugate gradients preconditioned by a
    pyamg Ruge-Stuben V-cycle (fast); ``direct`` = SuperLU on the same system (reference)."""
    pixel_size: float = 1.0
    """Orthographic only: world units per pixel. The height comes out in these units."""
    prior_weight: float = 1e-2
    """Weight of each prior-depth equation relative to one gradient equation (used when
    ``integrate`` gets no ``prior_weight``). The fused surface follows the prior at
    wavelengths longer than about ``2*pi/sqrt(prior_weight)`` pixels and the normals at
    shorter ones (63 px for the default)."""
    tol: float = 1e-6
    """CG stops when ``||b - A z|| <= tol * ||b||`` (normal equations). 1e-6 leaves the
    depth within ~0.1 % of the direct solve's error on smooth surfaces (see the bench)."""
    max_iter: int = 200
    """Upper bound on CG iterations (per bilateral reweighting step)."""
    grazing_nz: float = 0.1
    """Pixels whose normal makes a cosine below this with the viewing ray are grazing: their
    slope is computed with the cosine clamped to this value (slope <= ~1/grazing_nz) and
    their weight is scaled by ``(cos / grazing_nz)**2`` (0 for back-facing normals)."""
    unknown_weight: float = 1e-4
    """Floor on an edge's weight. Edges whose both ends are unknown (NaN normals, zero
    confidence, grazing) get a zero-slope equation with this weight, so holes in the normal
    map are filled smoothly instead of being left undetermined."""
    reference_depth: float = 1.0
    """Perspective without a prior: each connected component is scaled so that the
    geometric mean of its depth equals this (the absolute scale is not observable)."""
    warm_start: bool = True
    """Start CG from a DCT solution on the bounding box (cuts a few iterations)."""
    bilateral_k: float = 2.0
    """Bilateral: sharpness of the sigmoid that splits each pixel's trust between its two
    one-sided equations per axis (Cao et al. 2022, whose default is 2). It acts on squared
    one-sided depth differences in normal-space units (``n~ * slope``, about ``|n_x|`` on
    a smooth surface), so it does not depend on the pixel size, the focal length or the
    depth units. Larger values cut milder creases; smaller ones stay closer to Poisson."""
    bilateral_iterations: int = 150
    """Bilateral: most solves (the first, unweighted one included). Reaching it without
    meeting ``bilateral_tol`` leaves ``IntegrationResult.converged`` False."""
    bilateral_tol: float = 1e-4
    """Bilateral: stop when the energy changes by less than this fraction between steps."""
    reuse_preconditioner: bool = True
    """Bilateral with ``solver="amg"``: keep the AMG V-cycle built for an earlier
    reweighting until the CG seconds it has lost (against its rate right after the build)
    exceed what building it cost, then build a new one (the solution is unchanged; only
    the iteration count is)."""

    def __post_init__(self) -> None:
        if self.method not in ("poisson", "dct", "fusion", "bilateral"):
            raise ValueError(f"settings.method: unknown method {self.method!r}")
        if self.solver not in ("amg", "direct"):
            raise ValueError(f"settings.solver: unknown solver {self.solver!r}")
        for name in ("pixel_size", "tol", "grazing_nz", "unknown_weight", "reference_depth",
                     "bilateral_k"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"settings.{name}: must be a finite positive number, got {value}")
        if not (np.isfinite(self.prior_weight) and self.prior_weight >= 0):
            raise ValueError(f"settings.prior_weight: must be >= 0, got {self.prior_weight}")
        if self.max_iter < 1 or self.bilateral_iterations < 1:
            raise ValueError("settings.max_iter and bilateral_iterations must be >= 1")


@dataclass
class IntegrationResult:
    """Depth plus diagnostics from :func:`integration.integrate`."""

    depth: np.ndarray
    """``H x W`` float64, NaN outside the mask. Orthographic: height towards the camera in
    ``pixel_size`` units (nearer = larger). Perspective: positive distance along the
    optical axis (the OpenGL point is ``z = -depth``), in the prior's units."""
    method: str
    """The method that produced ``depth``."""
    solver: str
    """``amg``, ``direct`` or ``dct``."""
    iterations: int
    """CG iterations (summed over bilateral steps); 0 for direct and DCT solves."""
    residual: float
    """Relative residual ``||b - A z|| / ||b||`` of the final linear system (NaN for ``dct``)."""
    gradient_rms: float
    """Weighted RMS of ``(z_q - z_p) - target`` over the grid edges: how far the normals
    are from integrable (plus solver error). Solution units per pixel."""
    seconds: float
    """Wall time of the whole call."""
    converged: bool
    """False if any CG solve hit ``max_iter`` before reaching ``tol``, or if the bilateral
    loop used up ``bilateral_iterations`` before its energy settled."""
    n_components: int
    """Number of 4-connected components of the mask."""
    n_pixels: int
    """Number of masked pixels."""
    perspective: bool
    """True when a camera was given (log-depth formulation)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per phase: ``assemble``, ``setup`` (AMG hierarchy / factorisation), ``solve``."""
    bilateral_steps: int = 0
    """Bilateral: linear solves done (the first, unweighted one included); 0 otherwise."""
    bilateral_energy: float = float("nan")
    """Bilateral: the final energy ``E(z; w)`` (see :mod:`integration.bilateral`)."""
    bilateral_energy_change: float = float("nan")
    """Bilateral: relative energy change of the last step (compare ``bilateral_tol``);
    NaN after a single step or for other methods."""
    bilateral_weights: np.ndarray | None = None
    """Bilateral: ``H x W x 4`` weights of each pixel's one-sided equations towards its
    right, left, lower and upper neighbour (image directions: columns right, rows down).
    Right + left = 1 and lower + upper = 1 where both neighbours exist; a missing
    neighbour has weight 0; NaN outside the mask. A weight near 0 marks a discontinuity
    on that side. ``None`` for other methods."""
