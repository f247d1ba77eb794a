"""Bilateral normal integration: one-sided equations, sigmoid weights, reweighted solves.

After Cao et al., "Bilateral Normal Integration" (ECCV 2022), re-derived from the paper.
The surface is assumed semi-smooth: at every pixel it is differentiable from at least one
side along each image axis. Each pixel ``p`` therefore carries four one-sided equations in
the normal-space form of :mod:`integration.gradients` (``n~``, ``unit``, ``b``)::

    e_u+(p) = n~_p * unit_u * (z[r, c+1] - z[r, c]) - b_u(p)      (right)
    e_u-(p) = n~_p * unit_u * (z[r, c] - z[r, c-1]) - b_u(p)      (left)
    e_v+(p), e_v-(p)  the same along rows (down, up)

and, for fixed weights ``w``, the energy is::

    E(z; w) = sum_p trust_p * (w_u+ e_u+^2 + w_u- e_u-^2 + w_v+ e_v+^2 + w_v- e_v-^2) / unit^2
              + sum_p lambda_p * (z_p - prior_p)^2

(``unit^2 = unit_u * unit_v`` keeps the equations in solution units, so a frontal pixel
weighs 1 as in the Poisson system). With ``w+ + w- = 1`` per pixel and axis, ``w = 1/2``
is Poisson with ``n~^2`` weights. The weights follow the definition of a one-sided
discontinuity, where the one-sided *depth difference* is unbounded on the side of the
jump::

    w_u+ = sigmoid(k * (d_u-^2 - d_u+^2)),   w_u- = 1 - w_u+
    d_u+ = n~_p * unit_u * (z[r, c+1] - z[r, c]),  d_u- = n~_p * unit_u * (z[r, c] - z[r, c-1])

``d`` is in normal components (``|d| <= 1`` on a smooth frontal-to-grazing surface at
the sampling limit, huge across a jump), which is what makes the paper's ``k = 2``
scale-free.

Border pixels: a side whose neighbour is outside the mask has no equation, and its depth
difference counts as ``d = 0`` in the sigmoid (the surface is taken to continue smoothly
past the border). The one existing equation along that axis then weighs
``1 - sigmoid(k d^2) <= 1/2``: 1/2 on a frontal border, less on a steep one. Giving it the
full weight 1 instead (an earlier version) made the silhouette rows, where the normals are
grazing and least reliable, twice as stiff as any interior pixel; on DiLiGenT that bent
whole parts of the surface towards their silhouette slopes (reading: 0.43 mm MADE against
0.22 mm with this rule; goblet +0.06 and harvest +0.05 mm; the other six within 0.01 mm).

Iteratively reweighted least squares: solve with ``w = 1/2``; then repeatedly recompute
``w`` from the current depth and solve again, warm-started from that depth. The loop
stops when ``|E(z_t; w_t) - E(z_{t-1}; w_{t-1})| <= tol * E(z_{t-1}; w_{t-1})`` and reports
non-convergence when the step cap comes first.

Each step's system is the edge system of :mod:`integration.system`: the two one-sided
equations that share an edge add up to one weighted equation, up to a constant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from integration.gradients import GradientField
from integration.system import EdgeTerms, MaskGrid, edge_terms

#: Inexact steps: relative residual of a step's solve while the energy still moves (see
#: :func:`bilateral_loop`).
LOOSE_RTOL = 3e-2
RTOL_PER_CHANGE = 1.0

#: ``n~`` below this is treated as this when dividing (its equations weigh ``n~^2`` anyway).
_NZ_FLOOR = 1e-3


@dataclass
class OneSidedTerms:
    """The one-sided equations of every pixel (``H x W`` float64 arrays unless noted)."""

    gu: np.ndarray
    """Target ``z[r, c+1] - z[r, c]`` (and ``z[r, c] - z[r, c-1]``) from the pixel's normal."""
    gv: np.ndarray
    """Target ``z[r+1, c] - z[r, c]`` (and ``z[r, c] - z[r-1, c]``)."""
    omega_u: np.ndarray
    """Weight of the column equations in solution units: ``trust * n~^2 * unit_u / unit_v``."""
    omega_v: np.ndarray
    """Weight of the row equations: ``trust * n~^2 * unit_v / unit_u``."""
    scale_u: np.ndarray
    """``n~ * unit_u``: turns a column difference into ``d_u``."""
    scale_v: np.ndarray
    """``n~ * unit_v``: turns a row difference into ``d_v``."""
    has: np.ndarray
    """``H x W x 4`` bool: the right, left, down, up neighbour is in the mask."""


