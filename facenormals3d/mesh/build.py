"""Depth map + mask -> textured triangle mesh (:class:`FaceMesh`).

Frame and units (see :mod:`facenormals3d.conventions`): millimetres, right-handed, x to
the right of the image, y up, z towards the camera.

* Orthographic (``pixel_size_mm``): pixel ``(row, col)`` with height ``h`` becomes
  ``x = (col + 0.5 - W/2) * s``, ``y = -(row + 0.5 - H/2) * s``, ``z = h``.
* Perspective (``camera``): depth ``d`` is the distance along the optical axis in mm and
  the pixel becomes ``(x, y, z) = ((u - cx)/fx * d, -(v - cy)/fy * d, -d)`` (camera at the
  origin looking down -z), see :mod:`integration.camera`.

Topology: one vertex per masked pixel, two triangles per 2x2 cell whose four pixels are
all masked, wound counter-clockwise seen from +z so face normals point at the camera.
Pixels that belong to no full cell give no triangle and their vertices are dropped.
UVs: each vertex's position in the image the depth map was computed on (the same crop as
the texture), ``u`` right and ``v`` up (OBJ convention), so the crop is the texture.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass

import numpy as np

from facenormals3d import surface
from facenormals3d.errors import InputError
from integration.camera import Camera, depth_to_points, height_to_points


@dataclass
class MeshSettings:
    """Options of :func:`depth_to_mesh`."""

    target_triangles: int | None = None
    """Decimate (open3d quadric error metric) to about this many triangles; None keeps the
    full-resolution grid mesh."""
    max_edge_mm: float | None = None
    """Drop triangles with an edge longer than this (cuts skins stretched across depth
    discontinuities such as the chin-neck silhouette); None keeps all."""
    smooth_outline: int = 0
    """Relax the mesh outline this many times (boundary vertices move towards their
    boundary neighbours) to remove the mask's pixel staircase, which on a steep cheek is
    also a zigzag in depth. 0 = off."""


@dataclass
class FaceMesh:
    """A triangle mesh in millimetres, y up, z towards the camera."""

    vertices: np.ndarray
    """``V x 3`` float32 positions, mm."""
    faces: np.ndarray
    """``F x 3`` int32 vertex indices, counter-clockwise seen from outside (the camera)."""
    uvs: np.ndarray
    """``V x 2`` float32 texture coordinates in [0, 1], ``u`` right, ``v`` up."""
    vertex_normals: np.ndarray
    """``V x 3`` float32 unit normals (area-weighted face normals), facing the camera."""
    colors: np.ndarray | None = None
    """``V x 3`` uint8 RGB sampled from the texture, or None."""
    texture: np.ndarray | None = None
    """``H x W x 3`` uint8 RGB image the UVs refer to, or None."""
    corner_uvs: np.ndarray | None = None
    """``F x 3 x 2`` float32 UVs per triangle corner, for meshes whose UV layout has seams
    (the fitted face model); when set, writers and renderers use it and ``uvs`` holds one
    of each vertex's corner UVs."""

    @property
    def n_vertices(self) -> int:
        return int(len(self.vertices))

    @property
    def n_faces(self) -> int:
        return int(len(self.faces))


