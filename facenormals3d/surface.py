"""Triangle-surface geometry every stage needs (the face, mesh, render and data stages):
vertex normals and edges.

Kept apart from the stages so none has to import a later one for a vertex normal. What a
view or a ray sees of a surface (ray casting, rasterisation, barycentric interpolation) is
in :mod:`facenormals3d.raster`.
"""

from __future__ import annotations

import numpy as np


def edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges of ``F x 3`` triangles: ``E x 2`` int64 (i < j, sorted) and, per
    edge, how many triangles use it (1 = on the boundary)."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    n = int(f.max()) + 1 if len(f) else 1
    # 1-D keys: np.unique(axis=0) sorts row views and is ~10x slower.
    keys, counts = np.unique(e[:, 0] * n + e[:, 1], return_counts=True)
    return np.stack([keys // n, keys % n], axis=1), counts


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
