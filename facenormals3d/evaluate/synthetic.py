"""Synthetic benchmark with exact ground truth: held-out ICT identities through the full pipeline.

For each test-split sample of the synthetic engine (identities never seen in training),
every method (the network pipeline and the coarse landmark baseline) reconstructs the
rendered photo; we score

* normals: the predicted crop normals warped back onto the rendered image's pixel grid,
  against the exact ground-truth normals, inside both masks (pooled over all images);
  ``coverage`` is the share of ground-truth face pixels the method predicted at all;
* meshes: the NoW protocol (:func:`facenormals3d.evaluate.scan.evaluate_scan`) with the
  posed ICT face-area vertices as the "scan" and its 7 landmarks from the ICT iBUG-68
  vertex indices; median / mean / std in mm are averaged over the images.

A sample where a method finds no face counts as a failure for that method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from facenormals3d.conventions import NOW_IBUG68
from facenormals3d.errors import InputError


@dataclass
class SyntheticEvalSettings:
    """What :func:`evaluate_synthetic` renders and runs."""

    n: int = 20
    """Number of held-out samples."""
    seed: int = 777
    """Dataset seed of the rendered samples."""
    split: str = "test"
    """Identity split to draw from (``test`` or ``val``)."""
    methods: tuple[str, ...] = ("network", "landmarks")
    """Normal sources to compare (see :class:`facenormals3d.pipeline.ReconstructSettings`)."""
    weights: str | None = None
    """Network weights (None = shipped)."""
    integration: str = "fusion"
    """Integration method of the pipeline."""


@dataclass
class SyntheticEvalResult:
    """Scores per method."""

    rows: list[dict[str, Any]]
    """One row per method: normal metrics (pooled), coverage, mesh mm, counts."""
    samples: list[dict[str, Any]] = field(default_factory=list)
    """Per sample and method: mean angular error, mesh median, or the failure."""


def ground_truth_surface(sample, model) -> tuple[np.ndarray, np.ndarray]:
    """Face-area points (``N x 3`` mm) and the 7 NoW landmarks (``7 x 3``) of a sample.

    Camera frame of the engine (OpenGL: x right, y up, z towards the viewer), so it shares
    axes with our meshes; the evaluation solves for the similarity between them.
    """
    from facenormals3d.data.ict import PART_FACE

    v = np.asarray(sample.vertices_camera, dtype=np.float64)
    face_vertices = np.unique(model.triangles[model.triangle_parts == PART_FACE])
    landmarks7 = v[np.asarray(model.landmarks)[list(NOW_IBUG68)]]
    return v[face_vertices], landmarks7


def evaluate_synthetic(ict_dir: str, settings: SyntheticEvalSettings = SyntheticEvalSettings(),
                       progress: Callable[[Any], Any] = lambda it: it) -> SyntheticEvalResult:
    """Render ``settings.n`` held-out samples and score every method on them."""
    from facenormals3d.data.ict import load_ict
    from facenormals3d.data.synth import SynthEngine
    from facenormals3d.pipeline import Reconstructor, ReconstructSettings

    model = load_ict(ict_dir)
    engine = SynthEngine(model)
    runners = {m: Reconstructor(ReconstructSettings(normal_source=m, weights=settings.weights,
                                                    integration=settings.integration, max_faces=1,
                                                    device="cpu"))
               for m in settings.methods}
    acc = {m: {"errors": [], "coverage": [], "mesh": [], "failed": 0} for m in settings.methods}
    samples = []
    try:
        for i in progress(range(settings.n)):
            sample = engine.render_index(settings.seed, i, settings.split)
            gt_points, gt_lm7 = ground_truth_surface(sample, model)
            for method, runner in runners.items():
                record = {"index": i, "identity": sample.identity, "method": method}
                try:
                    rec = runner.run(sample.image, f"sample {i}")[0]
                    err, cover = _normal_errors(rec, sample)
                    scan = _mesh_scores(rec, gt_points, gt_lm7)
                except InputError as e:  # no face found, degenerate landmarks: a scored miss
                    acc[method]["failed"] += 1
                    record["error"] = f"{type(e).__name__}: {e}"
                    samples.append(record)
                    continue
                acc[method]["errors"].append(err)
                acc[method]["coverage"].append(cover)
                acc[method]["mesh"].append(scan)
                record.update(normal_mean_deg=float(np.mean(err)), coverage=cover, mesh_median_mm=scan[0])
                samples.append(record)
    finally:
        for runner in runners.values():
            runner.finder.close()
    return SyntheticEvalResult(rows=[_row(m, a, settings.n) for m, a in acc.items()], samples=samples)


def _normal_errors(rec, sample) -> tuple[np.ndarray, float]:
    """Angular errors (deg) on the rendered image's grid, and the coverage of its face mask."""
    from facenormals3d.evaluate.metrics import angular_error_deg
    from facenormals3d.face.crop import warp_to_photo

    shape = sample.mask.shape
    pred = warp_to_photo(np.nan_to_num(rec.normals), rec.face.transform, shape, order=1)
    pred_mask = warp_to_photo(rec.mask.astype(np.uint8), rec.face.transform, shape, order=0) > 0
    both = pred_mask & sample.mask
    err = angular_error_deg(pred[both], sample.normals[both])
    return err[np.isfinite(err)], float(both.sum() / max(sample.mask.sum(), 1))


def _mesh_scores(rec, gt_points, gt_lm7) -> tuple[float, float, float]:
    from facenormals3d.evaluate.scan import evaluate_scan

    res = evaluate_scan(rec.mesh.vertices, rec.mesh.faces, rec.landmarks7, gt_points, gt_lm7)
    return res.median, res.mean, res.std


def _row(method: str, a: dict, n: int) -> dict[str, Any]:
    from facenormals3d.evaluate.metrics import summarize

    row: dict[str, Any] = {"method": method, "samples": n, "failed": a["failed"]}
    if not a["errors"]:
        return row
    m = summarize(np.concatenate(a["errors"]))
    row.update({"normal_mean_deg": m.mean, "normal_median_deg": m.median, "normal_std_deg": m.std,
                **{f"under_{k}": v for k, v in m.under.items()},
                "coverage": float(np.mean(a["coverage"]))})
    mesh = np.array(a["mesh"])
    row.update({"mesh_median_mm": float(mesh[:, 0].mean()), "mesh_mean_mm": float(mesh[:, 1].mean()),
                "mesh_std_mm": float(mesh[:, 2].mean())})
    return row
