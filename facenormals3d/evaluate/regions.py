"""Face regions on an image from its iBUG-68 landmarks, for per-region error reports.

Regions (labels are indices into :data:`REGIONS`; -1 = none): the eyes (each eye's
contour, grown by a third of its width), the nose (the hull of the nose landmarks, grown),
the mouth (the outer lip contour, grown), the forehead (above the brows), the chin (below
the lower lip) and the cheeks (everything else inside the given mask). Assigned in that
order, so a pixel near both the eye and the brow counts as eye.
"""

from __future__ import annotations

import numpy as np

REGIONS = ("eyes", "nose", "mouth", "forehead", "chin", "cheeks")


def face_regions(landmarks68: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``H x W`` int8 region labels inside ``mask`` (``H x W`` bool) from ``68 x 2`` landmarks (x, y px)."""
    import cv2

    lm = np.asarray(landmarks68, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"face_regions: expected 68 x 2 landmarks, got {lm.shape}")
    h, w = mask.shape
    labels = np.full((h, w), -1, np.int8)
    free = np.asarray(mask, bool).copy()

    def paint(region: str, area: np.ndarray) -> None:
        sel = area & free
        labels[sel] = REGIONS.index(region)
        free[sel] = False

    def polygon(points: np.ndarray, grow: float) -> np.ndarray:
        img = np.zeros((h, w), np.uint8)
        hull = cv2.convexHull(np.round(points).astype(np.int32))
        cv2.fillPoly(img, [hull], 1)
        if grow > 0:
            k = max(int(round(grow)), 1)
            img = cv2.dilate(img, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
        return img.astype(bool)

    eye_width = 0.5 * (np.linalg.norm(lm[36] - lm[39]) + np.linalg.norm(lm[42] - lm[45]))
    paint("eyes", polygon(lm[36:42], eye_width / 3) | polygon(lm[42:48], eye_width / 3))
    paint("nose", polygon(lm[27:36], eye_width / 4))
    paint("mouth", polygon(lm[48:60], eye_width / 4))
    rows, cols = np.mgrid[0:h, 0:w]
    brow = _line_height(lm[17:27], cols)
    paint("forehead", rows < brow)
    lip = _line_height(lm[[48, 59, 58, 57, 56, 55, 54]], cols)
    paint("chin", rows > lip + eye_width / 4)
    paint("cheeks", np.ones((h, w), bool))
    return labels


def _line_height(points: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Row of a polyline (``N x 2``, x increasing after sorting) at each column, clamped at its ends."""
    order = np.argsort(points[:, 0])
    return np.interp(cols, points[order, 0], points[order, 1])
