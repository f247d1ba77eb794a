"""Discontinuity-preserving weights (bilateral normal integration, iteratively reweighted).

Idea (after Cao et al., "Bilateral Normal Integration", ECCV 2022): every pixel's normal
predicts the difference to its right neighbour (forward) *and* from its left neighbour
(backward). Plain Poisson trusts both halves equally (``s^+ = s^- = 1/2``). Across a depth
discontinuity one of the two is wrong, so after each solve we move the pixel's trust to
the side that agrees with the current surface::

    s^+ = sigmoid(k * (r_-^2 - r_+^2)),   s^- = 1 - s^+

with ``r_+ = (z_right - z_p - t_right) * scale`` and ``r_- = (z_p - z_left - t_left) * scale``
the residuals of the pixel's two edges, as dimensionless slopes (``scale`` from
:class:`integration.gradients.GradientField`), measured against each edge's plain
two-sided target ``t`` (the mean of both ends' slopes). Unlike one-sided residuals
against the pixel's own slope, these vanish to O(h^3) on smooth surfaces on both sides,
so a coarsely sampled but smooth surface keeps the Poisson weights and the method only
cuts where the normals are not integrable. Pixels with one neighbour only give it all
their trust. Each step is the same weighted least-squares system as Poisson (see
:mod:`integration.system`), solved warm-started from the previous step; the loop stops
when the energy changes by less than ``bilateral_tol`` (relative) or after
``bilateral_iterations`` steps. On a smooth surface the weights stay near 1/2 and the
result equals Poisson's.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from integration.gradients import GradientField
from integration.system import MaskGrid


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def one_sided_split(grid: MaskGrid, z: np.ndarray, field: GradientField,
                    k: float) -> tuple[np.ndarray, np.ndarray]:
    """Forward shares ``(s^+_u, s^+_v)``, each ``H x W``, from the current surface ``z``.

    ``z`` is ``H x W`` in solution units (values outside the mask are ignored).
    """
    zf = np.where(grid.mask, z, 0.0)
    scale = field.slope_scale
    split = []
    for axis, g, edge in ((1, field.gu, grid.edge_h), (0, field.gv, grid.edge_v)):
        diff = np.diff(zf, axis=axis)                      # z_next - z
        has_fwd = np.zeros(grid.mask.shape, bool)
        has_bwd = np.zeros(grid.mask.shape, bool)
        fwd = np.zeros(grid.mask.shape)
        bwd = np.zeros(grid.mask.shape)
        head = (slice(None), slice(None, -1)) if axis == 1 else (slice(None, -1), slice(None))
        tail = (slice(None), slice(1, None)) if axis == 1 else (slice(1, None), slice(None))
        has_fwd[head] = edge
        has_bwd[tail] = edge
        fwd[head] = diff
        bwd[tail] = diff
        # Residuals against the edge's two-sided target (mean of both ends' slopes): for a
        # smooth surface they are O(h^3) on both sides, so the split stays at 1/2 even
        # where the pixel grid is coarse relative to the curvature; across a cut they
        # differ strongly.
        mean_g = 0.5 * (np.take(g, range(1, g.shape[axis]), axis=axis)
                        + np.take(g, range(g.shape[axis] - 1), axis=axis))
        target_fwd = np.zeros(grid.mask.shape)
        target_bwd = np.zeros(grid.mask.shape)
        target_fwd[head] = mean_g
        target_bwd[tail] = mean_g
        r_plus = (fwd - target_fwd) * scale
        r_minus = (bwd - target_bwd) * scale
        s = _sigmoid(k * (r_minus**2 - r_plus**2))
        s = np.where(has_fwd & ~has_bwd, 1.0, s)
        s = np.where(has_bwd & ~has_fwd, 0.0, s)
        s = np.where(has_fwd | has_bwd, s, 0.5)
        split.append(s)
    return split[0], split[1]


def bilateral_loop(grid: MaskGrid, field: GradientField, solve: Callable, *, k: float,
                   iterations: int, tol: float):
    """Run the reweighting loop.

    ``solve(forward_u, forward_v, z0)`` must return ``(z, info, energy)`` with ``z`` on the
    ``H x W`` grid (``z0`` is ``None`` or the previous ``z``). Returns the last
    ``(z, info, energy)`` and the number of steps taken (the first, unweighted solve counts).
    """
    z, info, energy = solve(0.5, 0.5, None)
    infos = [info]
    steps = 1
    for _ in range(iterations - 1):
        fu, fv = one_sided_split(grid, z, field, k)
        z, info, new_energy = solve(fu, fv, z)
        infos.append(info)
        steps += 1
        if abs(new_energy - energy) <= tol * max(abs(energy), 1e-300):
            energy = new_energy
            break
        energy = new_energy
    return z, infos, energy, steps
