"""``integrate``: normals (+ mask, prior depth, camera) -> depth. The library's entry point.

The free constant
    Normals fix depth only up to one additive constant per 4-connected component of the
    mask (a multiplicative scale per component in perspective). Without a prior each
    orthographic component gets mean height 0 and each perspective component a geometric
    mean depth of ``settings.reference_depth``. With a prior the prior fixes it; components
    that contain no usable prior pixel get the mean of the prior over all its usable
    pixels (geometric mean in perspective).

Perspective
    With a :class:`~integration.camera.Camera` the unknown is ``log(depth)`` (depth = the
    positive distance along the optical axis), which keeps the system linear; a prior
    enters as ``log(prior_depth)`` with the same weights, i.e. as a relative error.
"""

from __future__ import annotations

import time

import numpy as np

from integration.bilateral import bilateral_loop, one_sided_terms, shares_map
from integration.camera import Camera
from integration.gradients import GradientField, gradients_from_normals
from integration.settings import IntegrationResult, IntegrationSettings
from integration.solvers import (DIRECT_BELOW, amg_preconditioner, dct_poisson, solve_amg,
                                 solve_direct)
from integration.system import (MaskGrid, MatrixPattern, assemble_rhs, build_grid,
                                edge_energy, edge_terms, scatter)


def integrate(normals: np.ndarray, mask: np.ndarray, *, prior_depth: np.ndarray | None = None,
              prior_weight: float | np.ndarray | None = None, confidence: np.ndarray | None = None,
              camera: Camera | None = None,
              settings: IntegrationSettings | None = None) -> IntegrationResult:
    """Integrate a normal map into depth.

    Args:
        normals: ``H x W x 3`` camera-space normals (x right, y up, z towards the camera);
            need not be unit; NaN = unknown (filled smoothly, never propagated).
        mask: ``H x W`` bool, pixels to reconstruct; holes and several components allowed.
        prior_depth: optional ``H x W`` depth in the output's units (orthographic height,
            or positive perspective depth); NaN/inf pixels are ignored.
        prior_weight: scalar or ``H x W`` weight of the prior equations (default
            ``settings.prior_weight``), relative to one gradient equation.
        confidence: optional ``H x W`` per-pixel trust in the normals (>= 0; NaN = 0).
        camera: pinhole intrinsics for the perspective (log-depth) formulation.
        settings: method, solver and tolerances.

    Returns:
        :class:`IntegrationResult` with ``depth`` ``H x W`` float64, NaN outside the mask.

    Raises:
        ValueError: wrong shapes, empty mask, negative weights, ``fusion`` without a usable
            prior, ``dct`` with a prior, non-positive perspective prior depth.
    """
    t_start = time.perf_counter()
    settings = settings or IntegrationSettings()
    normals, mask, prior, weight, confidence = _check_inputs(
        normals, mask, prior_depth, prior_weight, confidence, camera, settings)

    # Work on the mask's bounding box: everything outside it is irrelevant.
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    crop_camera = None if camera is None else Camera(
        camera.fx, camera.fy, camera.cx - cols[0], camera.cy - rows[0])
    m = mask[box]
    field = gradients_from_normals(normals[box], m, camera=crop_camera, pixel_size=settings.pixel_size,
                                   grazing_nz=settings.grazing_nz,
                                   confidence=None if confidence is None else confidence[box])
    grid = build_grid(m)

    if prior is not None:
        prior_box = prior[box]
        usable = m & np.isfinite(prior_box) & (weight[box] > 0)
        if camera is not None:
            if np.any(usable & (prior_box <= 0)):
                raise ValueError("prior_depth: perspective depth must be positive inside the mask")
            with np.errstate(invalid="ignore", divide="ignore"):
                target = np.where(usable, np.log(np.where(usable, prior_box, 1.0)), 0.0)
        else:
            target = np.where(usable, prior_box, 0.0)
        lam = np.where(usable, weight[box], 0.0)
        if not usable.any():
            raise ValueError("prior_depth: no finite prior value with positive weight inside the mask")
    else:
        target = lam = np.zeros(m.shape)

    bilateral = None
    if settings.method == "dct":
        z, info, timings = _solve_dct(grid, field, settings)
        infos = [info]
    else:
        z, infos, timings, bilateral = _solve_sparse(grid, field, lam, target, settings)
        info = infos[-1]

    z = _fix_constants(grid, z, lam, target, settings, perspective=camera is not None)
    depth_box = np.exp(z) if camera is not None else z
    depth = np.full(mask.shape, np.nan)
    depth[box] = np.where(m, depth_box, np.nan)

    # Integrability diagnostic against the plain (unsplit) targets, whatever the method.
    final_edges = info.get("edges") if settings.method in ("poisson", "fusion") else None
    if final_edges is None:
        final_edges = edge_terms(grid.edge_h, grid.edge_v, field.gu, field.gv, field.weight,
                                 unknown_weight=settings.unknown_weight)
    energy, wsum = edge_energy(grid, final_edges, np.where(m, z, 0.0))
    converged = all(i["converged"] for i in infos)
    extra = {}
    if bilateral is not None:
        outcome, terms = bilateral
        converged = converged and outcome.converged
        weights = np.full(mask.shape + (4,), np.nan)
        weights[box] = shares_map(terms, outcome.share_u, outcome.share_v, m)
        extra = {"bilateral_steps": outcome.steps, "bilateral_energy": outcome.energy,
                 "bilateral_energy_change": outcome.energy_change, "bilateral_weights": weights}
    return IntegrationResult(
        depth=depth, method=settings.method, solver=info["solver"],
        iterations=int(sum(i["iterations"] for i in infos)), residual=float(info["residual"]),
        gradient_rms=float(np.sqrt(energy / wsum)) if wsum > 0 else 0.0,
        seconds=time.perf_counter() - t_start, converged=converged,
        n_components=grid.n_components, n_pixels=int(m.sum()), perspective=camera is not None,
        timings=timings, **extra)


