"""Files written for one scan evaluation, and the file-level entry point.

Output folder layout (assembled in a staging folder, renamed into place when complete):

=========================  ===================================================================
``result.json``            the numbers (:meth:`ScanEvalResult.summary`) plus inputs and units
``aligned_prediction.ply`` the prediction moved into the scan's frame (mm), grey
``scan_error.ply``         the scored (cropped) scan points coloured by error, with the
                           distance in mm as the per-vertex ``quality`` property
``distances.npy``          the per-point distances (mm), float32, same order as the PLY
``error.png``              rendered pictures: error on the scan (front, 3/4), prediction, scan
=========================  ===================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facenormals3d.evaluate.landmarks import face_frame, load_landmarks
from facenormals3d.evaluate.scan import ScanEvalResult, ScanEvalSettings, evaluate_scan
from facenormals3d.evaluate.scan_io import (UNIT_TO_MM, Scan, load_mesh, load_scan,
                                            write_colored_ply)

#: Default top of the error colour scale, mm (shared by all pictures so they compare).
ERROR_MAX_MM = 5.0


@dataclass(frozen=True)
class ScanInputs:
    """Paths and units of one evaluation."""

    pred: Path
    """Predicted mesh (OBJ/PLY/...)."""
    pred_landmarks: Path
    """7 x 3 landmarks on the prediction."""
    scan: Path
    """Ground-truth scan (mesh or point cloud)."""
    scan_landmarks: Path
    """7 x 3 landmarks on the scan."""
    pred_unit: str = "mm"
    """Unit of the prediction and its landmarks."""
    scan_unit: str = "mm"
    """Unit of the scan and its landmarks."""


def evaluate_scan_files(inputs: ScanInputs, settings: ScanEvalSettings = ScanEvalSettings(),
                        out_dir: Path | None = None, *, overwrite: bool = False,
                        error_max: float = ERROR_MAX_MM, picture: bool = True) -> tuple[ScanEvalResult, dict]:
    """Load, score and (when ``out_dir`` is given) write the outputs; returns the result and
    the JSON record written as ``result.json``."""
    ps, ss = UNIT_TO_MM[inputs.pred_unit], UNIT_TO_MM[inputs.scan_unit]
    # Landmarks first: they are small and their mistakes are the commonest.
    pred_lm = load_landmarks(inputs.pred_landmarks, ps)
    scan_lm = load_landmarks(inputs.scan_landmarks, ss)
    pv, pf = load_mesh(inputs.pred, ps)
    scan = load_scan(inputs.scan, ss)
    result = evaluate_scan(pv, pf, pred_lm, scan.points, scan_lm, settings,
                           names=(str(inputs.pred_landmarks), str(inputs.scan_landmarks)))
    result.notes[:0] = [f"{inputs.scan}: {n}" for n in scan.notes]
    record = {"pred": str(inputs.pred), "pred_landmarks": str(inputs.pred_landmarks),
              "scan": str(inputs.scan), "scan_landmarks": str(inputs.scan_landmarks),
              "pred_unit": inputs.pred_unit, "scan_unit": inputs.scan_unit,
              "metric": settings.metric, **result.summary()}
    if out_dir is not None:
        from facenormals3d.outputs import staged_dir, write_json

        with staged_dir(out_dir, overwrite=overwrite) as stage:
            write_scan_outputs(stage, result, scan, pv, pf, scan_lm, error_max, picture)
            write_json(stage / "result.json", record)
    return result, record


def write_scan_outputs(folder: Path, result: ScanEvalResult, scan: Scan, pred_vertices: np.ndarray,
                       pred_faces: np.ndarray, scan_landmarks: np.ndarray,
                       error_max: float = ERROR_MAX_MM, picture: bool = True) -> None:
    """Write the PLYs, distances and picture of the module doc into ``folder``."""
    from facenormals3d.conventions import write_png
    from facenormals3d.render.colormap import error_colors

    folder = Path(folder)
    aligned = result.similarity.apply(pred_vertices)
    grey = np.full((len(aligned), 3), 200, np.uint8)
    write_colored_ply(folder / "aligned_prediction.ply", aligned, grey, pred_faces)
    faces = cropped_faces(scan.faces, result.scan_indices, len(scan.points))
    pts = scan.points[result.scan_indices]
    write_colored_ply(folder / "scan_error.ply", pts, error_colors(result.distances, 0.0, error_max),
                      faces, quality=result.distances)
    np.save(folder / "distances.npy", result.distances.astype(np.float32))
    if picture:
        img = error_picture(result, pts, faces, aligned, pred_faces, scan_landmarks, error_max)
        write_png(folder / "error.png", img)


def cropped_faces(faces: np.ndarray | None, kept: np.ndarray, n_points: int) -> np.ndarray | None:
    """Faces of the scan whose three vertices were all kept, re-indexed into ``kept``."""
    if faces is None:
        return None
    new_index = np.full(n_points, -1, dtype=np.int64)
    new_index[kept] = np.arange(len(kept))
    f = new_index[faces]
    f = f[np.all(f >= 0, axis=1)]
    return f if len(f) else None


def error_picture(result: ScanEvalResult, scan_points: np.ndarray, scan_faces: np.ndarray | None,
                  aligned: np.ndarray, pred_faces: np.ndarray, scan_landmarks: np.ndarray,
                  error_max: float = ERROR_MAX_MM, size: int = 384) -> np.ndarray:
    """Contact sheet: error on the scan from the front and at 3/4, the aligned prediction and
    the scan in grey, with a colour bar in mm. Views are in the face frame of the scan
    landmarks, so the face looks at the camera whatever the scan's own axes.

    A scan without faces (point cloud) is shown through the prediction instead: each
    prediction vertex takes the error of its nearest scored scan point (grey beyond 5 mm).
    """
    from scipy.spatial import cKDTree

    from facenormals3d.render.colormap import error_colors, with_colorbar
    from facenormals3d.render.preview import contact_sheet, render_mesh

    rot = face_frame(scan_landmarks)
    to_face = lambda p: (p - result.crop_center) @ rot.T  # noqa: E731
    pred_face = to_face(aligned)
    if scan_faces is not None:
        err_v, err_f, err = to_face(scan_points), scan_faces, result.distances
        title = "scan, error"
    else:
        near_d, near_i = cKDTree(scan_points).query(aligned)
        err = np.where(near_d < 5.0, result.distances[near_i], np.nan)
        err_v, err_f, title = pred_face, pred_faces, "prediction, error of nearest scan point"
    colors = error_colors(err, 0.0, error_max)
    panels = [render_mesh(err_v, err_f, colors=colors, size=size),
              render_mesh(err_v, err_f, colors=colors, yaw_deg=-50, size=size),
              render_mesh(pred_face, pred_faces, size=size)]
    labels = [f"{title} (front)", f"{title} (3/4)", "aligned prediction"]
    if scan_faces is not None:
        panels.append(render_mesh(err_v, err_f, size=size))
        labels.append("scan (cropped)")
    sheet = contact_sheet(panels, labels, columns=len(panels))
    caption = (f"median {result.median:.3f}  mean {result.mean:.3f}  std {result.std:.3f} mm"
               f"  ({result.n_points} scan points)")
    from facenormals3d.render.colormap import draw_text

    sheet = np.concatenate([np.full((26, sheet.shape[1], 3), 255, np.uint8), sheet], axis=0)
    sheet = draw_text(sheet, caption, (8, 5), px=16)
    return with_colorbar(sheet, 0.0, error_max, "mm")
