"""Triangle-surface basics every stage needs (the face, mesh, render and data stages).

Kept apart from the stages so none has to import a later one for a vertex normal.
"""

from __future__ import annotations

import numpy as np

from facenormals3d.frame import CropFrame


def edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges of ``F x 3`` triangles: ``E x 2`` int64 (i < j, sorted) and, per
    edge, how many triangles use it (1 = on the boundary)."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    n = int(f.max()) + 1 if len(f) else 1
    # 1-D keys: np.unique(axis=0) sorts row views and is ~10x slower.
    keys, counts = np.unique(e[:, 0] * n + e[:, 1], return_counts=True)
    return np.stack([keys // n, keys % n], axis=1), counts


def raycasting_scene(vertices: np.ndarray, faces: np.ndarray, nthreads: int = 0):
    """An open3d ``RaycastingScene`` holding one triangle mesh (``N x 3`` float, ``F x 3`` int).

    ``nthreads = 0`` lets open3d use every core; synthetic-data workers pass 1.
    """
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene(nthreads=nthreads)
    scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
                        o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)))
    return scene


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


def orthographic_hits(vertices: np.ndarray, faces: np.ndarray, frame: CropFrame
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Front view of a mesh on the crop grid: what each pixel centre sees along -z.

    Frame: :class:`facenormals3d.frame.CropFrame` (mm; one ray per pixel centre,
    :meth:`~facenormals3d.frame.CropFrame.pixel_centres`).

    Returns ``(depth, triangle, bary)``: ``S x S`` float32 z of the front-most hit (NaN where
    nothing is hit), ``S x S`` int64 triangle index (-1 where nothing is hit) and
    ``S x S x 3`` float32 barycentric weights of the triangle's corners.
    """
    import open3d as o3d

    v = np.asarray(vertices, dtype=np.float32)
    scene = raycasting_scene(v, faces)
    size = frame.size
    index = np.arange(size, dtype=np.float32)
    xx, yy = np.meshgrid(*frame.pixel_centres(index, index))
    z0 = float(v[:, 2].max()) + 10.0
    rays = np.stack([xx, yy, np.full_like(xx, z0), np.zeros_like(xx), np.zeros_like(xx),
                     -np.ones_like(xx)], axis=-1).reshape(-1, 6)
    hit = scene.cast_rays(o3d.core.Tensor(rays))
    t = hit["t_hit"].numpy()
    ok = np.isfinite(t)
    depth = np.where(ok, z0 - t, np.nan).astype(np.float32)
    tri = np.where(ok, hit["primitive_ids"].numpy().astype(np.int64), -1)
    uv = hit["primitive_uvs"].numpy()
    # open3d's barycentrics: p = (1 - u - w) * v0 + u * v1 + w * v2.
    bary = np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1).astype(np.float32)
    bary[~ok] = 0.0
    return depth.reshape(size, size), tri.reshape(size, size), bary.reshape(size, size, 3)


def interpolate(values: np.ndarray, faces: np.ndarray, triangle: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Barycentric interpolation of per-vertex ``values`` (``V x C``) at surface points.

    ``triangle`` (any shape ``...``, -1 = none) and ``bary`` (``... x 3``) as returned by
    :func:`orthographic_hits`; returns ``... x C`` float64, NaN where ``triangle`` is -1.
    """
    vals = np.asarray(values, dtype=np.float64)
    tri = np.asarray(triangle)
    ok = tri >= 0
    corners = np.asarray(faces)[np.where(ok, tri, 0)]  # ... x 3
    out = np.einsum("...c,...cd->...d", np.asarray(bary, np.float64), vals[corners])
    out[~ok] = np.nan
    return out