def _solve_sparse(grid: MaskGrid, field: GradientField, lam: np.ndarray, target: np.ndarray,
                  settings: IntegrationSettings):
    """Poisson / fusion / bilateral on the masked grid.

    Returns ``(z, infos, timings, outcome)`` with ``outcome`` the
    :class:`~integration.bilateral.BilateralOutcome` (``None`` for poisson and fusion).
    """
    timings = {"assemble": 0.0, "setup": 0.0, "solve": 0.0}
    comp = grid.component_of_unknowns()
    has_prior = np.bincount(comp, weights=lam[grid.mask], minlength=grid.n_components) > 0
    # One pinned pixel per prior-less component makes the system definite without changing
    # the minimiser (the component's constant is free); _fix_constants sets it afterwards.
    first = np.unique(comp, return_index=True)[1]
    pins = first[~has_prior]
    diag_extra = lam.copy()
    diag_extra[grid.mask] += np.bincount(pins, minlength=len(comp)).astype(np.float64)
    rhs_extra = lam * target
    use_direct = settings.solver == "direct" or len(comp) < DIRECT_BELOW
    # The V-cycle is kept across bilateral reweightings and rebuilt by a rent-or-buy rule:
    # the first solves after a build measure its rate (decades of residual reduction per
    # CG iteration, over at least one decade); later solves with a staler V-cycle need more
    # iterations than that rate implies, and once the seconds lost that way exceed what
    # the build cost, the next solve builds a new one (so at most twice the best possible
    # cost of rebuilding). A solve that fails to converge rebuilds at once.
    amg = {"operator": None}
    pattern = MatrixPattern(grid)

    def build(A):
        amg["operator"], seconds = amg_preconditioner(A)
        amg.update(setup=seconds, rate=None, its=0, decades=0.0, lost=0.0)
        timings["setup"] += seconds

    def account(ls):
        if ls.iterations == 0:
            return
        decades = float(np.log10(max(ls.initial_residual, 1e-300) / max(ls.residual, 1e-300)))
        if amg["rate"] is None:
            amg["its"] += ls.iterations
            amg["decades"] += decades
            if amg["decades"] >= 1.0:
                amg["rate"] = amg["decades"] / amg["its"]
            return
        wasted = ls.iterations - max(decades, 0.0) / amg["rate"]
        amg["lost"] += max(wasted, 0.0) * ls.solve_seconds / ls.iterations
        if amg["lost"] > amg["setup"]:
            amg["operator"] = None

    def solve(edges, z_prev, rtol):
        t0 = time.perf_counter()
        A = pattern.matrix(edges, diag_extra)
        b = assemble_rhs(grid, edges, rhs_extra)
        timings["assemble"] += time.perf_counter() - t0
        if use_direct:
            ls = solve_direct(A, b)
            iterations = 0
        else:
            if z_prev is not None:
                x0 = z_prev[grid.mask]
            elif settings.warm_start:
                t1 = time.perf_counter()
                x0 = _warm_start(grid, field, settings, comp, pins, has_prior, lam, target)
                timings["assemble"] += time.perf_counter() - t1
            else:
                x0 = None
            reused = amg["operator"] is not None
            if not reused:
                build(A)
            ls = solve_amg(A, b, x0, tol=rtol, max_iter=settings.max_iter,
                           preconditioner=amg["operator"])
            iterations = ls.iterations
            if reused and not ls.converged:
                timings["solve"] += ls.solve_seconds
                build(A)
                ls = solve_amg(A, b, ls.x, tol=rtol, max_iter=settings.max_iter,
                               preconditioner=amg["operator"])
                iterations += ls.iterations
            account(ls)
            if not settings.reuse_preconditioner:
                amg["operator"] = None
        timings["setup"] += ls.setup_seconds if use_direct else 0.0
        timings["solve"] += ls.solve_seconds
        z = scatter(grid, ls.x, fill=0.0)
        info = {"solver": "direct" if use_direct else "amg", "iterations": iterations,
                "converged": ls.converged, "residual": ls.residual, "edges": edges}
        return z, info

    if settings.method == "bilateral":
        terms = one_sided_terms(grid, field)
        outcome = bilateral_loop(grid, terms, solve, k=settings.bilateral_k,
                                 iterations=settings.bilateral_iterations,
                                 tol=settings.bilateral_tol, solver_tol=settings.tol,
                                 unknown_weight=settings.unknown_weight, lam=lam, target=target)
        return outcome.z, outcome.infos, timings, (outcome, terms)
    edges = edge_terms(grid.edge_h, grid.edge_v, field.gu, field.gv, field.weight,
                       unknown_weight=settings.unknown_weight)
    z, info = solve(edges, None, settings.tol)
    return z, [info], timings, None


