"""Square face crops chosen from landmarks, and the similarity that maps them back.

The rule (:func:`crop_from_points`) is shared by inference (mediapipe landmarks) and the
synthetic data engine (ICT iBUG-68 landmarks) so both see faces framed the same way: take
the semantic crop points (:data:`~facenormals3d.face.topology.CROP_POINTS_MEDIAPIPE` or
their iBUG-68 twins), their tightest axis-aligned box, a square of side ``scale`` times the
box's longer side, centred on the box centre moved up by ``shift_up`` times the box height
(the points stop at the brows; the forehead needs room).

Pixel coordinates are continuous: the top-left pixel's centre is (0.5, 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenormals3d.conventions import CROP_SIZE


@dataclass(frozen=True)
class CropSettings:
    """How a face crop is framed."""

    size: int = CROP_SIZE
    """Side of the square crop in pixels."""
    scale: float = 1.55
    """Crop side as a multiple of the longer side of the crop points' box."""
    shift_up: float = 0.12
    """Upward move of the centre, as a fraction of the box height (room for the forehead)."""


@dataclass(frozen=True)
class CropTransform:
    """A square crop of a photo: ``crop_xy = matrix @ [x, y, 1]`` (2 x 3 similarity)."""

    matrix: np.ndarray
    """2 x 3 float64, photo pixels -> crop pixels."""
    size: int
    """Crop side in pixels."""

    @property
    def inverse(self) -> np.ndarray:
        """2 x 3 float64, crop pixels -> photo pixels."""
        return invert_similarity(self.matrix)

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map ``N x 2`` (or ``N x 3``: z is scaled too) photo points into the crop."""
        return _apply(self.matrix, points, self.scale)

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """Map ``N x 2`` (or ``N x 3``) crop points back to the photo."""
        return _apply(self.inverse, points, 1.0 / self.scale)

    def to_dict(self) -> dict:
        return {"photo_to_crop": self.matrix.tolist(), "crop_to_photo": self.inverse.tolist(),
                "size": self.size}


def _apply(matrix: np.ndarray, points: np.ndarray, z_scale: float) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    out = pts.copy()
    out[:, :2] = pts[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    if pts.shape[1] == 3:
        out[:, 2] = pts[:, 2] * z_scale
    return out


def invert_similarity(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2 x 3 affine map."""
    m = np.asarray(matrix, dtype=np.float64)
    lin_inv = np.linalg.inv(m[:, :2])
    return np.hstack([lin_inv, -lin_inv @ m[:, 2:3]])


def crop_from_points(points_xy: np.ndarray, settings: CropSettings = CropSettings()) -> CropTransform:
    """Choose the square crop for a face from its semantic crop points.

    Args:
        points_xy: ``N x 2`` photo pixel coordinates of the crop points (see module doc).
        settings: framing parameters.

    Returns:
        The crop as a :class:`CropTransform` (axis aligned: no rotation).
    """
    pts = np.asarray(points_xy, dtype=np.float64)[:, :2]
    if pts.ndim != 2 or len(pts) < 2 or not np.all(np.isfinite(pts)):
        raise ValueError(f"crop points must be a finite N x 2 array, got shape {pts.shape}")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    w, h = hi - lo
    side = settings.scale * max(w, h, 1.0)
    cx = 0.5 * (lo[0] + hi[0])
    cy = 0.5 * (lo[1] + hi[1]) - settings.shift_up * h
    s = settings.size / side
    matrix = np.array([[s, 0.0, settings.size / 2 - s * cx],
                       [0.0, s, settings.size / 2 - s * cy]])
    return CropTransform(matrix=matrix, size=settings.size)


def warp_to_crop(image: np.ndarray, crop: CropTransform, order: int = 1) -> np.ndarray:
    """Resample ``image`` (H x W or H x W x C) into the ``size x size`` crop.

    Pixels outside the photo are 0. ``order`` is the spline order (0 nearest, 1 linear).
    Area-averages first when the crop shrinks the photo a lot, to avoid aliasing.
    """
    return _warp(image, crop.inverse, (crop.size, crop.size), order, 1.0 / crop.scale)


def warp_to_photo(crop_image: np.ndarray, crop: CropTransform, photo_shape: tuple[int, int],
                  order: int = 1) -> np.ndarray:
    """Resample a crop-aligned map back into the photo's ``H x W`` pixel grid (0 outside)."""
    return _warp(crop_image, crop.matrix, photo_shape, order, crop.scale)


def _warp(src: np.ndarray, dst_to_src: np.ndarray, out_hw: tuple[int, int], order: int,
          src_px_per_dst_px: float) -> np.ndarray:
    from scipy import ndimage

    img = np.asarray(src)
    dtype = img.dtype
    work = img.astype(np.float32)
    m = np.asarray(dst_to_src, dtype=np.float64)
    if src_px_per_dst_px > 1.5 and order > 0:
        # Pre-blur so a big downscale does not alias (sigma ~ half the footprint).
        sigma = 0.5 * (src_px_per_dst_px - 1.0)
        sig = (sigma, sigma) + ((0,) if work.ndim == 3 else ())
        work = ndimage.gaussian_filter(work, sig)
    # ndimage works in (row, col) index space with pixel centres at integers, we in
    # continuous (x, y) with centres at +0.5: convert both ends.
    lin = m[:, :2]
    off = m[:, 2] + lin @ np.array([0.5, 0.5]) - 0.5
    mat_rc = lin[::-1, ::-1]
    off_rc = off[::-1]
    channels = [work] if work.ndim == 2 else [work[..., c] for c in range(work.shape[2])]
    out = [ndimage.affine_transform(ch, mat_rc, offset=off_rc, output_shape=tuple(out_hw),
                                    order=order, mode="constant", cval=0.0) for ch in channels]
    res = out[0] if work.ndim == 2 else np.stack(out, axis=-1)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        res = np.clip(np.round(res), info.min, info.max)
    return res.astype(dtype)