def depth_to_mesh(depth: np.ndarray, mask: np.ndarray, *, pixel_size_mm: float | None = None,
                  camera: Camera | None = None, texture: np.ndarray | None = None,
                  settings: MeshSettings | None = None) -> FaceMesh:
    """Build a :class:`FaceMesh` from an ``H x W`` depth/height map (mm) and a boolean mask.

    Exactly one of ``pixel_size_mm`` (orthographic) or ``camera`` (perspective) is needed.
    ``texture`` (``h x w x 3`` uint8, the same crop at any resolution) gives the mesh its
    texture image and per-vertex colours.

    Raises:
        InputError: wrong shapes or dtypes, an empty mask, non-finite depth inside the
            mask, or a mask with no full 2x2 cell (the mesh would have no area).
    """
    settings = settings or MeshSettings()
    depth, mask, texture = _check(depth, mask, pixel_size_mm, camera, texture)
    h, w = depth.shape
    points = depth_to_points(np.where(mask, depth, 1.0), camera) if camera is not None \
        else height_to_points(np.where(mask, depth, 0.0), pixel_size_mm)

    index = np.full((h, w), -1, dtype=np.int64)
    index[mask] = np.arange(int(mask.sum()))
    cell = mask[:-1, :-1] & mask[:-1, 1:] & mask[1:, :-1] & mask[1:, 1:]
    tl, tr = index[:-1, :-1][cell], index[:-1, 1:][cell]
    bl, br = index[1:, :-1][cell], index[1:, 1:][cell]
    # Counter-clockwise seen from +z: rows go down (-y), columns right (+x).
    faces = np.concatenate([np.stack([tl, bl, br], 1), np.stack([tl, br, tr], 1)])
    vertices = points[mask]
    if settings.max_edge_mm is not None:
        faces = _drop_long(vertices, faces, settings.max_edge_mm)
    vertices, faces = clean_faces(vertices, faces)
    if settings.smooth_outline > 0 and len(faces):
        vertices, faces = clean_faces(*smooth_outline(vertices, faces, settings.smooth_outline))
    if settings.target_triangles is not None and len(faces) > settings.target_triangles:
        vertices, faces = decimate(vertices, faces, settings.target_triangles)
    if len(faces) == 0:
        raise InputError("mask", "no full 2x2 cell of valid pixels: the mesh would have no area")

    uvs = project_uvs(vertices, (h, w), pixel_size_mm, camera)
    colors = sample_colors(texture, uvs) if texture is not None else None
    return FaceMesh(vertices=vertices.astype(np.float32), faces=faces.astype(np.int32),
                    uvs=uvs.astype(np.float32), vertex_normals=vertex_normals(vertices, faces),
                    colors=colors, texture=texture)