def _box_dct(field: GradientField, settings: IntegrationSettings) -> np.ndarray:
    """DCT solution on the whole box; slopes of unknown/outside pixels count as 0."""
    full_h = np.ones((field.gu.shape[0], field.gu.shape[1] - 1), bool)
    full_v = np.ones((field.gu.shape[0] - 1, field.gu.shape[1]), bool)
    edges = edge_terms(full_h, full_v, field.gu, field.gv, field.weight,
                       unknown_weight=settings.unknown_weight)
    return dct_poisson(edges.th, edges.tv, workers=-1)


def _warm_start(grid, field, settings, comp, pins, has_prior, lam, target) -> np.ndarray:
    """DCT box solution shifted per component to the pinned value 0 or the prior's level."""
    x0 = _box_dct(field, settings)[grid.mask]
    shift = np.zeros(grid.n_components)
    no_prior = np.flatnonzero(~has_prior)
    shift[no_prior] = -x0[pins]
    lam_m = lam[grid.mask]
    num = np.bincount(comp, weights=lam_m * (target[grid.mask] - x0), minlength=grid.n_components)
    den = np.bincount(comp, weights=lam_m, minlength=grid.n_components)
    shift[has_prior] = num[has_prior] / den[has_prior]
    return x0 + shift[comp]


