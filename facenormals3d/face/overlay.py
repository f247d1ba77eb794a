"""Pictures of what the front end found: each face's box, number, landmarks, yaw and
warnings drawn on the photo, with labels sized to the photo so they stay readable."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facenormals3d.face.topology import FACE_OVAL

#: Overlays are drawn at most this many pixels on the longer side.
MAX_OVERLAY_SIDE = 2560
#: Label text height as a fraction of the overlay's longer side (at least 14 px).
LABEL_FRACTION = 1 / 60


@dataclass
class FaceMark:
    """What to draw for one face."""

    landmarks: np.ndarray
    """478 x 2+ photo pixels."""
    label: str
    """First label line, e.g. ``#0 yaw +12``."""
    box: np.ndarray | None = None
    """x0, y0, x1, y1 photo pixels (default: the landmarks' box)."""
    warnings: list[str] = field(default_factory=list)
    """Drawn under the label, in orange."""


def landmark_overlay(image: np.ndarray, landmark_sets: list[np.ndarray],
                     labels: list[str] | None = None) -> np.ndarray:
    """Photo (``H x W x 3`` uint8) with each face's landmarks, oval and a label."""
    marks = [FaceMark(lm, labels[i] if labels else f"#{i}") for i, lm in enumerate(landmark_sets)]
    return face_overlay(image, marks)


def face_overlay(image: np.ndarray, marks: list[FaceMark],
                 skipped: list[tuple[np.ndarray, str]] = ()) -> np.ndarray:
    """Photo with every face of ``marks`` drawn (box, oval, landmarks, label, warnings)
    and each skipped ``(box, reason)`` as a red box; at most :data:`MAX_OVERLAY_SIDE` px."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = image.shape[:2]
    k = min(1.0, MAX_OVERLAY_SIDE / max(h, w))
    if k < 1.0:
        import cv2

        # Shrunk from the array: Pillow's fromarray would first copy a 48 MP photo into a
        # 4-byte-per-pixel image (192 MB).
        image = cv2.resize(np.ascontiguousarray(image), (max(1, round(w * k)), max(1, round(h * k))),
                           interpolation=cv2.INTER_AREA)
    img = Image.fromarray(image)
    draw = ImageDraw.Draw(img)
    text_px = max(14, round(max(img.size) * LABEL_FRACTION))
    font = ImageFont.load_default(size=text_px)
    line = max(1, text_px // 8)
    for mark in marks:
        pts = np.asarray(mark.landmarks)[:, :2] * k
        box = (np.asarray(mark.box) if mark.box is not None
               else np.concatenate([pts.min(0) / k, pts.max(0) / k])) * k
        face_px = float(np.ptp(pts[:, 0]))
        r = max(0.8, face_px / 250.0)
        for x, y in pts[::2]:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(0, 255, 120))
        oval = [tuple(p) for p in pts[list(FACE_OVAL)]]
        draw.line(oval + [oval[0]], fill=(255, 220, 0), width=line)
        colour = (255, 150, 0) if mark.warnings else (40, 200, 255)
        draw.rectangle([tuple(box[:2]), tuple(box[2:])], outline=colour, width=line)
        _label(draw, font, (box[0], box[1]), [mark.label] + mark.warnings,
               [(255, 255, 255)] + [(255, 170, 40)] * len(mark.warnings), text_px)
    for box, reason in skipped:
        b = np.asarray(box, dtype=np.float64) * k
        draw.rectangle([tuple(b[:2]), tuple(b[2:])], outline=(255, 40, 40), width=line)
        _label(draw, font, (b[0], b[1]), [f"skipped: {reason}"], [(255, 90, 90)], text_px)
    return np.asarray(img)


def _label(draw, font, anchor: tuple[float, float], lines: list[str], colours: list[tuple],
           text_px: int) -> None:
    """Lines of text on a dark band just above ``anchor`` (below it at the photo's top)."""
    step = round(text_px * 1.2)
    height = step * len(lines) + 4
    x = max(0.0, anchor[0])
    y = anchor[1] - height if anchor[1] - height >= 0 else anchor[1] + 2
    width = max(draw.textlength(t, font=font) for t in lines) + 8
    draw.rectangle([x, y, x + width, y + height], fill=(0, 0, 0))
    for i, (text, colour) in enumerate(zip(lines, colours)):
        draw.text((x + 4, y + 2 + i * step), text, fill=colour, font=font)
