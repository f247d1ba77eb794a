"""Square face crops chosen from landmarks, and the similarity that maps them back.

The rule (:func:`crop_from_points`) is shared by inference (mediapipe landmarks) and the
synthetic data engine (ICT iBUG-68 landmarks) so both see faces framed the same way: take
the semantic crop points (:data:`~facenormals3d.face.topology.CROP_POINTS_MEDIAPIPE` or
their iBUG-68 twins), their tightest axis-aligned box, a square of side ``scale`` times the
box's longer side, centred on the box centre moved up by ``shift_up`` times the box height
(the points stop at the brows; the forehead needs room). With a ``roll`` the box is taken
in the face's upright frame (the photo turned by ``-roll`` about the origin), so the crop
is rotated with the face and shows it upright: any in-plane angle, the transform still
maps crop pixels back to the photo.

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

    @property
    def roll_deg(self) -> float:
        """How far the crop is turned against the photo: the photo's x axis points at
        ``-roll_deg`` in the crop (degrees, image frame, y down; 0 for an axis-aligned crop).
        A face whose eye line rises at ``roll`` degrees clockwise in the photo is level in
        a crop with ``roll_deg == roll``."""
        return float(np.degrees(np.arctan2(-self.matrix[1, 0], self.matrix[0, 0])))

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map ``N x 2`` (or ``N x 3``: z is scaled too) photo points into the crop."""
        return _apply(self.matrix, points, self.scale)

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """Map ``N x 2`` (or ``N x 3``) crop points back to the photo."""
        return _apply(self.inverse, points, 1.0 / self.scale)

    def directions_to_photo(self, vectors: np.ndarray) -> np.ndarray:
        """Camera-space directions (``... x 3``: x right, y up, z towards the camera, e.g.
        normals) seen in the crop -> the same directions in the photo's camera frame: the
        crop's in-plane rotation is undone, z and lengths are unchanged."""
        # Row vectors times the rotation into the crop: its inverse applied to each.
        return np.asarray(vectors, dtype=np.float64) @ self.rotation_to_crop()

    def rotation_to_crop(self) -> np.ndarray:
        """``3 x 3`` rotation turning camera-space directions of the photo into the crop's
        (x right, y up, z towards the camera): the inverse of :meth:`directions_to_photo`
        (the image frame, y down, turned by +roll from crop to photo is the y-up frame turned
        by -roll)."""
        a = np.radians(self.roll_deg)
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def resized(self, size: int) -> "CropTransform":
        """The same square of the photo sampled at ``size`` pixels instead of :attr:`size`."""
        k = size / self.size
        return CropTransform(self.matrix * k, size)

    def to_dict(self) -> dict:
        return {"photo_to_crop": self.matrix.tolist(), "crop_to_photo": self.inverse.tolist(),
                "size": self.size, "roll_deg": self.roll_deg}


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


def crop_from_points(points_xy: np.ndarray, settings: CropSettings = CropSettings(),
                     roll_deg: float = 0.0) -> CropTransform:
    """Choose the square crop for a face from its semantic crop points.

    Args:
        points_xy: ``N x 2`` photo pixel coordinates of the crop points (see module doc).
        settings: framing parameters.
        roll_deg: the face's in-plane angle in the photo (image frame, y down: the eye line
            from the subject's right eye to the left one points at this angle, clockwise
            positive); the crop is turned with it so the face is upright. 0 = axis aligned.

    Returns:
        The crop as a :class:`CropTransform`.
    """
    pts = np.asarray(points_xy, dtype=np.float64)
    if pts.ndim != 2 or len(pts) < 2 or pts.shape[1] < 2 or not np.all(np.isfinite(pts[:, :2])):
        raise ValueError(f"crop points must be a finite N x 2 array, got shape {pts.shape}")
    if not np.isfinite(roll_deg):
        raise ValueError(f"roll must be finite, got {roll_deg}")
    upright = pts[:, :2] @ _rotation(-roll_deg).T
    lo, hi = upright.min(axis=0), upright.max(axis=0)
    w, h = hi - lo
    centre_upright = np.array([0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1]) - settings.shift_up * h])
    centre = _rotation(roll_deg) @ centre_upright
    return square_crop(centre, settings.scale * max(w, h, 1.0), roll_deg, settings.size)


def square_crop(centre_xy: np.ndarray, side_px: float, roll_deg: float, size: int) -> CropTransform:
    """The square of ``side_px`` photo pixels centred on ``centre_xy``, turned by
    ``roll_deg`` (see :func:`crop_from_points`), sampled at ``size x size`` pixels."""
    if not side_px > 0:
        raise ValueError(f"crop side must be positive, got {side_px}")
    k = size / side_px
    lin = k * _rotation(-roll_deg)
    offset = size / 2 - lin @ np.asarray(centre_xy, dtype=np.float64)
    return CropTransform(matrix=np.hstack([lin, offset[:, None]]), size=int(size))


