"""The coarse 3D face from the 478 landmarks, and its depth and normal maps in the crop.

Frame and units (see :mod:`facenormals3d.conventions`): the crop frame of
:class:`facenormals3d.frame.CropFrame` (crop pixel (u, v) with v down maps to
x = (u - S/2) * s, y = -(v - S/2) * s, z = z_px * s, where S is the crop side and
``s`` millimetres per crop pixel). ``s`` makes the distance between the outer eye corners
(landmarks 33 and 263, measured in 3D) equal :data:`MEAN_OUTER_EYE_DISTANCE_MM`. The
projection is orthographic (mediapipe's landmark model is weak-perspective).

The depth map is this mesh's z (mm, towards the camera) seen orthographically from the
front; the normal map is its smooth (vertex-interpolated) normal. Both are the prior the
integration stage fuses with the network's normals, and the normal map is the baseline
normal predictor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenormals3d.conventions import MEAN_OUTER_EYE_DISTANCE_MM
from facenormals3d.frame import CropFrame
from facenormals3d.face.topology import (N_LANDMARKS, OUTER_EYE_CORNERS_MEDIAPIPE,
                                         check_landmarks, mesh_triangles)
from facenormals3d.raster import interpolate_hits, orthographic_hits
from facenormals3d.surface import vertex_normals


@dataclass
class CoarseFace:
    """Landmark face mesh and its maps in a square crop."""

    vertices: np.ndarray
    """478 x 3 float64, millimetres, x right, y up, z towards the camera, origin at the crop centre."""
    faces: np.ndarray
    """F x 3 int64 triangles (counter-clockwise seen from the camera)."""
    frame: CropFrame
    """The crop frame: side and millimetres per crop pixel (the metric scale assumption)."""
    depth: np.ndarray
    """S x S float32 z in mm of the front-most surface, NaN where the mesh is not hit."""
    normals: np.ndarray
    """S x S x 3 float32 unit normals (camera space), NaN where the mesh is not hit."""

    @property
    def mm_per_pixel(self) -> float:
        """Millimetres per crop pixel (``frame.mm_per_pixel``)."""
        return self.frame.mm_per_pixel

    @property
    def coverage(self) -> np.ndarray:
        """S x S bool: pixels the mesh covers."""
        return np.isfinite(self.depth)


def metric_scale(landmarks: np.ndarray) -> float:
    """Millimetres per pixel unit of ``landmarks`` (478 x 3, any consistent pixel frame)."""
    a, b = OUTER_EYE_CORNERS_MEDIAPIPE
    lm = np.asarray(landmarks, dtype=np.float64)
    d = float(np.linalg.norm(lm[a] - lm[b]))
    if d < 1e-6:
        raise ValueError("outer eye corners coincide: cannot fix the metric scale")
    return MEAN_OUTER_EYE_DISTANCE_MM / d


def coarse_face(landmarks_crop: np.ndarray, size: int) -> CoarseFace:
    """Build the landmark mesh and render its depth and normals into the ``size`` crop.

    Args:
        landmarks_crop: 478 x 3 crop-pixel landmarks (x right, y down, z px towards camera).
        size: crop side in pixels.
    """
    lm = check_landmarks(landmarks_crop, N_LANDMARKS, "crop landmarks")
    if lm.shape[1] != 3:
        raise ValueError("coarse face needs 3D landmarks (478 x 3)")
    frame = CropFrame(size, metric_scale(lm))
    verts = frame.to_mm(lm)
    faces = mesh_triangles()
    depth, normals = render_orthographic(verts, faces, frame)
    return CoarseFace(vertices=verts, faces=faces, frame=frame, depth=depth, normals=normals)


def render_orthographic(vertices: np.ndarray, faces: np.ndarray, frame: CropFrame, hits: tuple | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Front view of a mesh (mm, our frame) onto the crop grid: z map and smooth normals.

    One ray per pixel centre along -z (open3d ray casting; ``hits``: this mesh's
    :func:`~facenormals3d.raster.orthographic_hits` when the caller has them already).
    Returns ``(depth, normals)``: ``S x S`` float32 and ``S x S x 3`` float32, NaN where
    nothing is hit.
    """
    depth, tri, bary = orthographic_hits(vertices, faces, frame) if hits is None else hits
    n = interpolate_hits(vertex_normals(vertices, faces), faces, tri, bary)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    return depth, n.astype(np.float32)
