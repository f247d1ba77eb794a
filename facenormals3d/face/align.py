"""From a detected face to the aligned 256 x 256 crop the rest of the pipeline works in.

The crop is roll-normalised: it is turned with the face so the eye line is horizontal
whatever the face's in-plane angle in the photo (:func:`facenormals3d.face.pose.eye_line_roll`);
:class:`~facenormals3d.face.crop.CropTransform` maps it back. Crop pixels outside the photo
are filled from the known ones (:mod:`facenormals3d.face.texture`), never black.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenormals3d.face.crop import CropSettings, CropTransform, crop_from_points
from facenormals3d.face.detect import DetectedFace, FaceSearch
from facenormals3d.face.mask import face_mask
from facenormals3d.face.pose import eye_line_roll
from facenormals3d.face.quality import FaceQuality, QualitySettings, assess_face
from facenormals3d.face.texture import sample_face
from facenormals3d.face.topology import CROP_POINTS_MEDIAPIPE


@dataclass
class AlignedFace:
    """One face, cropped and aligned, with everything needed to map results back."""

    crop: np.ndarray
    """S x S x 3 uint8 RGB crop of the photo, face upright; outside-photo pixels filled."""
    transform: CropTransform
    """Photo pixels <-> crop pixels (a similarity: scale, rotation by the roll, shift)."""
    landmarks_photo: np.ndarray
    """478 x 3 float64 photo pixels (x right, y down, z px towards the camera)."""
    landmarks_crop: np.ndarray
    """478 x 3 float64 in crop pixels (same axes; z scaled with the crop)."""
    mask: np.ndarray
    """S x S bool face mask in the crop."""
    score: float
    """Detection confidence."""
    box: np.ndarray
    """Detection box x0, y0, x1, y1 in photo pixels."""
    crop_known: np.ndarray | None = None
    """S x S bool: crop pixels inside the photo (the rest of ``crop`` is filled)."""
    photo: np.ndarray | None = None
    """The full-resolution photo (H x W x 3 uint8, shared, not copied): textures are
    sampled from it through ``transform``
    (:func:`facenormals3d.face.texture.face_texture`)."""
    quality: FaceQuality | None = None
    """Detection score, landmark confidence, head angles, blur, size and warnings."""
    rotation: int = 0
    """Clockwise quarter turn (degrees) of the photo in which the face was detected."""

    @property
    def roll_deg(self) -> float:
        """The face's in-plane angle in the photo, undone by the crop (degrees)."""
        return self.transform.roll_deg


def face_crop(landmarks: np.ndarray, settings: CropSettings = CropSettings()) -> CropTransform:
    """The crop ``reconstruct`` makes of a face with these ``478 x 2`` (or ``x 3``) photo-pixel
    landmarks: the shared crop rule on :data:`CROP_POINTS_MEDIAPIPE`, levelled by the eye line."""
    return crop_from_points(landmarks[list(CROP_POINTS_MEDIAPIPE), :2], settings, eye_line_roll(landmarks))


def align_face(image: np.ndarray, face: DetectedFace, settings: CropSettings = CropSettings(),
               quality: QualitySettings = QualitySettings()) -> AlignedFace:
    """Crop ``image`` (``H x W x 3`` uint8) around ``face`` with the shared crop rule,
    turned so the face is upright (:func:`face_crop`), and assess its quality."""
    transform = face_crop(face.landmarks, settings)
    lm_crop = transform.to_crop(face.landmarks)
    view = sample_face(image, transform)
    return AlignedFace(crop=view.pixels, transform=transform,
                       landmarks_photo=face.landmarks, landmarks_crop=lm_crop,
                       mask=face_mask(lm_crop, (settings.size, settings.size)) & view.known,
                       score=face.score, box=face.box, crop_known=view.known, photo=image,
                       quality=assess_face(image, face.landmarks, transform, face.score,
                                           face.presence, quality),
                       rotation=face.rotation)


def align_all(finder, image: np.ndarray, source: str = "<array>") -> tuple[list[tuple[AlignedFace, dict]], "FaceSearch"]:
    """Detect and align every face of ``image`` with ``finder``
    (:class:`~facenormals3d.face.detect.FaceFinder`): ``([(face, timings), ...], search)``
    largest face first; ``timings`` holds each face's share of ``detect`` and its ``align``
    seconds, ``search`` the skipped faces and turns searched (for reports).

    Raises:
        NoFaceError: no face passed the checks.
    """
    import time

    from facenormals3d.errors import NoFaceError

    t0 = time.perf_counter()
    search = finder.search(image)
    if not search.faces:
        raise NoFaceError(source, "no face found" + (
            f" ({len(search.skipped)} detection(s) failed the landmark checks)" if search.skipped else ""))
    t_detect = (time.perf_counter() - t0) / len(search.faces)
    out = []
    for det in search.faces:
        t1 = time.perf_counter()
        face = align_face(image, det)
        out.append((face, {"detect": t_detect, "align": time.perf_counter() - t1}))
    return out, search
