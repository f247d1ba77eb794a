"""Linear solvers for the integration system, plus the DCT Poisson solver.

* :func:`solve_direct` - SuperLU on the sparse system: the reference.
* :func:`solve_amg` - conjugate gradients preconditioned by one Ruge-Stuben AMG V-cycle
  (hierarchy from pyamg, cycle in :class:`VCycle`). Classical (Ruge-Stuben) coarsening
  needed ~6 CG iterations for 1e-6 on the masked 5-point Laplacian here, against ~11 for
  smoothed aggregation at a similar setup cost, so it is the default. A forward
  Gauss-Seidel sweep before and a backward one after the coarse correction keep the
  preconditioner symmetric, as CG requires.
* :func:`dct_poisson` - the same least-squares problem on a full rectangle with unit
  weights, diagonalised by the type-II DCT (Neumann boundary): exact for full rectangles,
  used on the bounding box as a cheap warm start otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.sparse as sp
import scipy.sparse.linalg as spla

#: Systems smaller than this are always solved directly (AMG setup would dominate).
DIRECT_BELOW = 1024


@dataclass
class LinearSolve:
    """Solution of ``A x = b`` with diagnostics."""

    x: np.ndarray
    """Solution, length ``n``."""
    iterations: int
    """CG iterations (0 for a direct solve)."""
    converged: bool
    """True when the tolerance was reached (always for a direct solve)."""
    residual: float
    """``||b - A x|| / ||b||`` (0 when ``b`` is 0)."""
    initial_residual: float
    """``||b - A x0|| / ||b||`` of the starting point (1 from zero; 0 when ``b`` is 0)."""
    setup_seconds: float
    """AMG hierarchy or LU factorisation time."""
    solve_seconds: float
    """Iteration / triangular-solve time."""


def solve_direct(A: sp.csr_matrix, b: np.ndarray) -> LinearSolve:
    """Sparse LU (SuperLU, COLAMD ordering) on ``A``; the reference for the fast paths."""
    t0 = time.perf_counter()
    lu = spla.splu(A.tocsc())
    t1 = time.perf_counter()
    x = lu.solve(b)
    t2 = time.perf_counter()
    return LinearSolve(x=x, iterations=0, converged=True, residual=_relres(A, b, x),
                       initial_residual=1.0, setup_seconds=t1 - t0, solve_seconds=t2 - t1)


#: Coarsest levels up to this size are solved with a precomputed dense inverse.
_DENSE_COARSE = 500


class VCycle:
    """One Ruge-Stuben V-cycle as a symmetric positive definite preconditioner.

    The hierarchy (coarse matrices and interpolation) comes from pyamg; the cycle itself is
    run here: one forward Gauss-Seidel sweep before and one backward sweep after each
    coarse-grid correction (their adjoint pairing keeps the cycle symmetric, as CG needs),
    and a dense solve on the coarsest level. pyamg's own ``aspreconditioner`` runs
    symmetric sweeps on both sides (twice the smoothing) and computes residual norms on
    every application that a preconditioner never uses; dropping both roughly halves the
    cost of a CG iteration for at most one or two extra iterations.
    """

    def __init__(self, hierarchy):
        from pyamg import amg_core

        self._gs = amg_core.gauss_seidel
        self.levels = [(lvl.A.tocsr(), lvl.P.tocsr(), lvl.R.tocsr()) for lvl in hierarchy.levels[:-1]]
        coarse = hierarchy.levels[-1].A
        if coarse.shape[0] <= _DENSE_COARSE:
            inverse = np.linalg.pinv(coarse.toarray())
            self._coarse = lambda b: inverse @ b
        else:  # coarsening stalled early: factorise instead of inverting densely
            self._coarse = spla.splu(coarse.tocsc()).solve
        self.shape = hierarchy.levels[0].A.shape

    def __matmul__(self, b: np.ndarray) -> np.ndarray:
        return self._cycle(0, np.asarray(b, dtype=np.float64))

    def _cycle(self, i: int, b: np.ndarray) -> np.ndarray:
        if i == len(self.levels):
            return self._coarse(b)
        A, P, R = self.levels[i]
        n = b.shape[0]
        x = np.zeros(n)
        self._gs(A.indptr, A.indices, A.data, x, b, 0, n, 1)           # forward sweep
        x += P @ self._cycle(i + 1, R @ (b - A @ x))
        self._gs(A.indptr, A.indices, A.data, x, b, n - 1, -1, -1)     # backward sweep
        return x


def amg_preconditioner(A: sp.csr_matrix):
    """A :class:`VCycle` of ``A`` (symmetric positive definite for an SPD ``A``), and the
    seconds its setup took.

    Any SPD preconditioner keeps CG exact; one built for a nearby matrix (the previous
    bilateral reweighting) only costs iterations, which is what :func:`solve_amg` reports.
    """
    import pyamg

    t0 = time.perf_counter()
    operator = VCycle(pyamg.ruge_stuben_solver(A, keep=False))
    return operator, time.perf_counter() - t0


def solve_amg(A: sp.csr_matrix, b: np.ndarray, x0: np.ndarray | None = None, *,
              tol: float = 1e-6, max_iter: int = 200, preconditioner=None) -> LinearSolve:
    """Preconditioned CG with a pyamg Ruge-Stuben V-cycle, started from ``x0``.

    ``preconditioner`` reuses one from :func:`amg_preconditioner` (built for this or a
    nearby matrix); without it one is built for ``A`` (counted in ``setup_seconds``).
    """
    setup = 0.0
    if preconditioner is None:
        preconditioner, setup = amg_preconditioner(A)
    t1 = time.perf_counter()
    initial = 1.0 if x0 is None else _relres(A, b, x0)
    x, iterations, converged = pcg(A, b, preconditioner, x0, tol=tol, max_iter=max_iter)
    t2 = time.perf_counter()
    return LinearSolve(x=x, iterations=iterations, converged=converged,
                       residual=_relres(A, b, x), initial_residual=initial, setup_seconds=setup,
                       solve_seconds=t2 - t1)


def pcg(A, b: np.ndarray, precondition, x0: np.ndarray | None, *, tol: float,
        max_iter: int) -> tuple[np.ndarray, int, bool]:
    """Textbook preconditioned conjugate gradients; stops at ``||r|| <= tol * ||b||``.

    Returns ``(x, iterations, converged)``.
    """
    b_norm = _norm(b)
    x = np.zeros_like(b) if x0 is None else np.array(x0, dtype=np.float64)
    if b_norm == 0.0:
        return np.zeros_like(b), 0, True
    r = b - A @ x
    threshold = tol * b_norm
    if _norm(r) <= threshold:
        return x, 0, True
    z = precondition @ r
    p = z.copy()
    rz = _dot(r, z)
    for k in range(1, max_iter + 1):
        ap = A @ p
        alpha = rz / _dot(p, ap)
        x += alpha * p
        r -= alpha * ap
        if _norm(r) <= threshold:
            return x, k, True
        z = precondition @ r
        rz_new = _dot(r, z)
        p *= rz_new / rz
        p += z
        rz = rz_new
    return x, max_iter, False


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    # einsum, not BLAS: on a busy machine a threaded BLAS call on a vector this short
    # spends far longer waking its threads than computing (measured ~20x per call).
    return float(np.einsum("i,i->", a, b))


def _norm(a: np.ndarray) -> float:
    return float(np.sqrt(_dot(a, a)))


def _relres(A, b: np.ndarray, x: np.ndarray) -> float:
    b_norm = _norm(b)
    return _norm(b - A @ x) / b_norm if b_norm > 0 else 0.0


def dct_eigenvalues(shape: tuple[int, int]) -> np.ndarray:
    """Eigenvalues ``H x W`` of the unit-weight Neumann grid Laplacian in the DCT-II basis."""
    h, w = shape
    ey = 2.0 - 2.0 * np.cos(np.pi * np.arange(h) / h)
    ex = 2.0 - 2.0 * np.cos(np.pi * np.arange(w) / w)
    return ey[:, None] + ex[None, :]


def dct_poisson(th: np.ndarray, tv: np.ndarray, workers: int | None = None) -> np.ndarray:
    """Least-squares integration of edge differences on a full ``H x W`` rectangle.

    ``th`` (``H x (W-1)``) and ``tv`` (``(H-1) x W``) are the target differences along rows
    and columns, all with weight 1. Returns the ``H x W`` minimiser with mean zero, equal to
    the sparse solve of the same system on an all-true mask.
    """
    h = tv.shape[0] + 1
    w = th.shape[1] + 1
    b = np.zeros((h, w))
    b[:, 1:] += th
    b[:, :-1] -= th
    b[1:, :] += tv
    b[:-1, :] -= tv
    coeff = scipy.fft.dctn(b, type=2, norm="ortho", workers=workers)
    lam = dct_eigenvalues((h, w))
    lam[0, 0] = 1.0
    coeff /= lam
    coeff[0, 0] = 0.0  # the free constant: mean zero
    return scipy.fft.idctn(coeff, type=2, norm="ortho", workers=workers)
