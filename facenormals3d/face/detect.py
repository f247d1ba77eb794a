"""Finding faces and their 478 landmarks with mediapipe 0.10.21's bundled models (offline).

Two passes:

1. Full-range face detection (``model_selection=1``) on the whole photo and, for photos
   larger than :attr:`DetectSettings.tile_above`, on overlapping tiles too, so small faces
   in group photos are found. Boxes are merged by non-maximum suppression.
2. Face mesh with refined landmarks (478 points incl. irises) on a square crop around each
   detection, upscaled or downscaled to :attr:`DetectSettings.mesh_input` pixels.

Landmarks are returned in photo pixels: x right, y down (image convention), and z in
pixels pointing *towards the camera* (mediapipe's z points away; we flip it), relative to
the head's centre, at the photo's pixel scale.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from facenormals3d.errors import NoFaceError
from facenormals3d.face.topology import N_LANDMARKS


@dataclass(frozen=True)
class DetectSettings:
    """How faces are searched for."""

    min_score: float = 0.5
    """Minimum face-detection confidence."""
    max_faces: int = 32
    """Stop after this many faces (largest first)."""
    tile_above: int = 640
    """Photos whose longer side exceeds this many pixels are also searched tile by tile."""
    tile_size: int = 480
    """Side of those tiles in pixels (the detector sees 192 px, so a 480 px tile keeps a
    60 px face about 24 px tall, near the smallest it finds reliably)."""
    tile_overlap: float = 0.3
    """Overlap between neighbouring tiles, as a fraction of the tile side."""
    mesh_context: float = 1.8
    """Side of the square given to the landmark model, as a multiple of the detection box."""
    mesh_input: int = 384
    """Pixels of that square after resizing (the landmark model prefers faces ~100+ px)."""
    nms_iou: float = 0.3
    """Boxes overlapping more than this are the same face."""
    pad_fraction: float = 0.25
    """Border added (as a fraction of the longer side) for a second full-photo pass that
    finds faces filling the whole frame."""
    silence_native_logs: bool = True
    """Hide the C++ log lines mediapipe/TFLite print straight to file descriptor 2."""


@dataclass
class DetectedFace:
    """One face found in a photo."""

    landmarks: np.ndarray
    """478 x 3 float64: x, y photo pixels (y down), z pixels towards the camera."""
    box: np.ndarray
    """4 float64: x0, y0, x1, y1 of the detection box in photo pixels."""
    score: float
    """Detection confidence in [0, 1]."""
    extras: dict = field(default_factory=dict)
    """How it was found (tile, crop scale), for reports."""


class FaceFinder:
    """Holds the mediapipe graphs for one batch of photos (use as a context manager)."""

    def __init__(self, settings: DetectSettings = DetectSettings()):
        from mediapipe.python.solutions import face_detection, face_mesh

        self.settings = settings
        with self._native_logs():
            self._detector = face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=settings.min_score)
            self._mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                            refine_landmarks=True, min_detection_confidence=0.3)
            if settings.silence_native_logs:
                # TFLite logs its set-up from worker threads shortly after the first
                # inference; run it now and give those threads a moment while muted.
                blank = np.full((64, 64, 3), 128, np.uint8)
                self._detector.process(blank)
                self._mesh.process(blank)
                time.sleep(0.2)

    def _native_logs(self):
        return _silenced_fd2() if self.settings.silence_native_logs else contextlib.nullcontext()

    def __enter__(self) -> "FaceFinder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._detector.close()
        self._mesh.close()

    def find(self, image: np.ndarray, source: str = "<array>") -> list[DetectedFace]:
        """All faces in ``image`` (``H x W x 3`` uint8 RGB), largest first.

        Raises :class:`NoFaceError` naming ``source`` when there is none.
        """
        boxes = self.detect_boxes(image)
        faces: list[DetectedFace] = []
        for box, score, tile in boxes:
            lm = self._landmarks_in_box(image, box)
            if lm is None:
                continue
            lm_box = np.array([*lm[:, :2].min(0), *lm[:, :2].max(0)])
            if any(_iou(lm_box, _landmark_box(f.landmarks)) > self.settings.nms_iou for f in faces):
                continue
            faces.append(DetectedFace(landmarks=lm, box=box, score=score, extras={"tile": tile}))
            if len(faces) >= self.settings.max_faces:
                break
        if not faces:
            raise NoFaceError(source, "no face found")
        return faces

    def detect_boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float, str]]:
        """Detection boxes ``(x0, y0, x1, y1)`` in photo pixels with scores, after NMS, largest first."""
        h, w = image.shape[:2]
        found = [(b, s, "full") for b, s in self._detect(image, 0, 0)]
        # A face that fills the frame (tight crops, selfies) is often missed: look again
        # with a replicated border around the photo.
        pad = int(self.settings.pad_fraction * max(h, w))
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        found += [(b, s, "padded") for b, s in self._detect(padded, -pad, -pad)]
        if max(h, w) > self.settings.tile_above:
            for x0, y0, x1, y1 in _tiles(w, h, self.settings.tile_size, self.settings.tile_overlap):
                tile = np.ascontiguousarray(image[y0:y1, x0:x1])
                found += [(b, s, f"tile {x0},{y0}") for b, s in self._detect(tile, x0, y0)]
        found.sort(key=lambda t: -t[1])
        kept: list[tuple[np.ndarray, float, str]] = []
        for box, score, tile in found:
            if all(_iou(box, k[0]) <= self.settings.nms_iou for k in kept):
                kept.append((box, score, tile))
        kept.sort(key=lambda t: -(t[0][2] - t[0][0]) * (t[0][3] - t[0][1]))
        return kept

    def _detect(self, image: np.ndarray, ox: int, oy: int) -> list[tuple[np.ndarray, float]]:
        h, w = image.shape[:2]
        with self._native_logs():
            result = self._detector.process(image)
        out = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            box = np.array([rb.xmin * w + ox, rb.ymin * h + oy,
                            (rb.xmin + rb.width) * w + ox, (rb.ymin + rb.height) * h + oy])
            out.append((box, float(det.score[0])))
        return out

    def _landmarks_in_box(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        from facenormals3d.face.crop import CropTransform, warp_to_crop

        s = self.settings
        cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
        side = s.mesh_context * max(box[2] - box[0], box[3] - box[1])
        k = s.mesh_input / side
        crop = CropTransform(np.array([[k, 0, s.mesh_input / 2 - k * cx],
                                       [0, k, s.mesh_input / 2 - k * cy]]), s.mesh_input)
        patch = warp_to_crop(image, crop)
        with self._native_logs():
            result = self._mesh.process(patch)
        if not result.multi_face_landmarks:
            return None
        pts = result.multi_face_landmarks[0].landmark
        if len(pts) != N_LANDMARKS:
            return None
        # mediapipe: x, y normalised to the patch; z ~ x's scale, negative towards the camera.
        lm = np.array([[p.x * s.mesh_input, p.y * s.mesh_input, -p.z * s.mesh_input] for p in pts])
        return crop.to_photo(lm)


@contextlib.contextmanager
def _silenced_fd2():
    """Point file descriptor 2 at /dev/null for the block (native code ignores sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _landmark_box(lm: np.ndarray) -> np.ndarray:
    return np.array([*lm[:, :2].min(0), *lm[:, :2].max(0)])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _tiles(w: int, h: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Square-ish overlapping tiles covering a ``w x h`` photo."""
    step = max(1, int(tile * (1.0 - overlap)))

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        out = list(range(0, n - tile, step)) + [n - tile]
        return sorted(set(out))

    return [(x, y, min(x + tile, w), min(y + tile, h)) for y in starts(h) for x in starts(w)]
