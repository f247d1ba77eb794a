"""Pictures of what the front end found: landmarks and face outlines drawn on the photo."""

from __future__ import annotations

import numpy as np

from facenormals3d.face.topology import FACE_OVAL

#: Overlays are drawn at most this many pixels on the longer side.
MAX_OVERLAY_SIDE = 1600


def landmark_overlay(image: np.ndarray, landmark_sets: list[np.ndarray],
                     labels: list[str] | None = None) -> np.ndarray:
    """Photo (``H x W x 3`` uint8) with each face's landmarks as dots and its oval outlined."""
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    k = min(1.0, MAX_OVERLAY_SIDE / max(h, w))
    img = Image.fromarray(image).resize((max(1, round(w * k)), max(1, round(h * k))))
    draw = ImageDraw.Draw(img)
    for i, lm in enumerate(landmark_sets):
        pts = np.asarray(lm)[:, :2] * k
        face_px = float(np.ptp(pts[:, 0]))
        r = max(0.8, face_px / 250.0)
        oval = [tuple(p) for p in pts[list(FACE_OVAL)]]
        draw.line(oval + [oval[0]], fill=(255, 220, 0), width=max(1, int(round(r * 1.5))))
        for x, y in pts:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(0, 255, 120))
        label = labels[i] if labels else f"face {i}"
        x0, y0 = pts[:, 0].min(), pts[:, 1].min()
        draw.text((x0, max(0, y0 - 12)), label, fill=(255, 40, 40))
    return np.asarray(img)
