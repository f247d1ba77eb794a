"""Triangle-surface basics every stage needs (the face, mesh, render and data stages).

Kept apart from the stages so none has to import a later one for a vertex normal.
"""

from __future__ import annotations

import numpy as np


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``V x 3`` float64 from counter-clockwise ``F x 3`` faces.

    Vertices used by no face (or only degenerate ones) get a zero vector.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    face_n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # length = 2 x area
    acc = np.zeros((len(v), 3))
    for k in range(3):
        for axis in range(3):
            # bincount is several times faster than np.add.at for this scatter.
            acc[:, axis] += np.bincount(f[:, k], weights=face_n[:, axis], minlength=len(v))
    length = np.linalg.norm(acc, axis=1, keepdims=True)
    return acc / np.maximum(length, 1e-30)
