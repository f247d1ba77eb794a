"""``facenormals3d evaluate WHAT``: score normal maps and meshes against ground truth.

Subcommands: ``normals`` (folders of normal maps), ``scan`` (one mesh against one scan,
NoW protocol), ``now`` (a NoW-layout folder of predictions against scans), ``now-export``
(reconstruct outputs -> NoW layout). ``synthetic`` (held-out ICT identities through the
full pipeline) plugs in at the marked place in :func:`add_parser`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facenormals3d.errors import ExitCode, InputError

NORMALS_EPILOG = """convention: camera-space normals, x right, y up, z towards the camera, unit length.
  .npy: H x W x 3 float, NaN where unknown.  .png: 8/16-bit RGB = (n + 1) / 2, all-zero = unknown.
  Files pair by stem (a trailing _normals is ignored); masks: PNG, non-zero = face, same stem
  (a trailing _mask is ignored). Without --mask the ground truth's known pixels are scored.
overall: 'pooled' = all pixels of all images as one set; 'per_image_mean' = mean of the
  per-image numbers (each image weighs the same).
outputs (-o OUT): per_image.csv, summary.json, heatmaps/<stem>.png (error in degrees, bar 0-45)."""

SCAN_EPILOG = """protocol (NoW): crop the scan to a sphere around its landmarks (centre 0.3 of the way
  from the nose bottom to the inner-eye midpoint, radius 1.4 x mean of outer-eye distance and
  nose length), similarity Procrustes on the 7 landmarks, then refine rotation, translation and
  scale (scale fixed with --metric) to minimise the scan-to-mesh distance; report median / mean /
  std of the exact point-to-triangle distance of every cropped scan vertex, in mm.
landmarks: 7 x 3 (.npy, text, or MeshLab .pp): right eye outer, right eye inner, left eye inner,
  left eye outer, nose bottom, right mouth corner, left mouth corner (iBUG 36 39 42 45 33 48 54).
scans: NaN vertices are dropped, duplicates merged, point clouds accepted; more than --max-points
  cropped points -> seeded uniform subset.
outputs (-o OUT): result.json, aligned_prediction.ply, scan_error.ply (colour + 'quality' = mm),
  distances.npy, error.png."""

SYNTHETIC_EPILOG = """methods: mediapipe_mesh (the raw landmark mesh), depth_mesh (--mesh depth), fit_landmarks
  (the face model fitted to the landmarks only), fit_detail (the default reconstruct mesh).
