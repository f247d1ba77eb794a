"""NoW-layout batch evaluation and export of ``reconstruct`` outputs into that layout.

Predictions (the NoW challenge's submission layout)::

    PRED/<subject>/<challenge>/<image>.obj    predicted mesh (any trimesh-readable mesh)
    PRED/<subject>/<challenge>/<image>.npy    its 7 x 3 NoW landmarks (same units)

Ground truth (as in the NoW validation download)::

    SCANS/<subject>/<one scan>.obj|.ply                     one scan per subject
    SCAN_LMKS/<subject>/<one landmark file>.pp|.npy|.txt    its 7 landmarks

``SCAN_LMKS`` defaults to ``SCANS`` (landmark file beside the scan).

Summary numbers, per challenge and overall: ``pooled`` median/mean/std over the distances
of all scan points of all images (how the NoW tables are computed), and the mean of the
per-image medians.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facenormals3d.errors import InputError

log = logging.getLogger("facenormals3d")

MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl")
LANDMARK_SUFFIXES = (".pp", ".npy", ".txt", ".csv")


@dataclass(frozen=True)
class NowItem:
    """One prediction in the NoW layout."""

    subject: str
    """Subject folder name."""
    challenge: str
    """Challenge folder name (neutral, expression, occlusion, selfie, ...)."""
    image: str
    """Image stem."""
    mesh: Path
    """Predicted mesh."""
    landmarks: Path
    """Its 7 x 3 landmarks (.npy)."""

    def __str__(self) -> str:
        return f"{self.subject}/{self.challenge}/{self.image}"


def find_predictions(pred_dir: Path) -> tuple[list[NowItem], list[str]]:
    """Every ``<subject>/<challenge>/<image>.<mesh>`` with its ``.npy``; and what is incomplete."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise InputError(pred_dir, "prediction folder not found")
    items, problems = [], []
    for mesh in sorted(pred_dir.glob("*/*/*")):
        if mesh.suffix.lower() not in MESH_SUFFIXES:
            continue
        lm = mesh.with_suffix(".npy")
        if not lm.is_file():
            problems.append(f"{mesh}: no landmark file {lm.name}")
            continue
        items.append(NowItem(mesh.parent.parent.name, mesh.parent.name, mesh.stem, mesh, lm))
    return items, problems


def find_scan(scans_dir: Path, lmks_dir: Path | None, subject: str) -> tuple[Path, Path]:
    """The scan and landmark file of ``subject`` (exactly one of each)."""
    folder = Path(scans_dir) / subject
    lm_folder = Path(lmks_dir or scans_dir) / subject
    scans = [p for p in sorted(folder.glob("*")) if p.suffix.lower() in MESH_SUFFIXES]
    lms = [p for p in sorted(lm_folder.glob("*")) if p.suffix.lower() in LANDMARK_SUFFIXES]
    if len(scans) != 1:
        raise InputError(folder, f"expected exactly one scan mesh, found {len(scans)}")
    if len(lms) != 1:
        raise InputError(lm_folder, f"expected exactly one scan landmark file, found {len(lms)}")
    return scans[0], lms[0]


@dataclass
class NowBatch:
    """Shared state of one batch run (the scans, loaded once per subject)."""

    scans_dir: Path
    """Folder of per-subject scan folders."""
    lmks_dir: Path | None
    """Folder of per-subject scan landmark folders (None: same as ``scans_dir``)."""
    pred_unit: str = "mm"
    """Unit of the predictions."""
    scan_unit: str = "mm"
    """Unit of the scans."""
    cache: dict | None = None
    """subject -> (Scan, landmarks 7 x 3) or the InputError met loading them."""


def evaluate_item(item: NowItem, batch: NowBatch, settings, details_dir: Path | None = None,
                  *, picture: bool = False, error_max: float = 5.0,
                  overwrite: bool = False) -> tuple[dict, np.ndarray]:
    """Score one prediction; returns its record (for the CSV) and its distances (mm)."""
    from facenormals3d.evaluate.landmarks import load_landmarks
    from facenormals3d.evaluate.scan import evaluate_scan
    from facenormals3d.evaluate.scan_io import UNIT_TO_MM, load_mesh, load_scan

    if batch.cache is None:
        batch.cache = {}
    if item.subject not in batch.cache:
        try:
            scan_path, lm_path = find_scan(batch.scans_dir, batch.lmks_dir, item.subject)
            ss = UNIT_TO_MM[batch.scan_unit]
            batch.cache[item.subject] = (load_scan(scan_path, ss), load_landmarks(lm_path, ss), str(lm_path))
        except InputError as err:
            batch.cache[item.subject] = err
    cached = batch.cache[item.subject]
    if isinstance(cached, InputError):
        raise cached
    scan, scan_lm, scan_lm_name = cached
    ps = UNIT_TO_MM[batch.pred_unit]
    pred_lm = load_landmarks(item.landmarks, ps)
    pv, pf = load_mesh(item.mesh, ps)
    res = evaluate_scan(pv, pf, pred_lm, scan.points, scan_lm, settings,
                        names=(str(item.landmarks), scan_lm_name))
    if details_dir is not None:
        from facenormals3d.evaluate.scan_report import write_scan_outputs
        from facenormals3d.outputs import staged_dir, write_json

        with staged_dir(Path(details_dir) / item.subject / item.challenge / item.image,
                        overwrite=overwrite) as stage:
            write_scan_outputs(stage, res, scan, pv, pf, scan_lm, error_max, picture)
            write_json(stage / "result.json", res.summary())
    record = {"item": str(item), "subject": item.subject, "challenge": item.challenge,
              "image": item.image, "status": "ok", "median_mm": res.median, "mean_mm": res.mean,
              "std_mm": res.std, "n_points": res.n_points, "scale": res.similarity.scale,
              "landmark_rmse_mm": res.landmark_rmse, "error": ""}
    return record, res.distances


