"""``facenormals3d bench pipeline``: wall time per stage for one face, warm, on this machine."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


from facenormals3d.bench import BenchReport, target

DESCRIPTION = ("time each stage of reconstruct for one 256x256 face on the astronaut photo "
               "(warm, no refinement), the landmark baseline as the in-process reference, "
               "and the refinement cost per iteration")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeats", type=int, default=5, help="timed runs per configuration (best kept)")
    p.add_argument("--refine-iterations", type=int, default=10,
                   help="iterations for the refinement timing (0 skips it)")
    p.add_argument("--weights", default=None, help="network weights (default: shipped)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")


def run(args: argparse.Namespace) -> BenchReport:
    import skimage.data
    import torch

    from facenormals3d.export import write_face
    from facenormals3d.pipeline import Reconstructor, ReconstructSettings

    torch.set_num_threads(args.threads)
    image = skimage.data.astronaut()
    rows, notes = [], []
    totals = {}
    for source in ("network", "landmarks"):
        settings = ReconstructSettings(normal_source=source, weights=args.weights, device="cpu")
        with Reconstructor(settings) as rec:
            rec.run(image)  # warm-up: graph start, first-call allocations
            best = None
            for _ in range(max(1, args.repeats)):
                t0 = time.perf_counter()
                r = rec.run(image)[0]
                wall = time.perf_counter() - t0
                if best is None or wall < best[0]:
                    best = (wall, dict(r.timings), len(r.mesh.vertices), r)
        wall, timings, n_vertices, r = best
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            write_face(r, Path(tmp))
            export = time.perf_counter() - t0
        totals[source] = wall
        rows.append({"source": source, **{k: round(v * 1000, 1) for k, v in timings.items()},
                     "total_ms": round(wall * 1000, 1), "export_ms": round(export * 1000, 1),
                     "vertices": n_vertices})
    notes.append("times in ms; 'total_ms' is the wall time of Reconstructor.run (detect to "
                 "landmarks on the mesh, no file writing); 'export_ms' writes every file of the "
                 "face incl. the 4 PyTorch3D preview renders")
    notes.append(f"network / landmark-baseline wall-time ratio: {totals['network'] / totals['landmarks']:.2f}")
    targets = [target("end-to-end seconds per face, CPU, no refinement", totals["network"], 1.0)]
    # The face-model fit: landmark stage + dense stage of the default (network) run, beside
    # the landmark-only stage timed in the same run.
    fit_timings = rows[0]
    fit_s = (fit_timings.get("fit_landmarks", 0.0) + fit_timings.get("fit_dense", 0.0)) / 1000
    targets.append(target("face-model fit seconds per face (landmark + dense stages)", fit_s, 0.3))
    notes.append(f"landmark-only fit stage {fit_timings.get('fit_landmarks', 0.0):.1f} ms, dense stage "
                 f"{fit_timings.get('fit_dense', 0.0):.1f} ms (same run)")
    if args.refine_iterations > 0:
        settings = ReconstructSettings(weights=args.weights, device="cpu",
                                       refine_iterations=args.refine_iterations)
        with Reconstructor(settings) as rec:
            r = rec.run(image)[0]
        ref = r.info["refine"]
        rows.append({"source": f"network + refine {args.refine_iterations}",
                     "refine_ms": round(r.timings["refine"] * 1000, 1),
                     "ms_per_iteration": round(ref["seconds_per_iteration"] * 1000, 1),
                     "photometric_before": round(ref["photometric_error_before"], 4),
                     "photometric_after": round(ref["photometric_error_after"], 4)})
    return BenchReport(name="pipeline", rows=rows, targets=targets, notes=notes)