normals: each method's crop normals are warped back onto the rendered image and compared
  with the exact normals inside both masks, pooled over all images; 'coverage' is the share of
  true face pixels the method predicted, averaged over the faces scored ('coverage_all': over
  every sample, a face not found counting 0). meshes: NoW protocol (similarity alignment) against
  the posed ICT face area, 7 landmarks from the ICT iBUG-68 indices; mm averaged over images;
  visible_median_mm scores only the surface points the photo shows inside the face mask.
  seconds_per_face: the method's own stages after detection.
  Optimistic for the fitted rows: the face model comes from the same ICT model that renders the
  test faces (new identities; 50 of the generator's 100 identity modes; detail layer on).
  A sample where no face is detected counts as 'failed' for every method."""

UNITS = ["mm", "cm", "m"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    from facenormals3d.console import add_common_options, add_flip_option
    from facenormals3d.bench.eval_synthetic import METHODS

    p = sub.add_parser("evaluate", help="score normal maps and meshes against ground truth",
                       description="Score predictions against ground truth: normal maps "
                                   "(angular error) and meshes against scans (NoW protocol).")
    inner = p.add_subparsers(dest="evaluate_what", metavar="WHAT", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    q = inner.add_parser("normals", help="angular error of normal maps, folder against folder",
                         description="Mean / median / std angular error (degrees) and % of pixels "
                                     "under 11.25, 20, 22.5, 25, 30 degrees, per image and overall.",
                         epilog=NORMALS_EPILOG, formatter_class=fmt)
    q.add_argument("--pred", required=True, type=Path, help="folder of predicted normal maps")
    q.add_argument("--gt", required=True, type=Path, help="folder of ground-truth normal maps")
    q.add_argument("--mask", type=Path, default=None, help="folder of mask PNGs (default: GT's known pixels)")
    q.add_argument("-o", "--out", type=Path, default=None, help="write CSV, JSON and heat maps here")
    q.add_argument("--heatmap-max", type=float, default=45.0, help="top of the heat map scale, degrees")
    q.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_common_options(q)
    q.set_defaults(func=run_normals)

    q = inner.add_parser("scan", help="one predicted mesh against one scan (NoW protocol)",
                         description="Align a predicted mesh to a ground-truth scan and report "
                                     "scan-to-mesh distances in mm.", epilog=SCAN_EPILOG, formatter_class=fmt)
    q.add_argument("--pred", required=True, type=Path, help="predicted mesh (OBJ/PLY)")
    q.add_argument("--pred-landmarks", required=True, type=Path, help="7 x 3 landmarks on the prediction")
    q.add_argument("--scan", required=True, type=Path, help="ground-truth scan (mesh or point cloud)")
    q.add_argument("--scan-landmarks", required=True, type=Path, help="7 x 3 landmarks on the scan")
    q.add_argument("-o", "--out", type=Path, default=None, help="write the output folder here")
    q.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    _add_scan_options(q)
    add_common_options(q)
    q.set_defaults(func=run_scan)

    q = inner.add_parser("now", help="a NoW-layout folder of predictions against scans",
                         description="Batch NoW evaluation: PRED/<subject>/<challenge>/<image>.obj "
                                     "+ .npy against SCANS/<subject>/<scan> + its landmarks.",
                         epilog=SCAN_EPILOG, formatter_class=fmt)
    q.add_argument("--pred", required=True, type=Path, help="NoW-layout prediction folder")
    q.add_argument("--scans", required=True, type=Path, help="folder of <subject>/<scan mesh>")
    q.add_argument("--scan-landmarks", type=Path, default=None,
                   help="folder of <subject>/<landmark file> (default: beside the scans)")
    q.add_argument("-o", "--out", required=True, type=Path,
                   help="output folder: results.csv, summary.json (+ details/ with --details)")
    q.add_argument("--details", action="store_true", help="also write per-image PLYs and pictures")
    q.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    _add_scan_options(q)
    add_common_options(q)
    q.set_defaults(func=run_now)

    q = inner.add_parser("now-export", help="copy reconstruct outputs into the NoW layout",
                         description="OUT/<photo>/face_<k>/mesh.obj + landmarks7.npy -> "
                                     "DEST/<subject>/<challenge>/<photo>.obj + .npy")
    q.add_argument("reconstruct_out", type=Path, help="output folder of `facenormals3d reconstruct`")
    q.add_argument("dest", type=Path, help="NoW-layout prediction folder to fill")
    q.add_argument("--image-list", type=Path, default=None,
                   help="NoW image list (<subject>/<challenge>/<image>.jpg per line)")
    q.add_argument("--subject", default=None, help="subject for every photo (without --image-list)")
    q.add_argument("--challenge", default=None, help="challenge for every photo (without --image-list)")
    q.add_argument("--face", type=int, default=0, help="which face_<k> of each photo (default 0)")
    q.add_argument("--overwrite", action="store_true", help="replace existing files")
    add_common_options(q)
    q.set_defaults(func=run_now_export)

    q = inner.add_parser("synthetic", help="held-out synthetic faces through the full pipeline",
                         description="Render held-out ICT identities with the synthetic engine, "
                                     "run reconstruct on each image and score normals (angular "
                                     "error vs exact normals) and meshes (NoW protocol vs the "
                                     "exact ICT surface, and on the visible region only): the raw "
                                     "mediapipe mesh, the depth-map mesh, the landmark-only model "
                                     "fit and the fit with detail.",
                         epilog=SYNTHETIC_EPILOG, formatter_class=fmt)
    _add_held_out_options(q, n=20)
    q.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                   help="methods to compare (default all)")
    q.add_argument("-o", "--out", type=Path, default=None, help="write summary.json and per_sample.csv here")
    add_flip_option(q)
    add_common_options(q)
    q.set_defaults(func=run_synthetic)

    _add_relight_parser(inner, fmt)


def _add_held_out_options(q: argparse.ArgumentParser, n: int) -> None:
    """Options of the benchmarks on held-out synthetic faces."""
    q.add_argument("--ict-dir", required=True, type=Path, help="ICT FaceKit folder (public layout)")
    q.add_argument("-n", type=int, default=n, help=f"number of held-out samples (default {n})")
    q.add_argument("--seed", type=int, default=777, help="dataset seed of the samples")
    q.add_argument("--split", choices=["test", "val"], default="test", help="identity split (default test)")
    q.add_argument("--weights", default=None, help="network weights (default: shipped)")


def _add_relight_parser(inner, fmt) -> None:
    from facenormals3d.console import add_common_options
    from facenormals3d.bench.eval_relight import __doc__ as doc

    q = inner.add_parser("relight", help="albedo and relighting vs the synthetic engine's ground truth",
                         description="Held-out synthetic faces under two lights: scale-invariant albedo "
                                     "error, relit image vs the engine's render under the new light "
                                     "(PSNR, SSIM), and albedo consistency between the two lights; "
                                     "each against texture.png used as albedo.",
                         epilog=doc, formatter_class=fmt)
    _add_held_out_options(q, n=8)
    q.add_argument("-o", "--out", type=Path, default=None, help="write summary.json here")
    add_common_options(q)
    q.set_defaults(func=run_relight)


def run_relight(args: argparse.Namespace) -> int:
    from facenormals3d.bench import BenchReport
    from facenormals3d.console import emit, progress
    from facenormals3d.bench.eval_relight import RelightEvalSettings, evaluate_relight
    from facenormals3d.outputs import write_json

    settings = RelightEvalSettings(n=args.n, seed=args.seed, split=args.split, weights=args.weights)
    result = evaluate_relight(str(args.ict_dir), settings,
                              progress=lambda it: progress(it, total=args.n, desc="relight", args=args))
    payload = {"settings": vars(settings), "rows": result.rows, "samples": result.samples}
    if args.out:
        write_json(args.out / "summary.json", payload)
    table = BenchReport(name="relight", rows=result.rows, machine={}).table(
        f"albedo and relighting, held-out synthetic faces ({args.split} split, seed {args.seed})")
    emit(args, payload, table)
    return int(ExitCode.OK)


def _add_scan_options(q: argparse.ArgumentParser) -> None:
    from facenormals3d.evaluate.scan import ScanEvalSettings

    defaults = ScanEvalSettings()
    q.add_argument("--unit", choices=UNITS, default="mm", help="unit of the prediction and its landmarks (default mm)")
    q.add_argument("--scan-unit", choices=UNITS, default="mm", help="unit of the scan and its landmarks (default mm)")
    q.add_argument("--metric", action="store_true",
                   help="keep the prediction's scale (metric reconstruction); default: solve for it")
    q.add_argument("--no-refine", action="store_true", help="landmark alignment only (skip the ICP step)")
    q.add_argument("--trim", type=float, default=defaults.trim,
                   help=f"fraction of smallest residuals driving each refinement round (default {defaults.trim})")
    q.add_argument("--max-points", type=int, default=defaults.max_points,
                   help=f"subsample cropped scans above this many points (seeded; default {defaults.max_points})")
    q.add_argument("--error-max", type=float, default=5.0, help="top of the error colour scale, mm (default 5)")


def _settings(args: argparse.Namespace):
    from facenormals3d.evaluate.scan import ScanEvalSettings

    if not 0.1 <= args.trim <= 1.0:
        raise InputError("--trim", f"must be in [0.1, 1], got {args.trim}")
    if args.max_points < 100:
        raise InputError("--max-points", f"must be at least 100, got {args.max_points}")
    return ScanEvalSettings(metric=args.metric, trim=args.trim, max_points=args.max_points,
                            refine=not args.no_refine)


def run_normals(args: argparse.Namespace) -> int:
    import contextlib

    import numpy as np

    from facenormals3d.console import emit, run_batch
    from facenormals3d.conventions import write_png
    from facenormals3d.evaluate import normals as ev
    from facenormals3d.outputs import staged_dir, write_json

    pairs, missing = ev.pair_files(args.pred, args.gt, args.mask)
    if not pairs:
        raise InputError(args.pred, f"no prediction/ground-truth pairs with the same stem in {args.gt}")
    metrics, errors, names = [], [], []
    ctx = staged_dir(args.out, overwrite=args.overwrite) if args.out else contextlib.nullcontext(None)
    with ctx as stage:
        def job(pair):
            m, err = ev.evaluate_pair(pair)
            if stage is not None:
                write_png(stage / "heatmaps" / f"{pair.name}.png", ev.heatmap(err, args.heatmap_max))
            metrics.append(m)
            errors.append(err[np.isfinite(err)].astype(np.float32))
            names.append(pair.name)
            return {"input": pair.name, **m.row()}

        if stage is not None:
            (stage / "heatmaps").mkdir()
        result = run_batch(pairs, job, args=args, desc="normal maps")
        summary = {"n_pairs": len(pairs), "unpaired": missing, "failed": result.failed}
        if metrics:
            summary.update(ev.combine(metrics, errors))
        if stage is not None:
            ev.write_csv(stage / "per_image.csv", ev.csv_rows(names, metrics))
            write_json(stage / "summary.json", summary)
    emit(args, {**summary, "per_image": result.succeeded, "exit_code": int(result.exit_code())},
         _normals_text(names, metrics, summary, missing, result))
    return int(result.exit_code())


def _normals_text(names, metrics, summary, missing, result) -> str:
    head = f"{'image':<24} {'mean':>7} {'median':>7} {'std':>7} {'<11.25':>7} {'<22.5':>7} {'<30':>7}"
    fmt = lambda n, r: (f"{n[:24]:<24} {r['mean']:7.2f} {r['median']:7.2f} {r['std']:7.2f} "  # noqa: E731
                        f"{r['under_11.25']:7.1f} {r['under_22.5']:7.1f} {r['under_30']:7.1f}")
    lines = [head] + [fmt(n, m.row()) for n, m in list(zip(names, metrics))[:50]]
    if len(names) > 50:
        lines.append(f"... {len(names) - 50} more in per_image.csv")
    if metrics:
        lines += [fmt("POOLED (all pixels)", summary["pooled"]),
                  fmt("MEAN OF IMAGES", summary["per_image_mean"])]
    lines += [f"unpaired: {m}" for m in missing]
    lines.append(result.human("normal map"))
    return "\n".join(lines)


def run_scan(args: argparse.Namespace) -> int:
    from facenormals3d.console import emit
    from facenormals3d.evaluate.scan_report import ScanInputs, evaluate_scan_files

    inputs = ScanInputs(args.pred, args.pred_landmarks, args.scan, args.scan_landmarks,
                        args.unit, args.scan_unit)
    result, record = evaluate_scan_files(inputs, _settings(args), args.out, overwrite=args.overwrite,
                                         error_max=args.error_max)
    text = (f"{args.pred} vs {args.scan}: median {result.median:.3f} mm, mean {result.mean:.3f} mm, "
            f"std {result.std:.3f} mm over {result.n_points} scan points "
            f"(scale {result.similarity.scale:.4f}, landmark RMSE {result.landmark_rmse:.2f} mm, "
            f"{result.rounds} refinement rounds)")
    text += "".join(f"\nnote: {n}" for n in result.notes)
    if args.out:
        text += f"\nwrote {args.out}"
    emit(args, record, text)
    return int(ExitCode.OK)


def run_now(args: argparse.Namespace) -> int:
    from facenormals3d.console import emit, run_batch
    from facenormals3d.evaluate import now
    from facenormals3d.evaluate.normals import write_csv
    from facenormals3d.outputs import staged_dir, write_json

    items, problems = now.find_predictions(args.pred)
    if not items:
        raise InputError(args.pred, "no <subject>/<challenge>/<image>.obj + .npy predictions found")
    settings = _settings(args)
    batch = now.NowBatch(args.scans, args.scan_landmarks, args.unit, args.scan_unit)
    records, distances = [], {}
    with staged_dir(args.out, overwrite=args.overwrite) as stage:
        def job(item):
            rec, dist = now.evaluate_item(item, batch, settings, stage / "details" if args.details else None,
                                          picture=args.details, error_max=args.error_max)
            records.append(rec)
            distances[rec["item"]] = dist
            return dict(rec)

        result = run_batch(items, job, args=args, desc="NoW predictions")
        failed = [{"item": f["input"], "subject": "", "challenge": "", "image": "", "status": "failed",
                   "error": f["error"]} for f in result.failed]
        rows = [{k: r.get(k, "") for k in records[0]} for r in records + failed] if records else failed
        summary = {"summary": now.summarize_distances(records, distances), "incomplete": problems,
                   "n_ok": len(records), "n_failed": len(failed)}
        write_csv(stage / "results.csv", rows)
        write_json(stage / "summary.json", summary)
    lines = [f"{'challenge':<24} {'images':>6} {'median':>8} {'mean':>8} {'std':>8}  (pooled, mm)"]
    for name, s in summary["summary"].items():
        lines.append(f"{name:<24} {s['n_images']:>6} {s['pooled_median_mm']:8.3f} "
                     f"{s['pooled_mean_mm']:8.3f} {s['pooled_std_mm']:8.3f}")
    lines += [f"incomplete: {p}" for p in problems] + [result.human("prediction"), f"wrote {args.out}"]
    emit(args, {**summary, "exit_code": int(result.exit_code())}, "\n".join(lines))
    return int(result.exit_code())


def run_now_export(args: argparse.Namespace) -> int:
    from facenormals3d.console import emit
    from facenormals3d.evaluate.now import export_now_layout

    records, skipped = export_now_layout(args.reconstruct_out, args.dest, image_list=args.image_list,
                                         subject=args.subject, challenge=args.challenge,
                                         face=args.face, overwrite=args.overwrite)
    code = ExitCode.OK if not skipped else ExitCode.PARTIAL if records else ExitCode.BAD_INPUT
    text = "\n".join([f"exported {len(records)} prediction(s) to {args.dest}"]
                     + [f"  skipped {s}" for s in skipped])
    emit(args, {"exported": records, "skipped": skipped, "exit_code": int(code)}, text)
    return int(code)


def run_synthetic(args: argparse.Namespace) -> int:
    from facenormals3d.bench import BenchReport
    from facenormals3d.console import emit, progress
    from facenormals3d.bench.eval_synthetic import SyntheticEvalSettings, evaluate_synthetic
    from facenormals3d.outputs import write_json

    settings = SyntheticEvalSettings(n=args.n, seed=args.seed, split=args.split,
                                     methods=tuple(args.methods), weights=args.weights,
                                     flip_average=args.flip_average)
    result = evaluate_synthetic(str(args.ict_dir), settings,
                                progress=lambda it: progress(it, total=args.n, desc="synthetic", args=args))
    payload = {"settings": vars(settings), "caveat": result.caveat, "rows": result.rows,
               "samples": result.samples}
    if args.out:
        import csv
        import io

        from facenormals3d.outputs import atomic_write

        write_json(args.out / "summary.json", payload)
        keys = list(dict.fromkeys(k for r in result.samples for k in r))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(result.samples)
        atomic_write(args.out / "per_sample.csv", lambda p: p.write_text(buf.getvalue()))
    table = BenchReport(name="synthetic", rows=result.rows, machine={}).table(
        f"held-out synthetic faces ({args.split} split, seed {args.seed})") + f"\nnote: {result.caveat}"
    emit(args, payload, table)
    return int(ExitCode.OK)
