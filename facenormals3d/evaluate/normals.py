"""Scoring predicted normal maps against ground-truth normal maps, folder against folder.

Expected convention (:mod:`facenormals3d.conventions`): camera-space normals, x to the
image right, y up, z towards the camera; ``.npy`` float ``H x W x 3`` (NaN = unknown) or
8/16-bit PNG with RGB = (n + 1) / 2 (all-zero pixels = unknown). Files are paired by stem
(``img01.png`` with ``img01.npy``; a ``_normals`` suffix is ignored). The scored pixels are
those inside the mask (``--mask`` folder, PNG non-zero = face, same stem, optional
``_mask`` suffix) or, without masks, where the ground truth is known, and always only
where both maps are valid.

Overall numbers are given two ways: ``pooled`` treats all pixels of all images as one set
(large faces weigh more), ``per_image_mean`` averages each image's numbers (every image
weighs the same; the usual "mean over the test set").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facenormals3d.errors import InputError
from facenormals3d.evaluate.metrics import THRESHOLDS_DEG, NormalMetrics, angular_error_deg, summarize

#: Suffixes accepted for normal maps and masks.
NORMAL_SUFFIXES = (".npy", ".png")
#: Top of the heat map's colour scale, degrees.
HEATMAP_MAX_DEG = 45.0


@dataclass(frozen=True)
class NormalPair:
    """One image's files."""

    name: str
    """Shared stem."""
    pred: Path
    """Predicted normal map."""
    gt: Path
    """Ground-truth normal map."""
    mask: Path | None
    """Mask PNG, or None to use the ground truth's valid pixels."""


def _key(path: Path, root: Path, suffix: str) -> str:
    """Pairing key: the path below ``root`` without extension and without ``suffix``
    (``a_normals.png`` -> ``a``; ``astronaut/face_0/normals.png`` -> ``astronaut/face_0``)."""
    rel = path.relative_to(root).with_suffix("")
    stem = rel.name
    if stem.endswith(suffix):
        stem = stem[: -len(suffix)].rstrip("_")
    parts = [*rel.parent.parts, stem] if stem else list(rel.parent.parts)
    return "/".join(parts) or rel.name


def _index(folder: Path, suffix: str, exts: tuple[str, ...]) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(folder, "folder not found")
    found: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in exts:
            key = _key(p, folder, suffix)
            if key in found and found[key].suffix.lower() == ".npy":
                continue  # prefer the exact float .npy over its PNG twin
            found[key] = p
    return found


def pair_files(pred_dir: Path, gt_dir: Path, mask_dir: Path | None = None) -> tuple[list[NormalPair], list[str]]:
    """Pair the folders by stem. Returns the pairs and the stems missing on one side."""
    preds = _index(Path(pred_dir), "normals", NORMAL_SUFFIXES)
    gts = _index(Path(gt_dir), "normals", NORMAL_SUFFIXES)
    masks = _index(Path(mask_dir), "mask", (".png",)) if mask_dir else {}
    missing = [f"{k}: no prediction" for k in sorted(set(gts) - set(preds))]
    missing += [f"{k}: no ground truth" for k in sorted(set(preds) - set(gts))]
    pairs = []
    for key in sorted(set(preds) & set(gts)):
        if mask_dir and key not in masks:
            missing.append(f"{key}: no mask")
            continue
        pairs.append(NormalPair(key, preds[key], gts[key], masks.get(key)))
    return pairs, missing


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``H x W`` mask from a PNG (any channel non-zero = inside)."""
    import imageio.v3 as iio

    try:
        m = np.asarray(iio.imread(path))
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot read mask ({err})") from None
    m = m[..., :3].max(axis=-1) if m.ndim == 3 else m
    if m.shape != shape:
        raise InputError(path, f"mask is {m.shape[1]}x{m.shape[0]}, normal maps are {shape[1]}x{shape[0]}")
    return m > 0


def evaluate_pair(pair: NormalPair) -> tuple[NormalMetrics, np.ndarray]:
    """Metrics and the ``H x W`` angular error map (degrees, NaN where not scored) of one pair."""
    from facenormals3d.conventions import read_normal_map

    pred, gt = read_normal_map(pair.pred), read_normal_map(pair.gt)
    if pred.shape != gt.shape:
        raise InputError(pair.pred, f"prediction is {pred.shape[1]}x{pred.shape[0]}, "
                                    f"ground truth {pair.gt.name} is {gt.shape[1]}x{gt.shape[0]}")
    err = angular_error_deg(pred, gt)
    if pair.mask is not None:
        err[~read_mask(pair.mask, err.shape)] = np.nan
    if not np.isfinite(err).any():
        raise InputError(pair.pred, "no pixel is valid in both maps inside the mask")
    return summarize(err), err


def heatmap(error_deg: np.ndarray, vmax: float = HEATMAP_MAX_DEG, label: str = "deg") -> np.ndarray:
    """``H x W x 3`` uint8 error picture (white where not scored) with a colour bar."""
    from facenormals3d.render.colormap import error_colors, with_colorbar

    img = error_colors(error_deg, 0.0, vmax)
    img[~np.isfinite(error_deg)] = 255
    return with_colorbar(img, 0.0, vmax, label)


def combine(per_image: list[NormalMetrics], errors: list[np.ndarray]) -> dict:
    """Overall numbers: ``pooled`` over all pixels and ``per_image_mean`` of each image's."""
    pooled = summarize(np.concatenate([e[np.isfinite(e)] for e in errors]))
    keys = ["mean", "median", "std"] + [f"under_{t:g}" for t in THRESHOLDS_DEG]
    rows = [m.row() for m in per_image]
    mean_of = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    return {"pooled": pooled.row(), "per_image_mean": mean_of, "n_images": len(per_image)}


def csv_rows(names: list[str], per_image: list[NormalMetrics]) -> list[dict]:
    """One flat dict per image for the CSV (name first)."""
    return [{"image": n, **m.row()} for n, m in zip(names, per_image)]


def write_csv(path: Path, rows: list[dict]) -> None:
    """Atomically write ``rows`` (dicts with equal keys) as CSV, floats with 4 decimals."""
    import csv
    import io

    from facenormals3d.outputs import atomic_write

    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in r.items()})
    text = buf.getvalue()
    atomic_write(path, lambda p: p.write_text(text))
