"""Colour maps for error pictures, a colour scale bar, and text labels on images.

One error colour map is used everywhere (normal heat maps, scan-error PLYs, rendered error
pictures) so a colour means the same number in every report: blue = small error through
cyan, green, yellow to red = at or above the scale's maximum. Invalid values (NaN) are drawn
in a neutral grey.
"""

from __future__ import annotations

import numpy as np

#: Anchor colours (RGB in [0, 1]) of the error map, evenly spaced from 0 to 1.
ERROR_ANCHORS = np.array([
    [0.07, 0.12, 0.50],
    [0.10, 0.50, 0.90],
    [0.25, 0.80, 0.55],
    [0.95, 0.85, 0.20],
    [0.85, 0.12, 0.10],
])

#: Colour of NaN values.
INVALID_RGB = (150, 150, 150)


def error_colors(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Map ``values`` (any shape) to ``uint8`` RGB (shape ``+ (3,)``); clipped to [vmin, vmax]."""
    v = np.asarray(values, dtype=np.float64)
    span = max(float(vmax) - float(vmin), 1e-12)
    t = np.clip((np.nan_to_num(v, nan=vmin) - vmin) / span, 0.0, 1.0)
    pos = t * (len(ERROR_ANCHORS) - 1)
    i0 = np.minimum(np.floor(pos).astype(int), len(ERROR_ANCHORS) - 2)
    w = (pos - i0)[..., None]
    rgb = (1.0 - w) * ERROR_ANCHORS[i0] + w * ERROR_ANCHORS[i0 + 1]
    out = np.round(rgb * 255.0).astype(np.uint8)
    out[~np.isfinite(v)] = INVALID_RGB
    return out


def _font(px: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def draw_text(image: np.ndarray, text: str, xy: tuple[int, int], *, px: int = 14,
              color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Return a copy of ``image`` (``H x W x 3`` uint8) with ``text`` at pixel ``xy`` (top-left)."""
    from PIL import Image, ImageDraw

    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    ImageDraw.Draw(pil).text(xy, text, fill=tuple(color), font=_font(px))
    return np.array(pil)


def colorbar(height: int, vmin: float, vmax: float, label: str = "", *, width: int = 90,
             ticks: int = 5, background: int = 255) -> np.ndarray:
    """A vertical scale bar ``height x width x 3`` uint8: the map (max at the top) and tick labels.

    The top tick reads ``>= vmax`` because larger values are clipped to the top colour.
    """
    height = max(int(height), 64)
    img = np.full((height, width, 3), background, dtype=np.uint8)
    top, bottom = 22, height - 12
    ramp = np.linspace(vmax, vmin, bottom - top)
    img[top:bottom, 8:26] = error_colors(ramp, vmin, vmax)[:, None, :]
    if label:
        img = draw_text(img, label, (4, 2), px=12)
    for k in range(ticks):
        frac = k / max(ticks - 1, 1)
        value = vmax - frac * (vmax - vmin)
        y = int(round(top + frac * (bottom - top - 1)))
        img[y, 26:31] = 0
        text = f"{value:.3g}" if k else f">={value:.3g}"
        img = draw_text(img, text, (33, max(y - 7, 0)), px=12)
    return img


def with_colorbar(image: np.ndarray, vmin: float, vmax: float, label: str = "") -> np.ndarray:
    """``image`` (``H x W x 3`` uint8) with a :func:`colorbar` of the same height on its right."""
    img = np.asarray(image, dtype=np.uint8)
    bar = colorbar(img.shape[0], vmin, vmax, label)
    if bar.shape[0] != img.shape[0]:  # tiny images: pad the picture to the bar's height
        pad = np.full((bar.shape[0] - img.shape[0], img.shape[1], 3), 255, dtype=np.uint8)
        img = np.concatenate([img, pad], axis=0)
    return np.concatenate([img, bar], axis=1)
