"""From a detected face to the aligned 256 x 256 crop the rest of the pipeline works in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenormals3d.face.crop import CropSettings, CropTransform, crop_from_points, warp_to_crop
from facenormals3d.face.detect import DetectedFace
from facenormals3d.face.mask import face_mask
from facenormals3d.face.topology import CROP_POINTS_MEDIAPIPE


@dataclass
class AlignedFace:
    """One face, cropped and aligned, with everything needed to map results back."""

    crop: np.ndarray
    """S x S x 3 uint8 RGB crop of the photo."""
    transform: CropTransform
    """Photo pixels <-> crop pixels."""
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


def align_face(image: np.ndarray, face: DetectedFace, settings: CropSettings = CropSettings()) -> AlignedFace:
    """Crop ``image`` (``H x W x 3`` uint8) around ``face`` with the shared crop rule."""
    transform = crop_from_points(face.landmarks[list(CROP_POINTS_MEDIAPIPE), :2], settings)
    lm_crop = transform.to_crop(face.landmarks)
    return AlignedFace(crop=warp_to_crop(image, transform), transform=transform,
                       landmarks_photo=face.landmarks, landmarks_crop=lm_crop,
                       mask=face_mask(lm_crop, (settings.size, settings.size)),
                       score=face.score, box=face.box)