def _rotation(deg: float) -> np.ndarray:
    """2 x 2 rotation by ``deg`` degrees in the image frame (y down: clockwise on screen)."""
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def crop_coverage(photo_shape: tuple[int, ...], crop: CropTransform) -> np.ndarray:
    """``size x size`` bool: crop pixels whose centres fall inside the photo (``H x W``)."""
    h, w = photo_shape[:2]
    c = np.arange(crop.size) + 0.5
    xx, yy = np.meshgrid(c, c)
    inv = crop.inverse
    px = inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]
    py = inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]
    return (px >= 0) & (px < w) & (py >= 0) & (py < h)


def warp_to_crop(image: np.ndarray, crop: CropTransform, order: int = 1) -> np.ndarray:
    """Resample ``image`` (H x W or H x W x C) into the ``size x size`` crop.

    Pixels outside the photo are 0 (:func:`crop_coverage` says which). ``order`` is the
    spline order (0 nearest, 1 linear). Area-averages first when the crop shrinks the photo
    a lot, to avoid aliasing. Only the part of the photo under the crop is read, so the
    cost does not grow with the photo's size.
    """
    return _warp(image, crop.inverse, (crop.size, crop.size), order, 1.0 / crop.scale)


def warp_to_photo(crop_image: np.ndarray, crop: CropTransform, photo_shape: tuple[int, int],
                  order: int = 1) -> np.ndarray:
    """Resample a crop-aligned map back into the photo's ``H x W`` pixel grid (0 outside)."""
    return _warp(crop_image, crop.matrix, photo_shape, order, crop.scale)


