"""How much to trust one face: the numbers behind a result, and warnings when it is a guess.

A face is never refused for these; the warnings say that its mesh is likely a guess:
a near-profile (the landmark model invents the hidden side), a face too small to show
detail, strong blur (motion or focus), or a landmark fit the face mesh model itself
doubts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facenormals3d.face.crop import CropTransform
from facenormals3d.face.pose import head_angles

#: Side (pixels) of the image the blur measure looks at, at most (never upsampled).
BLUR_SIDE = 256


@dataclass(frozen=True)
class QualitySettings:
    """Where a face becomes a likely guess."""

    profile_yaw_deg: float = 65.0
    """|yaw| beyond this is a near-profile (measured yaw; ~70 degrees true, see
    :data:`facenormals3d.face.pose.DEPTH_GAIN`)."""
    min_face_px: float = 64.0
    """Faces smaller than this (photo pixels, forehead to chin or cheek to cheek)."""
    max_blur: float = 0.7
    """Blur measure above this is strong blur."""
    min_landmark_confidence: float = 0.8
    """Presence scores below this are low landmark confidence."""


@dataclass
class FaceQuality:
    """Numbers to judge one face by (``quality`` in report.json and ``--json``)."""

    detection_score: float
    """Face detector confidence in [0, 1] (0: found by the face mesh alone, no detector)."""
    landmark_confidence: float
    """The face mesh model's presence score on the fitted landmarks, [0, 1]."""
    yaw_deg: float
    """Head turn, degrees; + towards the image's right (see :mod:`facenormals3d.face.pose`)."""
    pitch_deg: float
    """Head nod, degrees; + looking up."""
    roll_deg: float
    """In-plane angle of the eye line in the photo, degrees (the crop undoes it)."""
    blur: float
    """Blur measure in [0, 1] at the face's own resolution: ~0.2-0.4 sharp, higher blurrier."""
    face_px: float
    """Face size in photo pixels: longer side of the landmarks' upright box."""
    warnings: list[str] = field(default_factory=list)
    """Why the result is likely a guess (empty when it is not)."""

    def to_dict(self) -> dict:
        return {"detection_score": round(self.detection_score, 3),
                "landmark_confidence": round(self.landmark_confidence, 3),
                "yaw_deg": round(self.yaw_deg, 1), "pitch_deg": round(self.pitch_deg, 1),
                "roll_deg": round(self.roll_deg, 1), "blur": round(self.blur, 3),
                "face_px": round(self.face_px, 1), "likely_guess": bool(self.warnings),
                "warnings": list(self.warnings)}


def assess_face(photo: np.ndarray, landmarks: np.ndarray, transform: CropTransform,
                detection_score: float, landmark_confidence: float,
                settings: QualitySettings = QualitySettings()) -> FaceQuality:
    """Quality of a face given its photo (``H x W x 3`` uint8), 478 x 3 photo landmarks
    and aligned crop transform (whose square the blur is measured in)."""
    from facenormals3d.face.mask import face_mask
    from facenormals3d.face.texture import sample_face

    angles = head_angles(landmarks)
    size = face_size_px(landmarks, angles.roll)
    native = transform.size / transform.scale
    side = int(max(16, min(BLUR_SIDE, native)))
    view = sample_face(photo, transform, side)
    mask = face_mask(view.transform.to_crop(landmarks), (side, side)) & view.known
    blur = blur_measure(view.pixels.mean(axis=2), mask)
    q = FaceQuality(detection_score=float(detection_score),
                    landmark_confidence=float(landmark_confidence), yaw_deg=angles.yaw,
                    pitch_deg=angles.pitch, roll_deg=angles.roll, blur=blur, face_px=size)
    q.warnings = quality_warnings(q, settings)
    return q


def quality_warnings(q: FaceQuality, settings: QualitySettings = QualitySettings()) -> list[str]:
    """Short reasons the face is likely a guess (see :class:`QualitySettings`)."""
    out = []
    if abs(q.yaw_deg) > settings.profile_yaw_deg:
        out.append(f"near-profile (yaw {q.yaw_deg:+.0f} deg)")
    if q.face_px < settings.min_face_px:
        out.append(f"small face ({q.face_px:.0f} px)")
    if q.blur > settings.max_blur:
        out.append(f"strong blur ({q.blur:.2f})")
    if q.detection_score <= 0.0:
        out.append("no detector found it (face mesh on the whole photo)")
    if q.landmark_confidence < settings.min_landmark_confidence:
        out.append(f"low landmark confidence ({q.landmark_confidence:.2f})")
    return out


def face_size_px(landmarks: np.ndarray, roll_deg: float) -> float:
    """Longer side of the landmarks' box in the face's upright frame, photo pixels."""
    a = np.radians(roll_deg)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # turn by -roll
    up = np.asarray(landmarks, dtype=np.float64)[:, :2] @ rot.T
    return float(np.ptp(up, axis=0).max())


def blur_measure(gray: np.ndarray, mask: np.ndarray | None = None) -> float:
    """No-reference blur in [0, 1] (Crete-Roffet et al. 2007): how little the image's
    neighbour differences drop when it is blurred again with a 9-tap box. 0 = sharp,
    1 = fully blurred; the larger of the horizontal and vertical values, over ``mask``.

    Args:
        gray: ``H x W`` float (any range).
        mask: ``H x W`` bool where to measure (default everywhere).
    """
    from scipy.ndimage import uniform_filter1d

    g = np.asarray(gray, dtype=np.float64)
    m = np.ones(g.shape, bool) if mask is None else np.asarray(mask, bool)
    worst = 0.0
    for axis in (0, 1):
        blurred = uniform_filter1d(g, 9, axis=axis, mode="nearest")
        d_img = np.abs(np.diff(g, axis=axis))
        d_blur = np.abs(np.diff(blurred, axis=axis))
        keep = (m[1:, :] & m[:-1, :]) if axis == 0 else (m[:, 1:] & m[:, :-1])
        s_img = float(d_img[keep].sum())
        if s_img <= 1e-9:
            return 1.0
        s_var = float(np.maximum(0.0, d_img - d_blur)[keep].sum())
        worst = max(worst, (s_img - s_var) / s_img)
    return worst
