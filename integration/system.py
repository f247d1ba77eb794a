"""The weighted least-squares system on the mask's own pixels.

Unknowns: one value ``z_p`` per masked pixel (raster order). Equations: for every pair of
4-neighbours ``p -> q`` inside the mask (``q`` right of or below ``p``)::

    w_e * (z_q - z_p - t_e)^2

plus optional position equations ``lambda_p * (z_p - prior_p)^2``. Each edge collects two
one-sided estimates of its difference, ``p``'s forward slope and ``q``'s backward slope::

    w_e = omega_p * s_p^+ + omega_q * s_q^-
    t_e = (omega_p * s_p^+ * g_p + omega_q * s_q^- * g_q) / w_e

``omega`` is the per-pixel trust of :class:`integration.gradients.GradientField` and the
split ``s^+ + s^- = 1`` is 1/2 each for plain Poisson (the classic averaged-gradient
scheme) and chosen per pixel by the bilateral method. The normal equations are
``(L + diag(lambda)) z = D^T W t + lambda * prior`` with ``L = D^T W D`` a weighted graph
Laplacian, assembled here straight into CSR without a COO round trip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp


@dataclass
class MaskGrid:
    """Index bookkeeping for a boolean ``H x W`` mask."""

    mask: np.ndarray
    """``H x W`` bool."""
    index: np.ndarray
    """``H x W`` int64: unknown number of each masked pixel in raster order, -1 outside."""
    labels: np.ndarray
    """``H x W`` int32: 4-connected component id 1..n inside the mask, 0 outside."""
    n_components: int
    """Number of components."""
    edge_h: np.ndarray
    """``H x (W-1)`` bool: pixel and its right neighbour both masked."""
    edge_v: np.ndarray
    """``(H-1) x W`` bool: pixel and the one below both masked."""

    def component_of_unknowns(self) -> np.ndarray:
        """Component id (0-based) of every unknown, length ``n``."""
        return self.labels[self.mask] - 1


def build_grid(mask: np.ndarray) -> MaskGrid:
    """Index map, components and neighbour edges of a boolean mask."""
    index = np.full(mask.shape, -1, dtype=np.int64)
    index[mask] = np.arange(int(mask.sum()), dtype=np.int64)
    labels, count = ndi.label(mask)  # default structure = 4-connectivity, like our edges
    return MaskGrid(mask=mask, index=index, labels=labels.astype(np.int32), n_components=int(count),
                    edge_h=mask[:, :-1] & mask[:, 1:], edge_v=mask[:-1, :] & mask[1:, :])


@dataclass
class EdgeTerms:
    """Weights and target differences of the horizontal and vertical edges."""

    wh: np.ndarray
    """``H x (W-1)`` weight of ``z[r, c+1] - z[r, c]``; 0 where there is no edge."""
    th: np.ndarray
    """``H x (W-1)`` target of ``z[r, c+1] - z[r, c]``."""
    wv: np.ndarray
    """``(H-1) x W`` weight of ``z[r+1, c] - z[r, c]``; 0 where there is no edge."""
    tv: np.ndarray
    """``(H-1) x W`` target of ``z[r+1, c] - z[r, c]``."""


def edge_terms(edge_h: np.ndarray, edge_v: np.ndarray, gu: np.ndarray, gv: np.ndarray,
               omega: np.ndarray, forward_u: np.ndarray | float = 0.5, forward_v: np.ndarray | float = 0.5,
               unknown_weight: float = 1e-4, omega_v: np.ndarray | None = None) -> EdgeTerms:
    """Combine the one-sided estimates into one equation per edge (see module docstring).

    ``edge_h``/``edge_v`` say which edges exist (:class:`MaskGrid` fields, or all true
    for a full rectangle). ``forward_u``/``forward_v`` are ``s^+`` (scalar or ``H x W``); ``s^- = 1 - s^+``.
    ``omega`` (``H x W``) is the per-pixel trust of both directions, or of the column
    direction only when ``omega_v`` gives the row direction's own.
    Edges whose combined weight is below ``unknown_weight`` are raised to it; if they had
    no information at all their target is 0 (a membrane that fills unknown regions).
    """
    fu = np.broadcast_to(forward_u, gu.shape)
    fv = np.broadcast_to(forward_v, gv.shape)
    a_h = omega[:, :-1] * fu[:, :-1]            # p's forward share
    b_h = omega[:, 1:] * (1.0 - fu[:, 1:])      # q's backward share
    omega_v = omega if omega_v is None else omega_v
    a_v = omega_v[:-1, :] * fv[:-1, :]
    b_v = omega_v[1:, :] * (1.0 - fv[1:, :])
    wh, th = _combine(a_h, gu[:, :-1], b_h, gu[:, 1:], edge_h, unknown_weight)
    wv, tv = _combine(a_v, gv[:-1, :], b_v, gv[1:, :], edge_v, unknown_weight)
    return EdgeTerms(wh=wh, th=th, wv=wv, tv=tv)


def _combine(wa, ga, wb, gb, exists, floor):
    w = wa + wb
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(w > 0, (wa * ga + wb * gb) / np.where(w > 0, w, 1.0), 0.0)
    w = np.where(exists, np.maximum(w, floor), 0.0)
    return w, np.where(exists, t, 0.0)


class MatrixPattern:
    """The fixed sparsity pattern of :func:`assemble_matrix` for one grid.

    The pattern depends only on the mask (every edge gets at least ``unknown_weight``), so
    the bilateral loop builds it once and only refills the values at each reweighting.
    Rows are in raster order, so each row's neighbours (up, left, self, right, down) are
    already in increasing column order and the CSR arrays can be written directly.
    """

    def __init__(self, grid: MaskGrid):
        h, w = grid.mask.shape
        m = grid.mask
        idx = grid.index
        has_up = np.zeros((h, w), bool); has_up[1:, :] = grid.edge_v
        has_down = np.zeros((h, w), bool); has_down[:-1, :] = grid.edge_v
        has_left = np.zeros((h, w), bool); has_left[:, 1:] = grid.edge_h
        has_right = np.zeros((h, w), bool); has_right[:, :-1] = grid.edge_h
        # Neighbour indices; out-of-grid shifts are masked by has_* so the wrap-around is harmless.
        cols = np.stack([np.roll(idx, 1, axis=0)[m], np.roll(idx, 1, axis=1)[m], idx[m],
                         np.roll(idx, -1, axis=1)[m], np.roll(idx, -1, axis=0)[m]], axis=1)
        n = int(m.sum())
        self.valid = np.stack([has_up[m], has_left[m], np.ones(n, bool), has_right[m],
                               has_down[m]], axis=1)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(self.valid.sum(axis=1), out=indptr[1:])
        self.indptr = indptr.astype(np.int32)
        self.indices = cols[self.valid].astype(np.int32)
        self.n = n
        self.mask = m
        self._shape = (h, w)

    def matrix(self, edges: EdgeTerms, diag_extra: np.ndarray) -> sp.csr_matrix:
        """``L + diag(diag_extra)`` for these edge weights (see :func:`assemble_matrix`)."""
        h, w = self._shape
        m = self.mask
        up = np.zeros((h, w)); up[1:, :] = edges.wv
        down = np.zeros((h, w)); down[:-1, :] = edges.wv
        left = np.zeros((h, w)); left[:, 1:] = edges.wh
        right = np.zeros((h, w)); right[:, :-1] = edges.wh
        vals = np.empty((self.n, 5))
        vals[:, 0] = -up[m]
        vals[:, 1] = -left[m]
        vals[:, 3] = -right[m]
        vals[:, 4] = -down[m]
        vals[:, 2] = (up + down + left + right + diag_extra)[m]
        mat = sp.csr_matrix((vals[self.valid], self.indices, self.indptr), shape=(self.n, self.n))
        mat.has_sorted_indices = True
        return mat


def assemble_matrix(grid: MaskGrid, edges: EdgeTerms, diag_extra: np.ndarray) -> sp.csr_matrix:
    """``L + diag(diag_extra)`` as an ``n x n`` CSR matrix with sorted indices (one-off
    use of :class:`MatrixPattern`)."""
    return MatrixPattern(grid).matrix(edges, diag_extra)


def assemble_rhs(grid: MaskGrid, edges: EdgeTerms, rhs_extra: np.ndarray) -> np.ndarray:
    """``D^T W t + rhs_extra`` for the masked unknowns, length ``n``."""
    h, w = grid.mask.shape
    flux_h = edges.wh * edges.th
    flux_v = edges.wv * edges.tv
    b = rhs_extra.astype(np.float64, copy=True)
    b[:, 1:] += flux_h       # z_q appears with +1 in its left edge
    b[:, :-1] -= flux_h      # z_p appears with -1 in its right edge
    b[1:, :] += flux_v
    b[:-1, :] -= flux_v
    return b[grid.mask]


def edge_energy(grid: MaskGrid, edges: EdgeTerms, z: np.ndarray) -> tuple[float, float]:
    """``(sum w_e r_e^2, sum w_e)`` with ``r_e = z_q - z_p - t_e``; ``z`` is ``H x W``."""
    rh = (z[:, 1:] - z[:, :-1] - edges.th)[grid.edge_h]
    rv = (z[1:, :] - z[:-1, :] - edges.tv)[grid.edge_v]
    wh = edges.wh[grid.edge_h]
    wv = edges.wv[grid.edge_v]
    return float((wh * rh**2).sum() + (wv * rv**2).sum()), float(wh.sum() + wv.sum())


def scatter(grid: MaskGrid, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """Put a length-``n`` vector back on the ``H x W`` grid, ``fill`` outside the mask."""
    out = np.full(grid.mask.shape, fill, dtype=np.float64)
    out[grid.mask] = values
    return out