def one_sided_terms(grid: MaskGrid, field: GradientField) -> OneSidedTerms:
    """Build the fixed part of the bilateral equations. Back-facing pixels (``n~ <= 0``)
    get no weight."""
    nz = np.maximum(field.nz_tilde, 0.0)
    safe = np.maximum(nz, _NZ_FLOOR)
    ratio = field.unit_u / field.unit_v
    has = np.zeros(grid.mask.shape + (4,), bool)
    has[:, :-1, 0] = grid.edge_h
    has[:, 1:, 1] = grid.edge_h
    has[:-1, :, 2] = grid.edge_v
    has[1:, :, 3] = grid.edge_v
    return OneSidedTerms(gu=field.b_u / (safe * field.unit_u), gv=field.b_v / (safe * field.unit_v),
                         omega_u=field.trust * nz**2 * ratio, omega_v=field.trust * nz**2 / ratio,
                         scale_u=nz * field.unit_u, scale_v=nz * field.unit_v, has=has)


def one_sided_differences(z: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward differences of ``z`` (``H x W``) along ``axis`` (1 = columns,
    0 = rows), each ``H x W``; 0 where the neighbour is off the grid."""
    diff = np.diff(z, axis=axis)
    fwd = np.zeros_like(z)
    bwd = np.zeros_like(z)
    if axis == 1:
        fwd[:, :-1] = diff
        bwd[:, 1:] = diff
    else:
        fwd[:-1, :] = diff
        bwd[1:, :] = diff
    return fwd, bwd


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # the logistic function, overflow-free


def initial_shares(terms: OneSidedTerms) -> tuple[np.ndarray, np.ndarray]:
    """Forward shares ``(w_u+, w_v+)`` of the first solve: 1/2 everywhere (the paper's start;
    an equation towards a missing neighbour does not exist, so a border pixel's only
    equation along an axis starts at weight 1/2 like every interior one)."""
    half = np.full(terms.gu.shape, 0.5)
    return half, half.copy()


def shares_from_depth(terms: OneSidedTerms, z: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Forward shares ``(w_u+, w_v+)``, each ``H x W``, from the one-sided depth differences
    of ``z`` (``H x W`` in solution units, 0 outside the mask).

    A side without a neighbour has no depth difference: it counts as ``d = 0`` (a smooth
    continuation) in the sigmoid, so the pixel's one existing equation along that axis gets
    ``1 - sigmoid(k d^2) <= 1/2``: the steeper the border step, the less it is trusted (see
    the module docstring)."""
    shares = []
    for axis, scale, fwd_i, bwd_i in ((1, terms.scale_u, 0, 1), (0, terms.scale_v, 2, 3)):
        fwd, bwd = one_sided_differences(z, axis)
        d_fwd = np.where(terms.has[..., fwd_i], scale * fwd, 0.0)
        d_bwd = np.where(terms.has[..., bwd_i], scale * bwd, 0.0)
        shares.append(_sigmoid(k * (d_bwd * d_bwd - d_fwd * d_fwd)))
    return shares[0], shares[1]


def energy(terms: OneSidedTerms, z: np.ndarray, share_u: np.ndarray, share_v: np.ndarray,
           lam: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """``E(z; w)`` of the module docstring (solution units); ``z`` is ``H x W``."""
    total = 0.0
    for axis, g, omega, share, fwd_i, bwd_i in ((1, terms.gu, terms.omega_u, share_u, 0, 1),
                                               (0, terms.gv, terms.omega_v, share_v, 2, 3)):
        fwd, bwd = one_sided_differences(z, axis)
        r_fwd = np.where(terms.has[..., fwd_i], fwd - g, 0.0)
        r_bwd = np.where(terms.has[..., bwd_i], bwd - g, 0.0)
        total += float(np.sum(omega * (share * r_fwd**2 + (1.0 - share) * r_bwd**2)))
    return total + float(np.sum((lam * (z - target) ** 2)[mask]))


def shares_map(terms: OneSidedTerms, share_u: np.ndarray, share_v: np.ndarray,
               mask: np.ndarray) -> np.ndarray:
    """The four weights as an ``H x W x 4`` array (right, left, down, up), NaN outside the
    mask; a direction without a neighbour has weight 0."""
    out = np.stack([share_u, 1.0 - share_u, share_v, 1.0 - share_v], axis=-1)
    out = np.where(terms.has, out, 0.0)
    out[~mask] = np.nan
    return out


@dataclass
class BilateralOutcome:
    """What :func:`bilateral_loop` returns."""

    z: np.ndarray
    """``H x W`` solution of the last step (solution units, 0 outside the mask)."""
    infos: list[dict]
    """The linear solve's diagnostics of every step."""
    steps: int
    """Solves done, the first (unweighted) one included."""
    energy: float
    """``E(z; w)`` of the last step, with ``w`` the weights ``z`` implies."""
    energy_change: float
    """``|E_t - E_{t-1}| / E_{t-1}`` of the last step (NaN after a single step)."""
    converged: bool
    """True when ``energy_change <= tol`` before the step cap."""
    share_u: np.ndarray
    """``H x W`` weight ``w_u+`` implied by ``z`` (the weights the next step would use)."""
    share_v: np.ndarray
    """``H x W`` weight ``w_v+`` implied by ``z``."""


def bilateral_loop(grid: MaskGrid, terms: OneSidedTerms,
                   solve: Callable[[EdgeTerms, np.ndarray | None, float], tuple[np.ndarray, dict]], *,
                   k: float, iterations: int, tol: float, solver_tol: float, unknown_weight: float,
                   lam: np.ndarray, target: np.ndarray) -> BilateralOutcome:
    """Run the reweighting loop of the module docstring.

    ``solve(edges, z_prev, rtol)`` must return ``(z, info)``: the minimiser of the edge
    system (plus the fixed prior terms) on the ``H x W`` grid to relative residual
    ``rtol``, warm-started from ``z_prev`` (``None`` on the first step). ``lam`` and
    ``target`` (``H x W``) are the prior's weights and values, used here only to evaluate
    the energy.

    Inexact steps: while the energy still moves, a step's system is solved only to
    ``min(LOOSE_RTOL, max(solver_tol, RTOL_PER_CHANGE * last relative energy change))`` (the weights change
    more than that anyway). Convergence is declared only for a step solved to
    ``solver_tol`` whose energy change is at most ``tol``, so the returned depth is the
    exact minimiser for the weights it was solved with.
    """
    def step(share_u, share_v, z_prev, rtol):
        edges = edge_terms(grid.edge_h, grid.edge_v, terms.gu, terms.gv, terms.omega_u,
                           share_u, share_v, unknown_weight, omega_v=terms.omega_v)
        return solve(edges, z_prev, rtol)

    loose = max(solver_tol, LOOSE_RTOL)
    share_u, share_v = initial_shares(terms)
    z, info = step(share_u, share_v, None, loose if iterations > 1 else solver_tol)
    infos = [info]
    share_u, share_v = shares_from_depth(terms, z, k)
    current = energy(terms, z, share_u, share_v, lam, target, grid.mask)
    change = float("nan")
    converged = False
    tight = iterations <= 2
    while len(infos) < iterations:
        rtol = solver_tol if tight or len(infos) == iterations - 1 else \
            min(loose, max(solver_tol, RTOL_PER_CHANGE * change if np.isfinite(change) else loose))
        z, info = step(share_u, share_v, z, rtol)
        infos.append(info)
        share_u, share_v = shares_from_depth(terms, z, k)
        new = energy(terms, z, share_u, share_v, lam, target, grid.mask)
        change = abs(new - current) / current if current > 0 else abs(new - current)
        current = new
        if change <= tol:
            if rtol <= solver_tol:
                converged = True
                break
            tight = True
    return BilateralOutcome(z=z, infos=infos, steps=len(infos), energy=current,
                            energy_change=change, converged=converged, share_u=share_u,
                            share_v=share_v)
