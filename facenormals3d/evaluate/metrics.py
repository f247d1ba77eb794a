"""Angular-error metrics for normal maps (Photoface / Florence style).

The same functions score training validation, ``facenormals3d evaluate normals`` and the
synthetic benchmark, so numbers are comparable everywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Thresholds (degrees) for the "% of pixels under" columns.
THRESHOLDS_DEG = (11.25, 20.0, 22.5, 25.0, 30.0)


@dataclass
class NormalMetrics:
    """Summary of per-pixel angular errors inside a mask."""

    mean: float
    """Mean angular error, degrees."""
    median: float
    """Median angular error, degrees."""
    std: float
    """Standard deviation of the angular error, degrees."""
    under: dict[str, float]
    """Percentage of pixels with error below each threshold, keyed like ``"11.25"``."""
    n_pixels: int
    """Number of pixels scored."""

    def to_dict(self) -> dict:
        return asdict(self)

    def row(self) -> dict:
        """Flat dict for tables/CSV: mean, median, std, under_11.25, ..., n_pixels."""
        out = {"mean": self.mean, "median": self.median, "std": self.std}
        out.update({f"under_{k}": v for k, v in self.under.items()})
        out["n_pixels"] = self.n_pixels
        return out


def angular_error_deg(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-pixel angle in degrees between normal maps ``... x 3`` (need not be unit).

    Uses atan2(|a x b|, a . b), accurate for small angles where acos is not.
    Pixels where either vector is zero or non-finite give NaN.
    """
    a = np.asarray(pred, dtype=np.float64)
    b = np.asarray(gt, dtype=np.float64)
    if a.shape != b.shape or a.shape[-1] != 3:
        raise ValueError(f"normal maps must have equal shapes ending in 3, got {a.shape} and {b.shape}")
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    dot = np.sum(a * b, axis=-1)
    ang = np.degrees(np.arctan2(cross, dot))
    bad = ~(np.all(np.isfinite(a), -1) & np.all(np.isfinite(b), -1))
    bad |= (np.linalg.norm(np.nan_to_num(a), axis=-1) == 0) | (np.linalg.norm(np.nan_to_num(b), axis=-1) == 0)
    ang[bad] = np.nan
    return ang


def summarize(errors_deg: np.ndarray) -> NormalMetrics:
    """Summarise angular errors (any shape; NaNs are ignored)."""
    e = np.asarray(errors_deg, dtype=np.float64).ravel()
    e = e[np.isfinite(e)]
    if e.size == 0:
        raise ValueError("no valid pixels to score (empty mask or all-NaN normals)")
    under = {f"{t:g}": float(100.0 * np.mean(e < t)) for t in THRESHOLDS_DEG}
    return NormalMetrics(mean=float(e.mean()), median=float(np.median(e)), std=float(e.std()),
                         under=under, n_pixels=int(e.size))


def normal_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> NormalMetrics:
    """Metrics of ``pred`` against ``gt`` (both ``H x W x 3`` or ``B x H x W x 3``) inside ``mask``.

    ``mask`` is boolean with the leading shape of the maps; pixels where either map is
    invalid are skipped too.
    """
    err = angular_error_deg(pred, gt)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != err.shape:
            raise ValueError(f"mask shape {m.shape} does not match normal maps {err.shape}")
        err = np.where(m, err, np.nan)
    return summarize(err)