def normals_on_photo(faces: list[tuple[np.ndarray, np.ndarray, CropTransform]], photo_shape: tuple[int, int]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Crop normals of several faces warped onto the photo's ``H x W`` grid, later faces
    painted over earlier ones (give the nearest face last).

    ``faces``: ``(normals S x S x 3 (NaN where unknown), mask S x S, transform)`` per face.
    The crop is turned with the face, so the normals are turned back with it
    (:meth:`CropTransform.directions_to_photo`) and renormalised after resampling.
    Returns ``(normals H x W x 3 float32, NaN outside; mask H x W bool)``.
    """
    h, w = photo_shape
    photo_n = np.zeros((h, w, 3), np.float32)
    photo_m = np.zeros((h, w), bool)
    for normals, mask, transform in faces:
        back = warp_to_photo(np.nan_to_num(transform.directions_to_photo(normals)), transform, (h, w), order=1)
        back_m = warp_to_photo(mask.astype(np.uint8), transform, (h, w), order=0) > 0
        photo_n[back_m] = back[back_m]
        photo_m |= back_m
    length = np.linalg.norm(photo_n, axis=-1, keepdims=True)
    photo_n = np.where(photo_m[..., None], photo_n / np.maximum(length, 1e-6), np.nan).astype(np.float32)
    return photo_n, photo_m


def _warp(src: np.ndarray, dst_to_src: np.ndarray, out_hw: tuple[int, int], order: int,
          src_px_per_dst_px: float) -> np.ndarray:
    """Resample ``src`` onto an ``out_hw`` grid; ``dst_to_src`` maps continuous output
    (x, y) to source (x, y). Works on the window of the source under the output and the
    window of the output over the source, then pastes into a zero canvas."""
    img = np.asarray(src)
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    m = np.asarray(dst_to_src, dtype=np.float64)
    canvas = np.zeros((out_h, out_w) + img.shape[2:], dtype=img.dtype)
    sigma = 0.5 * (src_px_per_dst_px - 1.0) if src_px_per_dst_px > 1.5 and order > 0 else 0.0
    # Output window: where the source lands (plus a pixel for interpolation).
    src_box = _corners_box(invert_similarity(m), img.shape[1], img.shape[0], 1.0)
    ox0, oy0, ox1, oy1 = _clip_box(src_box, out_w, out_h)
    if ox1 <= ox0 or oy1 <= oy0:
        return canvas
    # Source window: what that output window reads (plus the blur's reach).
    m_win = m.copy()
    m_win[:, 2] += m[:, :2] @ np.array([ox0, oy0], dtype=np.float64)
    reach = 3.0 * sigma + 2.0
    sx0, sy0, sx1, sy1 = _clip_box(_corners_box(m_win, ox1 - ox0, oy1 - oy0, reach),
                                   img.shape[1], img.shape[0])
    if sx1 <= sx0 or sy1 <= sy0:
        return canvas
    m_win[:, 2] -= np.array([sx0, sy0], dtype=np.float64)
    window = _resample(img[sy0:sy1, sx0:sx1], m_win, (oy1 - oy0, ox1 - ox0), order, sigma)
    canvas[oy0:oy1, ox0:ox1] = window
    return canvas


def _corners_box(m: np.ndarray, w: float, h: float, pad: float) -> np.ndarray:
    """Bounding box (x0, y0, x1, y1) of the ``w x h`` rectangle mapped by ``m``, padded."""
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64)
    mapped = corners @ m[:, :2].T + m[:, 2]
    return np.concatenate([mapped.min(0) - pad, mapped.max(0) + pad])


def _clip_box(box: np.ndarray, w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    return x0, y0, x1, y1


def _resample(src: np.ndarray, dst_to_src: np.ndarray, out_hw: tuple[int, int], order: int,
              sigma: float) -> np.ndarray:
    from scipy import ndimage

    dtype = src.dtype
    m = np.asarray(dst_to_src, dtype=np.float64)
    factor = int(2 * sigma + 1.0)  # the downscale (sigma = (factor - 1) / 2)
    if factor >= 2 and src.shape[0] >= factor and src.shape[1] >= factor:
        # Box-average factor x factor blocks first (cheap), then blur what is left.
        src = _block_mean(src, factor)
        m = m / factor
        sigma = max(0.0, sigma / factor - 0.5 * (1.0 - 1.0 / factor))
    work = src.astype(np.float32)
    if sigma > 0.3:
        # Pre-blur so a big downscale does not alias (sigma ~ half the footprint).
        sig = (sigma, sigma) + ((0,) if work.ndim == 3 else ())
        work = ndimage.gaussian_filter(work, sig, mode="nearest")
    res = _affine(work, m, out_hw, order)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        res = np.clip(np.round(res), info.min, info.max)
    return res.astype(dtype)


def _affine(work: np.ndarray, dst_to_src: np.ndarray, out_hw: tuple[int, int], order: int) -> np.ndarray:
    """``work`` (``h x w`` or ``h x w x C`` float32) sampled at ``dst_to_src`` of every
    output pixel centre: ``out_hw`` float32, nearest (``order`` 0) or bilinear (1), 0 outside.

    OpenCV's ``warpAffine``: it rounds each source position to 1/32 pixel (its fixed-point
    interpolation tables), so values differ from exact bilinear sampling
    (:func:`affine_reference`) by at most 1/64 of the step between two neighbouring pixels.
    Measured here on 192 px RGB float32 patches of the astronaut (the size of the face
    finder's orientation patches), bilinear: 0.2-0.5 ms instead of scipy.ndimage's 2.4-3.1 ms.
    """
    import cv2

    m = np.asarray(dst_to_src, np.float64)
    # Both in continuous (x, y) with pixel centres at +0.5 -> OpenCV's centres at integers.
    to_cv = np.concatenate([m[:, :2], (m[:, 2] + m[:, :2] @ np.array([0.5, 0.5]) - 0.5)[:, None]], axis=1)
    flags = (cv2.INTER_NEAREST if order == 0 else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    channels = 1 if work.ndim == 2 else work.shape[2]
    if channels <= 4:
        res = cv2.warpAffine(work, to_cv, (out_w, out_h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return res.reshape((out_h, out_w) + work.shape[2:])
    return np.stack([_affine(work[..., c], dst_to_src, out_hw, order) for c in range(channels)], axis=-1)


def affine_reference(work: np.ndarray, dst_to_src: np.ndarray, out_hw: tuple[int, int], order: int) -> np.ndarray:
    """:func:`_affine` by scipy.ndimage's exact spline sampling (the slow reference of the tests)."""
    from scipy import ndimage

    m = np.asarray(dst_to_src, np.float64)
    # ndimage works in (row, col) index space with pixel centres at integers, we in
    # continuous (x, y) with centres at +0.5: convert both ends.
    lin = m[:, :2]
    off = m[:, 2] + lin @ np.array([0.5, 0.5]) - 0.5
    channels = [work] if work.ndim == 2 else [work[..., c] for c in range(work.shape[2])]
    out = [ndimage.affine_transform(ch, lin[::-1, ::-1], offset=off[::-1], output_shape=tuple(out_hw),
                                    order=order, mode="constant", cval=0.0) for ch in channels]
    return out[0] if work.ndim == 2 else np.stack(out, axis=-1)


def _block_mean(img: np.ndarray, k: int) -> np.ndarray:
    """Mean of each ``k x k`` block (trailing rows/columns that do not fill a block are
    dropped): pixel (i, j) of the result covers source pixels ``[k i, k i + k)``."""
    h, w = (img.shape[0] // k) * k, (img.shape[1] // k) * k
    if img.dtype == np.uint8 and img.ndim in (2, 3) and (img.ndim == 2 or img.shape[2] == 3):
        from PIL import Image

        return np.asarray(Image.fromarray(np.ascontiguousarray(img[:h, :w])).reduce(k))
    blocks = img[:h, :w].astype(np.float32).reshape(h // k, k, w // k, k, *img.shape[2:])
    return blocks.mean(axis=(1, 3)).astype(img.dtype) if np.issubdtype(img.dtype, np.floating) \
        else np.round(blocks.mean(axis=(1, 3))).astype(img.dtype)
