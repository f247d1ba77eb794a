"""Face masks from landmarks: the face oval, minus the mouth opening when the mouth is open."""

from __future__ import annotations

import numpy as np

from facenormals3d.face.topology import FACE_OVAL, LIPS_INNER, N_LANDMARKS, check_landmarks

#: The mouth counts as open when its inner-lip polygon is on average this many pixels
#: tall (area / width), at the crop's resolution.
MOUTH_OPEN_PX = 2.0


def polygon_mask(points_xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``H x W`` mask of pixels whose centres lie inside the polygon.

    ``points_xy`` is ``N x 2`` in continuous pixel coordinates (pixel centres at +0.5).
    """
    from skimage.draw import polygon

    pts = np.asarray(points_xy, dtype=np.float64)
    rr, cc = polygon(pts[:, 1] - 0.5, pts[:, 0] - 0.5, shape=shape)
    mask = np.zeros(shape, dtype=bool)
    mask[rr, cc] = True
    return mask


def mouth_opening_px(landmarks: np.ndarray) -> float:
    """Mean height in pixels of the inner-lip polygon (0 for a closed mouth)."""
    lips = np.asarray(landmarks)[list(LIPS_INNER), :2]
    x, y = lips[:, 0], lips[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    # LIPS_INNER starts at the right corner (78) and reaches the left corner (308) at 10.
    width = np.linalg.norm(lips[0] - lips[10])
    return float(area / max(width, 1e-6))


def face_mask(landmarks: np.ndarray, shape: tuple[int, int], exclude_open_mouth: bool = True) -> np.ndarray:
    """Face mask (``H x W`` bool) from 478 landmarks in the same pixel frame.

    Inside the face oval (forehead to chin, cheek to cheek, eyes included); the mouth
    interior is removed when the mouth is open (see :data:`MOUTH_OPEN_PX`).
    """
    lm = check_landmarks(landmarks, N_LANDMARKS)
    mask = polygon_mask(lm[list(FACE_OVAL), :2], shape)
    if exclude_open_mouth and mouth_opening_px(lm) > MOUTH_OPEN_PX:
        mask &= ~polygon_mask(lm[list(LIPS_INNER), :2], shape)
    return mask
