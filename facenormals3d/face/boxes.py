"""Where the face detector looks: the bounded-size pyramid of a photo, its tiles, quarter
turns, and the box arithmetic that merges what it finds.

Boxes are ``x0, y0, x1, y1`` float arrays in continuous pixel coordinates (pixel centres
at +0.5), points ``N x 2`` (x, y). A :class:`View` is one image the detector sees (a
shrunk photo, a padded one, or a tile of a pyramid level) with the map back to the photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass
class View:
    """One image given to the detector and how its pixels map to the photo's."""

    pixels: np.ndarray
    """h x w x 3 uint8."""
    name: str
    """Where it comes from (``whole``, ``padded``, ``L1 tile 336,0``), for reports."""
    offset: np.ndarray
    """2 float: the view's (0, 0) in level pixels."""
    scale: np.ndarray
    """2 float: level pixels per photo pixel along x and y."""

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """``N x 2`` view pixels -> photo pixels."""
        return (np.asarray(points, dtype=np.float64) + self.offset) / self.scale


class Pyramid:
    """A photo shrunk for detection: levels whose longer side starts at ``detect_side``
    (or the photo's own, when smaller) and halves while it exceeds ``tile_above``, plus a
    copy at most ``whole_side`` long for whole-photo passes. Built once per photo; memory
    and time do not grow with the photo beyond the first shrink."""

    def __init__(self, photo: np.ndarray, detect_side: int, whole_side: int, tile_above: int):
        self.photo_shape = photo.shape[:2]
        self._levels: list[tuple[np.ndarray, np.ndarray]] = []
        level = _shrink(photo, detect_side, fast=True)
        while True:
            self._levels.append((level, _scale(level, photo)))
            if max(level.shape[:2]) <= tile_above:
                break
            level = _shrink(level, max(level.shape[:2]) // 2)
        # The whole-photo copy: from the smallest level that is still big enough.
        source = next((lv for lv, _ in reversed(self._levels) if max(lv.shape[:2]) >= whole_side),
                      self._levels[0][0])
        whole = _shrink(source, whole_side)
        self._whole = (whole, _scale(whole, photo))
        self._tile_above = tile_above

    def views(self, tile: int, overlap: float, pad_fraction: float) -> Iterator[View]:
        """Whole photo, whole photo with a replicated border, then the tiles of every
        level longer than ``tile_above`` (finest first)."""
        whole, scale = self._whole
        yield View(whole, "whole", np.zeros(2), scale)
        pad = int(pad_fraction * max(whole.shape[:2]))
        padded = np.pad(whole, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        yield View(padded, "padded", np.array([-pad, -pad], np.float64), scale)
        for k, (level, scale) in enumerate(self._levels):
            h, w = level.shape[:2]
            if max(h, w) <= self._tile_above:
                continue
            for x0, y0, x1, y1 in tiles(w, h, tile, overlap):
                yield View(level[y0:y1, x0:x1], f"L{k} tile {x0},{y0}",
                           np.array([x0, y0], np.float64), scale)


def _shrink(image: np.ndarray, side: int, fast: bool = False) -> np.ndarray:
    """``image`` with its longer side at most ``side``, or itself: Pillow's antialiased
    bilinear resize, or with ``fast`` OpenCV's area average.

    The pyramid's first shrink, from a photo of any size, is the fast one: 8000 x 6000 ->
    2560 took ~0.35 s with Pillow (one core) and takes ~0.08 s with OpenCV (2 cores). The
    halvings and the whole-photo copy keep Pillow's smoother filter, with which the
    detector's recall on the shared photos was checked: OpenCV's area average there lost
    one face of the upside-down Trump/Hillary photo.
    """
    h, w = image.shape[:2]
    k = side / max(h, w)
    if k >= 1.0:
        return image
    size = (max(1, round(w * k)), max(1, round(h * k)))
    if fast:
        import cv2

        return cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA).reshape(
            size[1], size[0], *image.shape[2:])
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR, reducing_gap=2.0))


def _scale(level: np.ndarray, photo: np.ndarray) -> np.ndarray:
    return np.array([level.shape[1] / photo.shape[1], level.shape[0] / photo.shape[0]])


def tiles(w: int, h: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Overlapping ``tile``-sided squares (clipped to the image) covering ``w x h``."""
    step = max(1, int(tile * (1.0 - overlap)))

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        return sorted(set(list(range(0, n - tile, step)) + [n - tile]))

    return [(x, y, min(x + tile, w), min(y + tile, h)) for y in starts(h) for x in starts(w)]


def grey(image: np.ndarray) -> np.ndarray:
    """``H x W x 3`` uint8 RGB -> its luminance (ITU-R BT.601, OpenCV's weights) in all
    three channels, ``H x W x 3`` uint8."""
    import cv2

    return cv2.cvtColor(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def turn_image(image: np.ndarray, turn: int) -> np.ndarray:
    """``image`` turned ``turn`` degrees clockwise (a multiple of 90)."""
    if turn % 90:
        raise ValueError(f"turns must be multiples of 90 degrees, got {turn}")
    return np.rot90(image, k=-(turn // 90) % 4)


def unturn_points(points: np.ndarray, turn: int, shape: tuple[int, ...]) -> np.ndarray:
    """Points (``N x 2``) of the image turned ``turn`` degrees clockwise -> the same points
    in the unturned image of ``shape`` (h, w, ...)."""
    h, w = shape[:2]
    p = np.asarray(points, dtype=np.float64)
    x, y = p[:, 0], p[:, 1]
    turn %= 360
    if turn == 0:
        return p.copy()
    if turn == 90:
        return np.stack([y, h - x], axis=1)
    if turn == 180:
        return np.stack([w - x, h - y], axis=1)
    if turn == 270:
        return np.stack([w - y, x], axis=1)
    raise ValueError(f"turns must be multiples of 90 degrees, got {turn}")


def normalised(box: np.ndarray) -> np.ndarray:
    """The same box with x0 <= x1 and y0 <= y1 (a turned box's corners swap)."""
    b = np.asarray(box, dtype=np.float64)
    return np.array([min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])])


def points_box(points: np.ndarray) -> np.ndarray:
    """Tightest box of ``N x 2+`` points."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    return np.concatenate([p.min(0), p.max(0)])


def area(box: np.ndarray) -> float:
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def intersection(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return float(ix * iy)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes (0 when both are empty)."""
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def containment(inner: np.ndarray, outer: np.ndarray) -> float:
    """Share of ``inner``'s area that lies inside ``outer`` (0 for an empty ``inner``)."""
    a = area(inner)
    return intersection(inner, outer) / a if a > 0 else 0.0
