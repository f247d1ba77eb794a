"""The fitted face-model mesh: detail displacement from integrated normals, textures in the model's UVs.

Frame: the crop frame of :mod:`facenormals3d.face.coarse` (mm, x right, y up, z towards
the camera, orthographic view along -z). Topology: the face model's (same vertex count
and order for every face and photo); UVs per triangle corner in the model's atlas
(:mod:`facenormals3d.fit.model`).

Detail: the depth integrated from the predicted normals (fused with the fitted surface's
own depth) minus the fitted surface, high-passed (the fit owns the coarse shape), per
visible vertex, faded to zero over
``fade_px`` crop pixels inside the mask border, smoothed ``smoothing`` times along the
mesh (band limit: the mesh cannot carry finer detail; that goes into the normal map) and
applied along the vertex normal (scaled by its n_z, so grazing vertices barely move).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenormals3d import surface
from facenormals3d.frame import CropFrame
from facenormals3d.mesh.build import FaceMesh


@dataclass(frozen=True)
class DetailSettings:
    """How the integrated normals become a per-vertex displacement."""

    fade_px: float = 10.0
    """Crop pixels over which the displacement fades to zero at the mask border."""
    smoothing: int = 2
    """Umbrella smoothing passes of the displacement along the mesh."""
    max_mm: float = 4.0
    """Displacements are clipped to +- this."""
    highpass_px: float = 2.0
    """Only detail finer than about this (Gaussian sigma, crop pixels; ~2 mm) is added:
    coarser differences belong to the fitted shape (the dense stage), and keeping them pulls
    the surface back towards the landmark fit the integration was anchored to. Measured on
    held-out synthetic faces (whose true surface has no fine detail, so any displacement
    costs a little there): sigma 2 px cost 0.015 mm against no displacement, 6 px 0.06 mm,
    no high-pass 0.07 mm (visible-region medians). 0 = off."""


def detail_displacement(vertices: np.ndarray, faces: np.ndarray, vertex_normals: np.ndarray,
                        detail_depth: np.ndarray, base_depth: np.ndarray, confidence: np.ndarray,
                        frame: CropFrame, settings: DetailSettings = DetailSettings()) -> np.ndarray:
    """Per-vertex offsets ``V x 3`` (mm) that move the fitted surface towards ``detail_depth``.

    Args:
        vertices, faces, vertex_normals: the fitted mesh (crop frame, mm).
        detail_depth: ``S x S`` z integrated from the normals (NaN where unknown).
        base_depth: ``S x S`` z of the fitted mesh itself (NaN where it is not hit).
        confidence: ``S x S`` in [0, 1]: trust in ``detail_depth`` (0 outside the face).
        frame: the crop frame of the ``S x S`` maps.
    """
    import cv2

    from facenormals3d.mesh.atlas import sample_points

    known = np.isfinite(detail_depth) & np.isfinite(base_depth) & (confidence > 0)
    fade = cv2.distanceTransform(known.astype(np.uint8), cv2.DIST_L2, 5) / max(settings.fade_px, 1e-6)
    weight = np.clip(fade, 0, 1) * np.where(known, confidence, 0)
    d = np.where(known, np.nan_to_num(detail_depth) - np.nan_to_num(base_depth), 0.0)
    if settings.highpass_px > 0:
        # Weighted (normalised) Gaussian low-pass inside the mask, subtracted.
        k = (0, 0)
        num = cv2.GaussianBlur((d * known).astype(np.float32), k, settings.highpass_px)
        den = cv2.GaussianBlur(known.astype(np.float32), k, settings.highpass_px)
        d = d - np.where(den > 1e-3, num / np.maximum(den, 1e-3), 0.0)
    d = d * weight
    v = np.asarray(vertices, np.float64)
    xy = frame.to_pixels(v)
    z_front = sample_points(np.nan_to_num(base_depth, nan=-1e6).astype(np.float32), xy, nearest=True,
                            outside=-1e6)[:, 0]
    seen = (v[:, 2] >= z_front - 1.0) & (vertex_normals[:, 2] > 0)
    disp = np.where(seen, sample_points(d.astype(np.float32), xy, outside=0.0)[:, 0], 0.0)
    disp = np.clip(disp, -settings.max_mm, settings.max_mm) * np.clip(vertex_normals[:, 2], 0, 1)
    disp = smooth_on_mesh(disp, faces, settings.smoothing)
    return disp[:, None] * vertex_normals


def smooth_on_mesh(values: np.ndarray, faces: np.ndarray, passes: int) -> np.ndarray:
    """Umbrella smoothing of per-vertex ``values`` (``V``): each pass averages a vertex with its neighbours."""
    if passes <= 0:
        return values
    import scipy.sparse as sp

    e, _ = surface.edges(faces)
    n = len(values)
    adj = sp.coo_matrix((np.ones(2 * len(e)), (np.concatenate([e[:, 0], e[:, 1]]), np.concatenate([e[:, 1], e[:, 0]]))),
                        shape=(n, n)).tocsr()
    deg = np.asarray(adj.sum(axis=1)).ravel()
    out = np.asarray(values, np.float64)
    for _ in range(passes):
        out = 0.5 * out + 0.5 * (adj @ out) / np.maximum(deg, 1)
    return out


def fitted_mesh(vertices: np.ndarray, faces: np.ndarray, corner_uvs: np.ndarray,
                texture: np.ndarray | None = None) -> FaceMesh:
    """A :class:`FaceMesh` in the model topology with per-corner UVs and optional atlas texture."""
    v = np.asarray(vertices, np.float32)
    f = np.asarray(faces, np.int32)
    uv = np.zeros((len(v), 2), np.float32)
    # Each vertex's UV from one of its corners (the last written wins: any corner is on the vertex).
    uv[f.reshape(-1)] = np.asarray(corner_uvs, np.float32).reshape(-1, 2)
    mesh = FaceMesh(vertices=v, faces=f, uvs=uv, vertex_normals=surface.vertex_normals(v, f).astype(np.float32),
                    corner_uvs=np.asarray(corner_uvs, np.float32))
    return mesh if texture is None else textured(mesh, texture)


def textured(mesh: FaceMesh, texture: np.ndarray) -> FaceMesh:
    """``mesh`` (from :func:`fitted_mesh`) with the atlas ``texture`` (``H x W x 3`` uint8)
    and the vertex colours sampled from it at the vertices' UVs."""
    import dataclasses

    from facenormals3d.mesh.atlas import sample_points

    h, w = texture.shape[:2]
    uv = mesh.uvs
    colors = np.clip(sample_points(texture, np.stack([uv[:, 0] * w, (1 - uv[:, 1]) * h], axis=1)), 0, 255
                     ).astype(np.uint8)
    return dataclasses.replace(mesh, colors=colors, texture=texture)