def summarize_distances(records: list[dict], distances: dict[str, np.ndarray]) -> dict:
    """Per-challenge and overall summary of successful records (see module doc)."""
    groups: dict[str, list[str]] = {}
    for r in records:
        if r.get("status") == "ok":
            groups.setdefault(r["challenge"], []).append(r["item"])
    out = {}
    for name, keys in sorted(groups.items()) + [("all", [k for ks in groups.values() for k in ks])]:
        if not keys:
            continue
        d = np.concatenate([distances[k] for k in keys])
        out[name] = {"n_images": len(keys), "pooled_median_mm": float(np.median(d)),
                     "pooled_mean_mm": float(d.mean()), "pooled_std_mm": float(d.std()),
                     "mean_of_image_medians_mm": float(np.mean([np.median(distances[k]) for k in keys]))}
    return out


def export_now_layout(reconstruct_dir: Path, dest: Path, *, image_list: Path | None = None,
                      subject: str | None = None, challenge: str | None = None, face: int = 0,
                      overwrite: bool = False) -> tuple[list[dict], list[str]]:
    """Copy ``reconstruct`` outputs (``OUT/<photo-stem>/face_<face>/mesh.obj`` and
    ``landmarks7.npy``) into the NoW prediction layout under ``dest``.

    Subject and challenge come from ``image_list`` (NoW's image path list: lines like
    ``<subject>/<challenge>/<image>.jpg``, matched by image stem) or are given for all
    photos with ``subject`` + ``challenge``. The OBJ is copied without its material lines
    (geometry is what is scored). Returns the records written and the photos skipped (why).
    """
    from facenormals3d.evaluate.landmarks import check_landmarks
    from facenormals3d.outputs import atomic_write

    reconstruct_dir, dest = Path(reconstruct_dir), Path(dest)
    if not reconstruct_dir.is_dir():
        raise InputError(reconstruct_dir, "reconstruct output folder not found")
    mapping = _read_image_list(image_list) if image_list else None
    if mapping is None and not (subject and challenge):
        raise InputError(None, "give an image list or both subject and challenge")
    records, skipped = [], []
    for photo in sorted(p for p in reconstruct_dir.iterdir() if p.is_dir()):
        folder = photo / f"face_{face}"
        mesh, lm_path = folder / "mesh.obj", folder / "landmarks7.npy"
        if not (mesh.is_file() and lm_path.is_file()):
            skipped.append(f"{photo.name}: no face_{face}/mesh.obj + landmarks7.npy")
            continue
        if mapping is not None:
            if photo.name not in mapping:
                skipped.append(f"{photo.name}: not in {image_list}")
                continue
            subj, chal = mapping[photo.name]
        else:
            subj, chal = subject, challenge
        lm = check_landmarks(np.load(lm_path, allow_pickle=False), str(lm_path))
        target = dest / subj / chal / f"{photo.name}.obj"
        if target.exists() and not overwrite:
            skipped.append(f"{target}: exists (use --overwrite)")
            continue
        text = "".join(ln for ln in mesh.read_text().splitlines(keepends=True)
                       if not ln.startswith(("mtllib", "usemtl")))
        atomic_write(target, lambda p: p.write_text(text))
        atomic_write(target.with_suffix(".npy"), lambda p: np.save(p, lm.astype(np.float64)))
        records.append({"photo": photo.name, "subject": subj, "challenge": chal, "mesh": str(target)})
    return records, skipped


def _read_image_list(path: Path) -> dict[str, tuple[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "image list not found")
    mapping: dict[str, tuple[str, str]] = {}
    for k, line in enumerate(path.read_text().splitlines(), 1):
        parts = [p for p in line.strip().replace("\\", "/").split("/") if p]
        if not parts:
            continue
        if len(parts) < 3:
            raise InputError(path, f"line {k}: expected <subject>/<challenge>/<image>, got {line.strip()!r}")
        stem = Path(parts[-1]).stem
        value = (parts[-3], parts[-2])
        if stem in mapping and mapping[stem] != value:
            raise InputError(path, f"line {k}: image name {stem} appears for two subjects/challenges; "
                                   "reconstruct outputs are named by stem, so they cannot be told apart")
        mapping[stem] = value
    return mapping
