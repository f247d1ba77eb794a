"""Head angles from the 478 landmarks: roll of the eye line, and yaw/pitch/roll of the head.

Frame: landmarks in pixels, x right, y down (image), z towards the camera (as
:mod:`facenormals3d.face.detect` returns them). Angles are degrees:

- ``roll``: direction of the eye line, from the subject's right eye (image left in an
  upright face) to the left eye, clockwise on screen from the image's x axis; 0 upright,
  90 when an upright photo was turned 90 degrees clockwise (the top of the head then
  points at the image's right), 180 upside down.
- ``yaw``: positive when the face turns towards the image's right (the subject's left).
- ``pitch``: positive when the face looks up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenormals3d.face.topology import EYE_CONTOURS

#: Forehead top and chin tip (mediapipe indices): the face's vertical axis.
FOREHEAD, CHIN = 10, 152
#: Nose tip and the two mouth corners.
NOSE_TIP, MOUTH_CORNERS = 1, (61, 291)


@dataclass(frozen=True)
class HeadAngles:
    """Head orientation in degrees (see the module doc for the signs)."""

    yaw: float
    """Turn left/right; about +-90 for a profile."""
    pitch: float
    """Nod up (+) or down (-)."""
    roll: float
    """In-plane angle of the eye line, in (-180, 180]."""

    def to_dict(self) -> dict[str, float]:
        return {"yaw_deg": round(self.yaw, 1), "pitch_deg": round(self.pitch, 1),
                "roll_deg": round(self.roll, 1)}


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres (x, y) of the subject's right and left eye contours (``N x 2+`` landmarks)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    right, left = (lm[list(set(upper + lower)), :2].mean(0) for upper, lower in EYE_CONTOURS)
    return right, left


def eye_line_roll(landmarks: np.ndarray) -> float:
    """In-plane angle (degrees) of the eye line of 478 landmarks (see the module doc)."""
    right, left = eye_centres(landmarks)
    d = left - right
    return float(np.degrees(np.arctan2(d[1], d[0])))


def roll_from_eyes(right_eye: np.ndarray, left_eye: np.ndarray) -> float:
    """The same angle from two eye points (e.g. the face detector's keypoints)."""
    d = np.asarray(left_eye, dtype=np.float64) - np.asarray(right_eye, dtype=np.float64)
    return float(np.degrees(np.arctan2(d[1], d[0])))


#: Mediapipe's fit pulls turned faces towards frontal: a true profile comes out at ~50
#: degrees of yaw (on the bundled test photos: profile 50, three-quarter 20-33). Its
#: depths are stretched by this factor before measuring yaw, which brings a
#: profile to ~70 and leaves small angles nearly unchanged (tan scales, not the angle).
DEPTH_GAIN = 2.0


def head_angles(landmarks: np.ndarray, depth_gain: float = DEPTH_GAIN) -> HeadAngles:
    """Yaw, pitch and roll of a head from its 478 x 3 landmarks.

    The head frame: ``u`` along the eye line (right eye -> left eye), ``v`` from forehead
    to chin made orthogonal to ``u``, and the facing direction ``n = u x v`` (towards the
    camera for a frontal face), with z multiplied by ``depth_gain`` (see
    :data:`DEPTH_GAIN`). A rough measure: good to ~10 degrees near frontal, worse for
    strong turns, where the landmarks themselves are a guess.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[1] != 3:
        raise ValueError(f"head angles need N x 3 landmarks, got shape {lm.shape}")
    n = _facing(lm * np.array([1.0, 1.0, depth_gain]))
    yaw = np.degrees(np.arctan2(n[0], n[2]))
    n = _facing(lm)
    pitch = np.degrees(np.arctan2(-n[1], np.hypot(n[0], n[2])))
    # Roll from the projected eye line, as the crop uses it (independent of yaw).
    return HeadAngles(yaw=float(yaw), pitch=float(pitch), roll=eye_line_roll(lm))


def _facing(lm: np.ndarray) -> np.ndarray:
    """Unit facing direction ``u x v`` of the head frame (see :func:`head_angles`)."""
    right = lm[list(set(EYE_CONTOURS[0][0] + EYE_CONTOURS[0][1]))].mean(0)
    left = lm[list(set(EYE_CONTOURS[1][0] + EYE_CONTOURS[1][1]))].mean(0)
    u = _unit(left - right)
    v = lm[CHIN] - lm[FOREHEAD]
    v = _unit(v - np.dot(v, u) * u)
    return np.cross(u, v)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n < 1e-9:
        raise ValueError("degenerate landmarks: coincident points")
    return v / n
