"""Index sets into the mediapipe 478-point face mesh and their iBUG-68 counterparts.

The mediapipe indices are those of its published face-mesh annotations (silhouette,
lips, eyes, brows); 468-477 are the refined iris points.
"""

from __future__ import annotations

import numpy as np

N_LANDMARKS = 478
N_MESH_POINTS = 468

#: Face outline, clockwise from the top of the forehead (mediapipe "silhouette").
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379,
             378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127,
             162, 21, 54, 103, 67, 109)

#: Inner lip contour (mouth opening), right corner to left corner over the top, back below.
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308,
              324, 318, 402, 317, 14, 87, 178, 88, 95)

#: Semantic points used to choose the face crop, in the same order in both schemes.
#: Jaw ends at ear level, chin, brow ends, eye corners, nose bottom, mouth corners.
CROP_POINTS_IBUG68 = (0, 16, 8, 17, 21, 22, 26, 36, 39, 42, 45, 33, 48, 54)
CROP_POINTS_MEDIAPIPE = (234, 454, 152, 70, 107, 336, 300, 33, 133, 362, 263, 2, 61, 291)

#: The 7 NoW landmarks (iBUG 36, 39, 42, 45, 33, 48, 54) as mediapipe indices.
NOW_MEDIAPIPE = (33, 133, 362, 263, 2, 61, 291)

#: Outer eye corners (subject's right, subject's left): sets the metric scale.
OUTER_EYE_CORNERS_MEDIAPIPE = (33, 263)
OUTER_EYE_CORNERS_IBUG68 = (36, 45)


def check_landmarks(points: np.ndarray, n: int, name: str = "landmarks") -> np.ndarray:
    """Return ``points`` as float64 ``n x D`` (D = 2 or 3) or raise ``ValueError``."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] not in (2, 3):
        raise ValueError(f"{name}: expected {n} x 2 or {n} x 3, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: non-finite coordinates")
    return arr
