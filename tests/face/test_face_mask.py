import numpy as np

from facenormals3d.face.mask import face_mask, mouth_opening_px, polygon_mask
from facenormals3d.face.topology import FACE_OVAL, LIPS_INNER


def test_polygon_mask_uses_pixel_centres():
    square = np.array([[2.0, 2.0], [6.0, 2.0], [6.0, 6.0], [2.0, 6.0]])
    m = polygon_mask(square, (10, 10))
    # Pixel centres 2.5 .. 5.5 lie inside: rows/cols 2..5 (4 x 4 pixels).
    assert m.sum() == 16 and m[2:6, 2:6].all()


def _synthetic_landmarks(mouth_gap: float) -> np.ndarray:
    """Oval on a circle of radius 100 around (128, 128); inner lips an ellipse."""
    lm = np.zeros((478, 3))
    lm[:, :2] = 128.0
    ang = np.linspace(-np.pi / 2, 1.5 * np.pi, len(FACE_OVAL), endpoint=False)
    lm[list(FACE_OVAL), 0] = 128 + 100 * np.cos(ang)
    lm[list(FACE_OVAL), 1] = 128 + 100 * np.sin(ang)
    t = np.linspace(np.pi, -np.pi, len(LIPS_INNER), endpoint=False)  # 78 at the right corner
    lm[list(LIPS_INNER), 0] = 128 - 30 * np.cos(t)
    lm[list(LIPS_INNER), 1] = 180 + mouth_gap * np.sin(t)
    return lm


def test_closed_mouth_is_kept_open_mouth_is_removed():
    closed = _synthetic_landmarks(0.5)
    open_ = _synthetic_landmarks(15.0)
    assert mouth_opening_px(closed) < 2.0 < mouth_opening_px(open_)
    m_closed = face_mask(closed, (256, 256))
    m_open = face_mask(open_, (256, 256))
    assert m_closed[180, 128] and not m_open[180, 128]
    disc = np.pi * 100 ** 2
    assert abs(m_closed.sum() - disc) / disc < 0.02
    assert abs((m_closed.sum() - m_open.sum()) - np.pi * 30 * 15) / (np.pi * 30 * 15) < 0.1
