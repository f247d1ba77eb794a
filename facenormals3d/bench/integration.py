"""``facenormals3d bench integration``: speed and accuracy of the normal-integration solvers.

Surface: the face-like sum of Gaussians of :data:`integration.surfaces.FACE_BUMPS` (depth
range ~30 % of the width) with exact normals, inside a centred disc of radius 0.45 W. For
each size it times the direct sparse solve (the reference, same process) and every fast
path, and reports the mean absolute depth error against the analytic surface (after
removing the free constant; fusion keeps the level of its prior, so its error is
measured the same way for comparability).
"""

from __future__ import annotations

import argparse

import numpy as np

from facenormals3d.bench import BenchReport, target, time_call

DESCRIPTION = "normal integration: masked Poisson (CG+AMG), DCT, fusion, bilateral vs a direct solve"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024],
                        help="image sizes (square) to run (default: 256 512 1024)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs per fast solver; the best is kept (default: 5)")
    parser.add_argument("--no-bilateral", action="store_true",
                        help="skip the (slow, iterative) bilateral method")
    parser.add_argument("--diligent", metavar="DIR", default=None,
                        help="instead: bilateral integration on the DiLiGenT objects in DIR "
                             "(MADE, seconds, steps per object beside BiNI's published figures "
                             "and a poisson reference timed in the same run; see "
                             "facenormals3d/bench/diligent.py for the folder layout)")


def _scene(size: int):
    import scipy.ndimage as ndi

    from integration.surfaces import disc_mask, gaussian_bumps, height_normals

    surf = gaussian_bumps((size, size))
    mask = disc_mask((size, size), 0.45)
    normals = height_normals(surf)
    # A coarse, slightly wrong prior: blurred truth plus a gentle tilt.
    cols = np.arange(size)[None, :] - size / 2.0
    prior = ndi.gaussian_filter(surf.value, size / 32.0) + 0.01 * cols
    return surf.value, mask, normals, prior


def _error(depth: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    diff = (depth - truth)[mask]
    return float(np.mean(np.abs(diff - diff.mean())))


def run(args: argparse.Namespace) -> BenchReport:
    from integration import IntegrationSettings, integrate

    if getattr(args, "diligent", None):
        from facenormals3d.bench.diligent import run_diligent

        return run_diligent(args.diligent, repeats=max(1, args.repeats))

    rows: list[dict] = []
    targets: list[dict] = []
    for size in args.sizes:
        truth, mask, normals, prior = _scene(size)
        depth_range = float(np.ptp(truth[mask]))
        cases = [
            ("direct", IntegrationSettings(solver="direct"), None, 1),
            ("poisson", IntegrationSettings(), None, args.repeats),
            ("poisson-cold", IntegrationSettings(warm_start=False), None, args.repeats),
            ("dct", IntegrationSettings(method="dct"), None, args.repeats),
            ("fusion", IntegrationSettings(method="fusion", prior_weight=1e-3), prior, args.repeats),
            ("fusion-direct", IntegrationSettings(method="fusion", prior_weight=1e-3, solver="direct"),
             prior, 1),
        ]
        if not args.no_bilateral:
            cases.append(("bilateral", IntegrationSettings(method="bilateral"), None, 1))
        measured = {}
        for name, settings, prior_depth, repeats in cases:
            seconds, res = time_call(lambda: integrate(normals, mask, prior_depth=prior_depth,
                                                       settings=settings),
                                     repeats=repeats, warmup=0 if repeats == 1 else 1)
            measured[name] = (seconds, res)
        ref_seconds, ref = measured["direct"]
        ref_err = _error(ref.depth, truth, mask)
        for name, (seconds, res) in measured.items():
            err = _error(res.depth, truth, mask)
            # fast paths against the direct solve of the same system, up to the constant
            same = measured["fusion-direct"][1] if name.startswith("fusion") else ref
            gap = (res.depth - same.depth)[mask]
            rows.append({"size": size, "method": name, "solver": res.solver,
                         "seconds": seconds, "x_direct": seconds / ref_seconds,
                         "iters": res.iterations, "mae": err, "mae/range": err / depth_range,
                         "mae/direct": err / ref_err,
                         "max|z-direct|/range": float(np.max(np.abs(gap - gap.mean()))) / depth_range})
        poisson_s, poisson = measured["poisson"]
        poisson_err = _error(poisson.depth, truth, mask)
        if size in (256, 1024):
            limit = 0.1 if size == 256 else 2.0
            targets.append(target(f"masked Poisson {size}^2 seconds", poisson_s, limit))
        targets.append(target(f"masked Poisson {size}^2 |mae/direct - 1|",
                              abs(poisson_err / ref_err - 1.0), 0.01))
        targets.append(target(f"fusion / Poisson time {size}^2", measured["fusion"][0] / poisson_s, 1.5))
    notes = ["mae = mean |depth - truth| after removing the mean offset, in pixels; "
             "depth range ~0.3 x size",
             "poisson = CG + pyamg Ruge-Stuben V-cycle, DCT warm start, tol 1e-6; "
             "poisson-cold = same without the warm start",
             "dct = bounding-box DCT with zero-filled gradients outside the disc (biased at the edge)",
             "max|z-direct| compares with the direct solve of the same system (fusion: fusion-direct)",
             "fusion prior = blurred truth + tilt, prior_weight 1e-3 (error includes what the "
             "prior keeps of its tilt)"]
    return BenchReport(name="integration", rows=rows, targets=targets, notes=notes)