def _solve_dct(grid: MaskGrid, field: GradientField, settings: IntegrationSettings):
    t0 = time.perf_counter()
    z = _box_dct(field, settings)
    seconds = time.perf_counter() - t0
    info = {"solver": "dct", "iterations": 0, "converged": True, "residual": float("nan")}
    return z, info, {"assemble": 0.0, "setup": 0.0, "solve": seconds}


def _fix_constants(grid: MaskGrid, z: np.ndarray, lam: np.ndarray, target: np.ndarray,
                   settings: IntegrationSettings, perspective: bool) -> np.ndarray:
    """Set the free constant of every component that the prior did not fix (see module doc)."""
    comp = grid.component_of_unknowns()
    lam_m = lam[grid.mask]
    has_prior = np.bincount(comp, weights=lam_m, minlength=grid.n_components) > 0
    if has_prior.all():
        return z
    if lam_m.sum() > 0:
        level = float(np.sum(lam_m * target[grid.mask]) / lam_m.sum())
    else:
        level = float(np.log(settings.reference_depth)) if perspective else 0.0
    zm = z[grid.mask]
    counts = np.bincount(comp, minlength=grid.n_components)
    means = np.bincount(comp, weights=zm, minlength=grid.n_components) / np.maximum(counts, 1)
    shift = np.where(has_prior, 0.0, level - means)
    out = z.copy()
    out[grid.mask] = zm + shift[comp]
    return out


def _check_inputs(normals, mask, prior, prior_weight, confidence, camera, settings):
    n = np.asarray(normals)
    if n.ndim != 3 or n.shape[2] != 3:
        raise ValueError(f"normals: expected an H x W x 3 array, got shape {n.shape}")
    if not np.issubdtype(n.dtype, np.number):
        raise ValueError(f"normals: expected a numeric array, got dtype {n.dtype}")
    shape = n.shape[:2]
    if min(shape) < 1:
        raise ValueError(f"normals: empty image of shape {n.shape}")
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"mask: shape {m.shape} does not match the normals' {shape}")
    if m.dtype != bool:
        if not np.issubdtype(m.dtype, np.number) or not np.all(np.isfinite(m)):
            raise ValueError("mask: expected a boolean (or finite 0/1) array")
        m = m != 0
    if not m.any():
        raise ValueError("mask: no pixel is set; there is nothing to integrate")
    if camera is not None and not isinstance(camera, Camera):
        raise ValueError(f"camera: expected an integration.Camera, got {type(camera).__name__}")
    if settings.method == "fusion" and prior is None:
        raise ValueError("method 'fusion' needs prior_depth")
    if settings.method == "dct" and prior is not None:
        raise ValueError("method 'dct' cannot use a prior; use 'fusion'")

    p = w = None
    if prior is not None:
        p = np.asarray(prior, dtype=np.float64)
        if p.shape != shape:
            raise ValueError(f"prior_depth: shape {p.shape} does not match the normals' {shape}")
        raw = settings.prior_weight if prior_weight is None else prior_weight
        w = np.broadcast_to(np.asarray(raw, dtype=np.float64), shape) if np.ndim(raw) == 0 \
            else np.asarray(raw, dtype=np.float64)
        if w.shape != shape:
            raise ValueError(f"prior_weight: shape {w.shape} does not match the normals' {shape}")
        w = np.where(np.isfinite(w), w, 0.0)
        if np.any(w < 0):
            raise ValueError("prior_weight: weights must be >= 0")
    elif prior_weight is not None:
        raise ValueError("prior_weight given without prior_depth")

    c = None
    if confidence is not None:
        c = np.asarray(confidence, dtype=np.float64)
        if c.shape != shape:
            raise ValueError(f"confidence: shape {c.shape} does not match the normals' {shape}")
        c = np.where(np.isfinite(c), c, 0.0)
        if np.any(c < 0):
            raise ValueError("confidence: values must be >= 0")
    return n, m, p, w, c