def smooth_outline(vertices: np.ndarray, faces: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Move each boundary vertex halfway to the mean of its boundary neighbours,
    ``iterations`` times (a 1D Laplacian smoothing of the outline). Interior vertices stay.

    Halfway steps keep the outline from shrinking by more than about half a pixel. The
    staircase's teeth (triangles whose corners all lie on the outline) collapse or fold
    over as the corner is cut; they are dropped. Returns ``(vertices, faces)``; vertices
    no face uses any more are left for :func:`clean_faces`.
    """
    v = np.array(vertices, dtype=np.float64)
    unique, counts = surface.edges(faces)
    boundary = unique[counts == 1]  # edges of one triangle only
    a, b = boundary[:, 0], boundary[:, 1]
    n_nb = np.bincount(a, minlength=len(v)) + np.bincount(b, minlength=len(v))
    on = n_nb > 0
    for _ in range(iterations):
        acc = np.zeros((len(v), 3))
        for axis in range(3):
            acc[:, axis] = (np.bincount(a, weights=v[b, axis], minlength=len(v))
                            + np.bincount(b, weights=v[a, axis], minlength=len(v)))
        v[on] = 0.5 * v[on] + 0.5 * acc[on] / n_nb[on, None]

    def facing(p: np.ndarray) -> np.ndarray:  # z of the area vector: > 0 faces the camera
        return np.cross(p[faces[:, 1]] - p[faces[:, 0]], p[faces[:, 2]] - p[faces[:, 0]])[:, 2]

    keep = facing(v) > 0.25 * facing(np.asarray(vertices, dtype=np.float64))
    return v, faces[keep]


def with_vertices(mesh: FaceMesh, vertices: np.ndarray) -> FaceMesh:
    """The same mesh (faces, UVs, colours, texture) with moved vertices and fresh normals."""
    v = np.asarray(vertices, dtype=np.float32)
    if v.shape != mesh.vertices.shape or not np.all(np.isfinite(v)):
        raise InputError("vertices", f"expected finite {mesh.vertices.shape}, got {v.shape}")
    return dataclasses.replace(mesh, vertices=v, vertex_normals=vertex_normals(v, mesh.faces))


def _check(depth, mask, pixel_size_mm, camera, texture):
    d = np.asarray(depth)
    if d.ndim != 2 or not np.issubdtype(d.dtype, np.number):
        raise InputError("depth", f"expected an H x W numeric array, got shape {d.shape} {d.dtype}")
    m = np.asarray(mask)
    if m.shape != d.shape:
        raise InputError("mask", f"shape {m.shape} does not match the depth map's {d.shape}")
    m = m.astype(bool) if m.dtype != bool else m
    if not m.any():
        raise InputError("mask", "no pixel is set: nothing to mesh")
    d = d.astype(np.float64)
    if not np.all(np.isfinite(d[m])):
        raise InputError("depth", f"{int((~np.isfinite(d[m])).sum())} non-finite values inside the mask")
    if (pixel_size_mm is None) == (camera is None):
        raise InputError(None, "give exactly one of pixel_size_mm (orthographic) or camera (perspective)")
    if pixel_size_mm is not None and not (np.isfinite(pixel_size_mm) and pixel_size_mm > 0):
        raise InputError("pixel_size_mm", f"must be a positive number, got {pixel_size_mm}")
    if camera is not None and np.any(d[m] <= 0):
        raise InputError("depth", "perspective depth must be positive inside the mask")
    if texture is not None:
        t = np.asarray(texture)
        if t.ndim != 3 or t.shape[2] != 3 or t.dtype != np.uint8:
            raise InputError("texture", f"expected an H x W x 3 uint8 image, got {t.shape} {t.dtype}")
        texture = np.ascontiguousarray(t)
    return d, m, texture


def _drop_long(vertices: np.ndarray, faces: np.ndarray, max_edge: float) -> np.ndarray:
    tri = vertices[faces]
    edges = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2)
    return faces[edges.max(axis=1) <= max_edge]


def clean_faces(vertices: np.ndarray, faces: np.ndarray, rel_area: float = 1e-12):
    """Drop degenerate (repeated index or ~zero area) and duplicate faces, then vertices
    that no face uses. Returns ``(vertices, faces)`` with faces re-indexed."""
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(faces):
        distinct = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
        tri = vertices[faces]
        area2 = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        scale = np.ptp(vertices, axis=0).max() if len(vertices) else 0.0
        faces = faces[distinct & (area2 > rel_area * max(scale, 1e-30) ** 2)]
        _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
        faces = faces[np.sort(first)]
    used = np.zeros(len(vertices), bool)
    used[faces.ravel()] = True
    remap = np.cumsum(used) - 1
    return vertices[used], remap[faces]


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``V x 3`` float32 (counter-clockwise = outward)."""
    return surface.vertex_normals(vertices, faces).astype(np.float32)


def project_uvs(vertices: np.ndarray, shape: tuple[int, int], pixel_size_mm: float | None,
                camera: Camera | None) -> np.ndarray:
    """Texture coordinates ``V x 2`` of mesh points: their position in the ``H x W`` image
    (``u`` right, ``v`` up, both in [0, 1] over the image).

    The orthographic case is the inverse of :func:`integration.camera.height_to_points`, which
    placed the vertices: an ``H x W`` grid (not necessarily square), so it follows that
    general camera rather than the square :class:`facenormals3d.frame.CropFrame`."""
    h, w = shape
    v = np.asarray(vertices, dtype=np.float64)
    if camera is not None:
        col = v[:, 0] / -v[:, 2] * camera.fx + camera.cx
        row = -v[:, 1] / -v[:, 2] * camera.fy + camera.cy
    else:
        col = v[:, 0] / pixel_size_mm + w / 2.0
        row = -v[:, 1] / pixel_size_mm + h / 2.0
    return np.clip(np.stack([col / w, 1.0 - row / h], axis=1), 0.0, 1.0)


def sample_colors(texture: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """Nearest-pixel RGB ``V x 3`` uint8 of ``texture`` at ``uvs``."""
    th, tw = texture.shape[:2]
    cols = np.clip((uvs[:, 0] * tw).astype(np.int64), 0, tw - 1)
    rows = np.clip(((1.0 - uvs[:, 1]) * th).astype(np.int64), 0, th - 1)
    return texture[rows, cols].copy()


def decimate(vertices: np.ndarray, faces: np.ndarray, target_triangles: int):
    """Quadric-error decimation (open3d) to about ``target_triangles``; keeps the winding.

    Returns cleaned ``(vertices, faces)``; UVs and colours are recomputed by the caller
    from the new positions, which stay on the surface.
    """
    import open3d as o3d

    if target_triangles < 1:
        raise InputError("target_triangles", f"must be >= 1, got {target_triangles}")
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(vertices, np.float64)),
                                     o3d.utility.Vector3iVector(np.asarray(faces, np.int32)))
    small = mesh.simplify_quadric_decimation(target_number_of_triangles=int(target_triangles))
    return clean_faces(np.asarray(small.vertices), np.asarray(small.triangles))
