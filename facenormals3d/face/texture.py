"""Face images sampled from the full-resolution photo, with the part outside the photo
marked unknown and filled (never black).

A face at the photo's edge gives a crop whose corner lies outside the photo. Those pixels
are unknown; :func:`fill_unknown` fills them with a smooth continuation of the known ones
(push-pull: average down a pyramid, then fill each level's holes from the coarser one),
so neither the network nor a texture ever sees a black band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenormals3d.face.crop import CropTransform, crop_coverage, warp_to_crop

#: Largest side of a texture sampled from the photo, pixels.
MAX_TEXTURE_SIDE = 1024


@dataclass
class FaceTexture:
    """A square image of the face region sampled from the photo."""

    pixels: np.ndarray
    """N x N x 3 uint8 RGB; unknown pixels filled."""
    known: np.ndarray
    """N x N bool: pixels that come from inside the photo."""
    transform: CropTransform
    """Photo pixels <-> these pixels (the face crop's square, at N pixels)."""


def sample_face(photo: np.ndarray, transform: CropTransform, size: int | None = None) -> FaceTexture:
    """The square ``transform`` covers, sampled from ``photo`` (``H x W x 3`` uint8) at
    ``size`` pixels (default ``transform.size``), outside-photo pixels filled."""
    t = transform if size is None or size == transform.size else transform.resized(int(size))
    known = crop_coverage(photo.shape, t)
    pixels = warp_to_crop(photo, t)
    if not known.all():
        pixels = fill_unknown(pixels, known)
    return FaceTexture(pixels=pixels, known=known, transform=t)


def texture_side(transform: CropTransform, max_side: int = MAX_TEXTURE_SIDE) -> int:
    """Texture side for a crop: the photo's own pixel count across the crop, at least the
    crop's size and at most ``max_side`` (a multiple of 4)."""
    native = transform.size / transform.scale
    side = int(np.clip(native, transform.size, max(max_side, transform.size)))
    return max(4, side - side % 4)


def face_texture(photo: np.ndarray, transform: CropTransform,
                 max_side: int = MAX_TEXTURE_SIDE) -> FaceTexture:
    """The face crop's square at the photo's full resolution, up to ``max_side``^2."""
    return sample_face(photo, transform, texture_side(transform, max_side))


def fill_unknown(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``image`` (``H x W`` or ``H x W x C``) with pixels where ``known`` is False replaced
    by a smooth push-pull continuation of the known ones; same dtype. All unknown -> grey."""
    img = np.asarray(image)
    k = np.asarray(known, dtype=bool)
    if k.shape != img.shape[:2]:
        raise ValueError(f"known mask {k.shape} does not match the image {img.shape[:2]}")
    if k.all():
        return img.copy()
    work = img.astype(np.float64)
    if work.ndim == 2:
        work = work[..., None]
    if not k.any():
        fill = np.full_like(work, 128.0 if np.issubdtype(img.dtype, np.integer) else 0.5)
        return fill.reshape(img.shape).astype(img.dtype)
    filled = _push_pull(work * k[..., None], k.astype(np.float64))
    out = np.where(k[..., None], work, filled).reshape(img.shape)
    if np.issubdtype(img.dtype, np.integer):
        out = np.clip(np.round(out), np.iinfo(img.dtype).min, np.iinfo(img.dtype).max)
    return out.astype(img.dtype)


def _push_pull(weighted: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted-average values at every pixel: ``weighted`` (H x W x C, values x weight)
    and ``weight`` (H x W); holes take the value of the next coarser level."""
    h, w = weight.shape
    if h <= 1 and w <= 1 or weight.min() > 0:
        return weighted / np.maximum(weight, 1e-12)[..., None]
    ph, pw = h + h % 2, w + w % 2
    wv = np.zeros((ph, pw, weighted.shape[2]))
    ww = np.zeros((ph, pw))
    wv[:h, :w], ww[:h, :w] = weighted, weight
    coarse_v = wv.reshape(ph // 2, 2, pw // 2, 2, -1).sum(axis=(1, 3))
    coarse_w = ww.reshape(ph // 2, 2, pw // 2, 2).sum(axis=(1, 3))
    coarse = _push_pull(coarse_v, coarse_w)
    up = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)[:h, :w]
    own = weighted / np.maximum(weight, 1e-12)[..., None]
    return np.where(weight[..., None] > 0, own, up)
