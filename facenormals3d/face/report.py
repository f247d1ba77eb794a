"""What the commands say about the faces of one photo: per-face ``quality`` and ``rotation``
entries, ``skipped_faces``, one warning line per likely guess or skipped face, and the
overlay picture. Shared by ``faces``, ``normals`` and ``reconstruct``."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from facenormals3d.face.align import AlignedFace
from facenormals3d.face.detect import FaceSearch


def rotation_entry(face: AlignedFace, search: FaceSearch | None = None) -> dict[str, Any]:
    """How the face was turned: EXIF (applied when the photo was read), the quarter turn
    the detector found it at, and the in-plane roll the crop undoes."""
    entry = {"exif_orientation": "applied when reading the photo",
             "detected_at_turn_deg": int(face.rotation),
             "crop_roll_deg": round(face.roll_deg, 1)}
    if search is not None:
        entry["turns_searched_deg"] = list(search.rotations_tried)
        entry["grey_searched"] = bool(search.grey)
    return entry


def face_entry(face: AlignedFace, search: FaceSearch | None = None) -> dict[str, Any]:
    """The ``quality`` and ``rotation`` entries of one face for report.json / --json."""
    out: dict[str, Any] = {"rotation": rotation_entry(face, search)}
    if face.quality is not None:
        out["quality"] = face.quality.to_dict()
    return out


def skipped_entries(search: FaceSearch) -> list[dict[str, Any]]:
    """``skipped_faces``: box, score and reason of each face left out."""
    return [s.to_dict() for s in search.skipped]


def log_warnings(log: logging.Logger, source: str, faces: list[AlignedFace],
                 search: FaceSearch) -> None:
    """One warning line per likely guess and per skipped face (stderr via logging)."""
    for k, face in enumerate(faces):
        if face.quality is not None and face.quality.warnings:
            log.warning("%s: face %d is likely a guess (%s); kept", source, k,
                        ", ".join(face.quality.warnings))
    for s in search.skipped:
        box = ", ".join(f"{v:.0f}" for v in s.box)
        log.warning("%s: face at [%s] (score %.2f) left out: %s", source, box, s.score, s.reason)


def overlay(photo: np.ndarray, faces: list[AlignedFace], search: FaceSearch) -> np.ndarray:
    """The photo with every face's box, number, landmarks, yaw and warnings, and the
    skipped faces in red (:func:`facenormals3d.face.overlay.face_overlay`)."""
    from facenormals3d.face.boxes import points_box
    from facenormals3d.face.overlay import FaceMark, face_overlay

    marks = []
    for k, face in enumerate(faces):
        q = face.quality
        label = f"#{k}" + (f" yaw {int(round(q.yaw_deg)):+d}" if q is not None else "")
        marks.append(FaceMark(face.landmarks_photo, label, box=points_box(face.landmarks_photo),
                              warnings=list(q.warnings) if q is not None else []))
    return face_overlay(photo, marks, [(s.box, s.reason) for s in search.skipped])
