"""Finding faces and their 478 landmarks with mediapipe 0.10.21's bundled models (offline).

1. **Candidates.** Full-range face detection (``model_selection=1``) on a bounded-size
   pyramid of the photo: the whole photo shrunk to :attr:`DetectSettings.whole_side`
   (plain and with a replicated border, for faces that fill the frame), and overlapping
   :attr:`~DetectSettings.tile_size` tiles of levels whose longer side halves from
   :attr:`~DetectSettings.detect_side` down to :attr:`~DetectSettings.tile_above`. The two
   whole-photo views also go through the short-range model (``model_selection=0``,
   :attr:`DetectSettings.near_range`), made for faces that fill much of the frame. A 48 MP
   photo costs what a ``detect_side`` one does. Boxes are merged by non-maximum suppression.
2. **Landmarks.** Largest candidate first: a candidate mostly inside an accepted face is
   part of it and dropped. Otherwise the face mesh (478 points with irises) runs on a
   square patch of the full-resolution photo around the box, turned by the detector's eye
   keypoints so the face is upright whatever its in-plane angle (refitted once if the
   landmarks' own eye line disagrees).
3. **Checks.** A fit is accepted when the face mesh model's presence score on the
   landmarks' own region (:mod:`facenormals3d.face.presence`) is high enough, the
   detector's eye/nose/mouth keypoints agree with the landmarks, the landmarks' size
   matches the box, the geometry is a face's (eyes above nose above mouth above chin), and
   the detector prefers the landmarks' upright view of the face to the same view turned
   by 90, 180 or 270 degrees (an upside-down face can pass every other check).
4. **Rotations.** When nothing passes, a confident detection fails the checks, or a face
   lies on its side or upside down (:attr:`DetectSettings.turned_roll_deg`), the shrunk
   photo is searched again turned by 90, 180 and 270 degrees; what is found there is
   mapped back and fitted the same way.
5. **Grey.** When still nothing passes, or every face found lies on its side or upside
   down, the photo's luminance (as grey RGB) is searched the same way
   (:attr:`DetectSettings.grey_retry`): strongly coloured light hides faces from both
   models.
6. **Face mesh alone.** When still nothing passes, the face mesh runs on a square around
   the whole photo (:attr:`DetectSettings.whole_mesh_retry`), for a face filling the frame
   that neither detector finds; its fit is checked like the others (presence, face order,
   orientation), has detection score 0 and is reported as a likely guess.

Every confident detection is accounted for: a face beyond :attr:`DetectSettings.max_faces`
or a confident detection whose landmarks failed the checks is a :class:`SkippedFace`.

Landmarks are returned in photo pixels: x right, y down (image convention), and z in
pixels pointing *towards the camera* (mediapipe's z points away; we flip it), relative to
the head's centre, at the photo's pixel scale.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from facenormals3d.errors import NoFaceError
from facenormals3d.face import boxes
from facenormals3d.face.crop import CropTransform, square_crop, warp_to_crop
from facenormals3d.face.pose import eye_centres, eye_line_roll, roll_from_eyes
from facenormals3d.face.topology import N_LANDMARKS

#: Why a fit failed when the face mesh found no face in its square, or doubted it (the two
#: cases a wider square is tried for: :attr:`DetectSettings.mesh_context_retry`).
NO_LANDMARKS, LOW_PRESENCE = "no landmarks", "low landmark confidence"

#: Rotations tried when the upright search fails, degrees clockwise.
RETRY_ROTATIONS = (90, 180, 270)


@dataclass(frozen=True)
class DetectSettings:
    """How faces are searched for and checked."""

    min_score: float = 0.5
    """Minimum face-detection confidence of a candidate."""
    max_faces: int = 32
    """Keep at most this many faces (largest first); the rest are listed as skipped."""
    detect_side: int = 2560
    """Longer side of the finest pyramid level: bigger photos are shrunk to this for
    detection (landmarks still come from the full-resolution photo)."""
    whole_side: int = 640
    """Longer side of the copy used for the whole-photo passes."""
    tile_above: int = 640
    """Pyramid levels whose longer side exceeds this are also searched tile by tile."""
    tile_size: int = 480
    """Side of those tiles in pixels (the detector sees 192 px, so a 480 px tile keeps a
    60 px face about 24 px tall, near the smallest it finds reliably)."""
    tile_overlap: float = 0.3
    """Overlap between neighbouring tiles, as a fraction of the tile side."""
    pad_fraction: float = 0.25
    """Border added (as a fraction of the longer side) for a second whole-photo pass that
    finds faces filling the whole frame."""
    near_range: bool = True
    """Also run mediapipe's short-range detector on the two whole-photo views. The
    full-range one misses many close-ups: on 60 held-out synthetic face renders (face
    filling the 256 px frame, often cut by its edges) it found none in 18, where the
    short-range one found a face in all 18 (scores 0.65-0.91)."""
    nms_iou: float = 0.3
    """Boxes overlapping more than this are the same face."""
    contained: float = 0.6
    """A detection with at least this share of its area inside an accepted face is part
    of that face (an eye, a nose and mouth), not a face."""
    mesh_context: float = 1.8
    """Side of the square given to the landmark model, as a multiple of the detection box."""
    mesh_context_retry: float = 2.4
    """The same for a second try when the face mesh finds no face in the first square or
    doubts it (0 = no second try). On held-out synthetic close-ups that fill the frame (the
    square then reaches far past the photo's edges) it found 2 faces of 6 the first try missed."""
    mesh_input: int = 384
    """Pixels of that square after resizing (the landmark model prefers faces ~100+ px)."""
    min_presence: float = 0.5
    """Least face-presence score (the face mesh model's, on the landmarks' region)."""
    max_keypoint_error: float = 0.3
    """Largest distance between a detector keypoint (eyes, nose tip, mouth) and the same
    point of the landmarks, as a fraction of the landmark face's size."""
    orientation_context: float = 3.0
    """Side of the square (x the landmark face's size) the orientation check looks at."""
    orientation_margin: float = 0.08
    """A fit is misoriented when the detector scores the square turned by 90, 180 or 270
    degrees more than this above the landmarks' upright view."""
    size_ratio: tuple[float, float] = (0.5, 2.5)
    """Allowed landmark-face size / detection-box size."""
    report_score: float = 0.75
    """A detection at least this confident whose landmarks fail the checks is reported as
    a skipped face (and triggers the rotated search)."""
    turned_roll_deg: float = 45.0
    """A face found with its eye line turned beyond this also triggers the rotated search."""
    rotations: tuple[int, ...] = RETRY_ROTATIONS
    """Clockwise turns (degrees) tried when the upright search fails; () = never."""
    grey_retry: bool = True
    """Search the photo's grey copy when nothing passes in colour, or when every face found
    lies beyond :attr:`turned_roll_deg`; then, as for the turned search, an upright face is
    likely missing. On held-out render 27 of seed 777 the colour search finds only a small
    face in the background, upside down, and the grey copy the main face under neon light;
    no other of 150 renders (seeds 777-785) or of the shared real photos has only turned faces.
    On 90 held-out synthetic renders (seeds 777, 779, 781; many under coloured light) the
    nothing-found retry found 2 of the 9 faces the colour search missed, and no other count
    changed on the shared real photos. A photo with no face pays the search twice
    (measured: 0.13 -> 0.32 s for a 600 x 400 photo, 1.6 -> 3.2 s for 24 MP, with the face
    mesh retry below); a photo with an upright face, nothing."""
    whole_mesh_retry: float = 1.4
    """Side (x the photo's longer side) of the square around the photo's centre the face mesh
    runs on alone when neither search passes; 0 = never. On the 90 held-out synthetic renders
    it found 1 of the 7 faces both searches missed (a profile), on the rendered face; on 11
    scikit-image photos without a face it accepted nothing (a no-face photo costs 10-60 ms)."""
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
    presence: float = 1.0
    """Landmark confidence: the face mesh model's presence score in [0, 1]."""
    rotation: int = 0
    """Clockwise turn (degrees) of the photo in which the detector found the face."""
    extras: dict = field(default_factory=dict)
    """How it was found (pyramid level or tile, keypoint error), for reports."""

    @property
    def roll_deg(self) -> float:
        """In-plane angle of the eye line, degrees (see :mod:`facenormals3d.face.pose`)."""
        return eye_line_roll(self.landmarks)


@dataclass
class SkippedFace:
    """A face (or a confident detection) that is not among the results, and why."""

    box: np.ndarray
    """x0, y0, x1, y1 in photo pixels."""
    score: float
    """Detection confidence."""
    reason: str
    """One line: beyond --max-faces, or which landmark check failed."""

    def to_dict(self) -> dict:
        return {"box": [round(float(v), 1) for v in self.box], "score": round(self.score, 3),
                "reason": self.reason}


@dataclass
class FaceSearch:
    """Everything one search of a photo found."""

    faces: list[DetectedFace]
    """Accepted faces, largest first, at most ``max_faces``."""
    skipped: list[SkippedFace]
    """Faces left out and confident detections that failed the checks."""
    rotations_tried: list[int]
    """Clockwise turns searched, degrees (``[0]`` unless the upright search failed)."""
    grey: bool = False
    """Whether the photo's grey copy was searched too (:attr:`DetectSettings.grey_retry`)."""

    @property
    def rotation(self) -> int:
        """The turn most faces were detected at (0 when none)."""
        if not self.faces:
            return 0
        turns = [f.rotation for f in self.faces]
        return max(set(turns), key=turns.count)


@dataclass
class _Candidate:
    """A detector box in photo pixels with its six keypoints (subject's right eye, left
    eye, nose tip, mouth centre, right ear, left ear), x/y photo pixels."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray
    source: str
    rotation: int
    near: bool = False
    """Found by the short-range detector (:attr:`DetectSettings.near_range`)."""


class FaceFinder:
    """Holds the mediapipe graphs for one batch of photos (use as a context manager)."""

    def __init__(self, settings: DetectSettings = DetectSettings()):
        from mediapipe.python.solutions import face_detection, face_mesh

        from facenormals3d.face.presence import PresenceScorer

        self.settings = settings
        self._segmenter = None
        with self._native_logs():
            self._detector = face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=settings.min_score)
            self._near = face_detection.FaceDetection(
                model_selection=0, min_detection_confidence=settings.min_score) if settings.near_range else None
            self._mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                            refine_landmarks=True, min_detection_confidence=0.3)
            self._presence = PresenceScorer()
            if settings.silence_native_logs:
                # TFLite logs its set-up on the first inference; run it now while muted.
                # (A 0.2 s wait for late log lines from its worker threads used to follow;
                # none appeared without it in repeated runs, and it cost every cold start.)
                blank = np.full((64, 64, 3), 128, np.uint8)
                for detector in self._detectors():
                    detector.process(blank)
                self._mesh.process(blank)
                self._presence.score(blank)

    def _detectors(self) -> list:
        """The full-range detector, and the short-range one when it is on."""
        return [self._detector] + ([self._near] if self._near is not None else [])

    def _native_logs(self):
        return _silenced_fd2() if self.settings.silence_native_logs else contextlib.nullcontext()

    def __enter__(self) -> "FaceFinder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for detector in self._detectors():
            detector.close()
        self._mesh.close()
        self._presence.close()
        if self._segmenter is not None:
            self._segmenter.close()

    def person_mask(self, image: np.ndarray) -> np.ndarray:
        """``H x W`` float32 in [0, 1]: how likely each pixel of ``image`` (``H x W x 3`` uint8
        RGB, e.g. a 256 face crop) shows the person (face, hair, ears, neck, clothes) rather
        than the background. Mediapipe's selfie segmentation (general 256 x 256 model, bundled
        with the wheel), built on first use."""
        if self._segmenter is None:
            from mediapipe.python.solutions import selfie_segmentation

            with self._native_logs():
                self._segmenter = selfie_segmentation.SelfieSegmentation(model_selection=0)
        with self._native_logs():
            mask = self._segmenter.process(np.ascontiguousarray(image[..., :3])).segmentation_mask
        return np.clip(mask, 0.0, 1.0).astype(np.float32)

    def find(self, image: np.ndarray, source: str = "<array>") -> list[DetectedFace]:
        """All faces in ``image`` (``H x W x 3`` uint8 RGB), largest first.

        Raises :class:`NoFaceError` naming ``source`` when there is none.
        """
        found = self.search(image)
        if not found.faces:
            raise NoFaceError(source, "no face found")
        return found.faces

    def search(self, image: np.ndarray) -> FaceSearch:
        """Faces, skipped faces and the rotations tried for ``image`` (``H x W x 3`` uint8)."""
        s = self.settings
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an H x W x 3 uint8 image, got {image.shape} {image.dtype}")
        accepted: list[DetectedFace] = []
        rejected: list[tuple[_Candidate, str]] = []
        tried = self._search_turns(image, accepted, rejected)
        grey = s.grey_retry and all(self._lies_turned(f) for f in accepted)
        if grey:
            in_colour = len(accepted)
            self._search_turns(boxes.grey(image), accepted, rejected)
            for face in accepted[in_colour:]:
                face.extras["found_in"] += " (grey)"
        if not accepted and s.whole_mesh_retry:
            face = self._fit_whole(image)
            if face is not None:
                accepted.append(face)
        accepted.sort(key=lambda f: -boxes.area(boxes.points_box(f.landmarks)))
        skipped = [SkippedFace(boxes.points_box(f.landmarks), f.score,
                               f"beyond --max-faces {s.max_faces}") for f in accepted[s.max_faces:]]
        skipped += self._failed_detections(accepted, rejected)
        return FaceSearch(faces=accepted[:s.max_faces], skipped=skipped, rotations_tried=tried, grey=grey)

    def _search_turns(self, image: np.ndarray, accepted: list[DetectedFace],
                      rejected: list[tuple[_Candidate, str]]) -> list[int]:
        """Upright search of ``image``, then the turned ones when it looks turned; adds to
        ``accepted`` and ``rejected``, returns the turns tried (degrees clockwise)."""
        pyramid = boxes.Pyramid(image, self.settings.detect_side, self.settings.whole_side,
                                self.settings.tile_above)
        self._fit_all(image, self._candidates(pyramid, 0), accepted, rejected)
        tried = [0]
        if self.settings.rotations and self._looks_turned(accepted, rejected):
            for turn in self.settings.rotations:
                tried.append(turn)
                self._fit_all(image, self._candidates(pyramid, turn), accepted, rejected)
        return tried

    def _looks_turned(self, accepted: list[DetectedFace], rejected: list[tuple[_Candidate, str]]) -> bool:
        """Whether the upright search suggests a turned photo: no face, a confident
        detection with implausible landmarks that is not part of a face found anyway (the
        other detector's box of the same face may have fitted), or a face lying on its side
        or upside down (the detector misses most such faces, so the others are likely
        missing)."""
        return (not accepted or bool(self._failed_detections(accepted, rejected))
                or any(self._lies_turned(f) for f in accepted))

    def _lies_turned(self, face: DetectedFace) -> bool:
        """Whether ``face`` lies on its side or upside down (its eye line turned beyond
        :attr:`DetectSettings.turned_roll_deg`)."""
        return abs(face.roll_deg) > self.settings.turned_roll_deg

    # -- candidates -------------------------------------------------------------------

    def _candidates(self, pyramid: "boxes.Pyramid", turn: int) -> list[_Candidate]:
        """Detections in the photo turned ``turn`` degrees clockwise, in photo pixels,
        after non-maximum suppression, largest first. Suppression is per detector: where
        both models find a face, each keeps its box (with its own keypoints), so that one
        whose landmarks fail the checks does not hide the other's (:meth:`_fit_all` skips
        a box once a face overlapping it is accepted)."""
        s = self.settings
        found: list[_Candidate] = []
        for view in pyramid.views(s.tile_size, s.tile_overlap, s.pad_fraction):
            turned = boxes.turn_image(view.pixels, turn)
            for detector in self._detectors():
                near = detector is self._near
                if near and view.name not in ("whole", "padded"):  # the short-range model: whole photo only
                    continue
                for box, score, kps in self._detect(turned, detector):
                    corners = boxes.unturn_points(box.reshape(2, 2), turn, view.pixels.shape)
                    kps = boxes.unturn_points(kps, turn, view.pixels.shape)
                    name = view.name + (" short-range" if near else "") + (f" turned {turn}" if turn else "")
                    found.append(_Candidate(box=boxes.normalised(view.to_photo(corners).reshape(-1)),
                                            score=score, keypoints=view.to_photo(kps), source=name,
                                            rotation=turn, near=near))
        found.sort(key=lambda c: -c.score)
        kept: list[_Candidate] = []
        for c in found:
            if all(boxes.iou(c.box, k.box) <= s.nms_iou for k in kept if k.near == c.near):
                kept.append(c)
        kept.sort(key=lambda c: -boxes.area(c.box))
        return kept

    def _detect(self, image: np.ndarray, detector) -> list[tuple[np.ndarray, float, np.ndarray]]:
        """``detector``'s output on ``image``: box (x0, y0, x1, y1), score, 6 x 2 keypoints,
        in ``image`` pixels."""
        h, w = image.shape[:2]
        with self._native_logs():
            result = detector.process(np.ascontiguousarray(image))
        out = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            box = np.array([rb.xmin * w, rb.ymin * h, (rb.xmin + rb.width) * w,
                            (rb.ymin + rb.height) * h])
            kps = np.array([[k.x * w, k.y * h] for k in det.location_data.relative_keypoints])
            out.append((box, float(det.score[0]), kps))
        return out

    # -- landmarks and checks ---------------------------------------------------------

    def _fit_all(self, image: np.ndarray, candidates: list[_Candidate],
                 accepted: list[DetectedFace], rejected: list[tuple[_Candidate, str]]) -> None:
        s = self.settings
        for cand in candidates:
            if any(boxes.containment(cand.box, boxes.points_box(f.landmarks)) >= s.contained
                   or boxes.iou(cand.box, f.box) > s.nms_iou for f in accepted):
                continue
            face, problem = self._fit(image, cand)
            if face is None:
                rejected.append((cand, problem))
                continue
            lm_box = boxes.points_box(face.landmarks)
            if any(boxes.iou(lm_box, boxes.points_box(f.landmarks)) > s.nms_iou
                   or boxes.containment(lm_box, boxes.points_box(f.landmarks)) >= s.contained
                   for f in accepted):
                continue
            accepted.append(face)

    def _fit(self, image: np.ndarray, cand: _Candidate) -> tuple[DetectedFace | None, str]:
        """Landmarks for one candidate, or ``(None, why not)``: framed by
        :attr:`DetectSettings.mesh_context`, then by :attr:`~DetectSettings.mesh_context_retry`
        when the face mesh finds no face or doubts it (presence)."""
        s = self.settings
        face, problem = self._fit_framed(image, cand, s.mesh_context)
        if face is None and s.mesh_context_retry and (problem == NO_LANDMARKS or problem.startswith(LOW_PRESENCE)):
            face, problem = self._fit_framed(image, cand, s.mesh_context_retry)
        return face, problem

    def _fit_framed(self, image: np.ndarray, cand: _Candidate, context: float
                    ) -> tuple[DetectedFace | None, str]:
        """:meth:`_fit` with the face mesh's square ``context`` times the detection box."""
        s = self.settings
        roll = roll_from_eyes(cand.keypoints[0], cand.keypoints[1])
        centre = 0.5 * (cand.box[:2] + cand.box[2:])
        side = context * max(cand.box[2] - cand.box[0], cand.box[3] - cand.box[1])
        lm = self._landmarks(image, square_crop(centre, side, roll, s.mesh_input))
        if lm is not None and abs(_angle_diff(eye_line_roll(lm), roll)) > 15.0:
            # The detector's eyes were off: frame again on the landmarks themselves.
            roll = eye_line_roll(lm)
            centre, extent = _upright_box(lm, roll)
            again = self._landmarks(image, square_crop(centre, context * extent / 1.2, roll, s.mesh_input))
            lm = lm if again is None else again
        if lm is None:
            return None, NO_LANDMARKS
        presence = self.presence(image, lm)
        problem = self._implausible(lm, cand, presence) or self._misoriented(image, lm)
        if problem:
            return None, problem
        error = _keypoint_error(lm, cand.keypoints)
        return DetectedFace(landmarks=lm, box=cand.box, score=cand.score, presence=presence,
                            rotation=cand.rotation,
                            extras={"found_in": cand.source, "keypoint_error": round(error, 3)}), ""

    def _fit_whole(self, image: np.ndarray) -> DetectedFace | None:
        """The face mesh alone on :attr:`DetectSettings.whole_mesh_retry` times the photo's
        longer side around its centre, or None; no detection box, so its checks are presence,
        face order and orientation, and its detection score is 0."""
        s = self.settings
        h, w = image.shape[:2]
        square = square_crop(np.array([w / 2.0, h / 2.0]), s.whole_mesh_retry * max(h, w), 0.0, s.mesh_input)
        lm = self._landmarks(image, square)
        if lm is None:
            return None
        presence = self.presence(image, lm)
        if self._not_a_face(lm, presence) or self._misoriented(image, lm):
            return None
        return DetectedFace(landmarks=lm, box=boxes.points_box(lm), score=0.0, presence=presence,
                            extras={"found_in": "face mesh on the whole photo (no detection)"})

    def _landmarks(self, image: np.ndarray, patch_crop: CropTransform) -> np.ndarray | None:
        """Face mesh on the patch ``patch_crop`` of ``image``: 478 x 3 photo pixels or None."""
        patch = warp_to_crop(image, patch_crop)
        with self._native_logs():
            result = self._mesh.process(patch)
        if not result.multi_face_landmarks:
            return None
        pts = result.multi_face_landmarks[0].landmark
        if len(pts) != N_LANDMARKS:
            return None
        n = patch_crop.size
        # mediapipe: x, y normalised to the patch; z ~ x's scale, negative towards the camera.
        lm = np.array([[p.x * n, p.y * n, -p.z * n] for p in pts])
        return patch_crop.to_photo(lm)

    def presence(self, image: np.ndarray, landmarks: np.ndarray) -> float:
        """The face mesh model's presence score on the region mediapipe would track for
        ``landmarks`` (478 x 2+ photo pixels): their upright box, 1.5x, square."""
        from facenormals3d.face.presence import INPUT_SIDE

        roll = eye_line_roll(landmarks)
        centre, extent = _upright_box(landmarks, roll)
        patch = warp_to_crop(image, square_crop(centre, 1.5 * extent, roll, INPUT_SIDE))
        with self._native_logs():
            return self._presence.score(patch)

    def _implausible(self, lm: np.ndarray, cand: _Candidate, presence: float) -> str:
        """Why a fit is not a face ('' when it is plausible)."""
        s = self.settings
        problem = self._not_a_face(lm, presence)
        if problem:
            return problem
        _, extent = _upright_box(lm, eye_line_roll(lm))
        box_side = max(cand.box[2] - cand.box[0], cand.box[3] - cand.box[1])
        ratio = extent / max(box_side, 1e-6)
        if not s.size_ratio[0] <= ratio <= s.size_ratio[1]:
            return f"landmarks {ratio:.1f}x the detection box"
        error = _keypoint_error(lm, cand.keypoints)
        if error > s.max_keypoint_error:
            return f"landmarks disagree with the detector's keypoints ({error:.2f} of the face)"
        return ""

    def _not_a_face(self, lm: np.ndarray, presence: float) -> str:
        """Why landmarks are not a face whatever found them ('' when they may be): low
        presence, or not in a face's order."""
        if presence < self.settings.min_presence:
            return f"{LOW_PRESENCE} {presence:.2f}"
        if not _face_order(lm):
            return "landmarks not in a face's order (eyes, nose, mouth, chin)"
        return ""

    def orientation_scores(self, image: np.ndarray, landmarks: np.ndarray) -> list[float]:
        """Full-range detector scores (0 = nothing) on a wide square around the landmarks
        (their upright box times :attr:`DetectSettings.orientation_context`), turned upright
        by their eye line and then by a further 0, 90, 180 and 270 degrees. (Taking the
        short-range detector's score too let an upside-down fit of a held-out close-up
        through: it liked the upside-down view.)"""
        return self._orientation_scores(image, landmarks, stop_above=None)

    def _orientation_scores(self, image: np.ndarray, landmarks: np.ndarray, stop_above: float | None
                            ) -> list[float]:
        """:meth:`orientation_scores`; with ``stop_above``, only the upright score when it
        exceeds that (no turned view can then beat it by the margin: scores are at most 1)."""
        s = self.settings
        roll = eye_line_roll(landmarks)
        centre, extent = _upright_box(landmarks, roll)
        scores = []
        for extra in (0, 90, 180, 270):
            patch = warp_to_crop(image, square_crop(centre, s.orientation_context * extent,
                                                    roll + extra, 192))
            scores.append(max((sc for _, sc, _ in self._detect(patch, self._detector)), default=0.0))
            if stop_above is not None and scores[0] > stop_above:
                break
        return scores

    def _misoriented(self, image: np.ndarray, landmarks: np.ndarray) -> str:
        """'' when the detector likes the landmarks' upright view best (within a margin);
        otherwise why not. Catches an upside-down face fitted as an upright one. (The turned
        views are skipped when the upright score is above 1 - margin: the verdict is the same,
        and three detector runs fewer, ~20 ms a face.)"""
        scores = self._orientation_scores(image, landmarks, stop_above=1.0 - self.settings.orientation_margin)
        best = int(np.argmax(scores))
        if scores[best] - scores[0] > self.settings.orientation_margin:
            return (f"the face looks turned by {90 * best} degrees against its landmarks "
                    f"(detector {scores[0]:.2f} upright vs {scores[best]:.2f})")
        return ""

    def _failed_detections(self, accepted: list[DetectedFace],
                           rejected: list[tuple[_Candidate, str]]) -> list[SkippedFace]:
        """Confident detections that failed and are not part of an accepted face."""
        s = self.settings
        out: list[SkippedFace] = []
        for cand, problem in sorted(rejected, key=lambda cp: -cp[0].score):
            if cand.score < s.report_score:
                continue
            if any(boxes.iou(cand.box, f.box) > 0.1 or boxes.iou(cand.box, boxes.points_box(f.landmarks)) > 0.1
                   or boxes.containment(cand.box, boxes.points_box(f.landmarks)) >= s.contained
                   for f in accepted):
                continue
            if any(boxes.iou(cand.box, o.box) > s.nms_iou for o in out):
                continue
            out.append(SkippedFace(cand.box, cand.score, f"landmarks failed: {problem}"))
        return out


def _angle_diff(a: float, b: float) -> float:
    """a - b wrapped into (-180, 180]."""
    return (a - b + 180.0) % 360.0 - 180.0


def _upright_box(landmarks: np.ndarray, roll: float) -> tuple[np.ndarray, float]:
    """Centre (photo x, y) and longer side of the landmarks' box in the face's upright frame."""
    a = np.radians(roll)
    c, s_ = np.cos(a), np.sin(a)
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    up = pts @ np.array([[c, -s_], [s_, c]])  # rotate by -roll
    lo, hi = up.min(0), up.max(0)
    mid = 0.5 * (lo + hi)
    centre = np.array([c * mid[0] - s_ * mid[1], s_ * mid[0] + c * mid[1]])
    return centre, float(max(hi - lo))


def _keypoint_error(landmarks: np.ndarray, keypoints: np.ndarray) -> float:
    """Largest distance between the detector's eyes, nose tip and mouth centre and the
    landmarks' own, over the landmark face's size."""
    right, left = eye_centres(landmarks)
    mouth = landmarks[[13, 14], :2].mean(0)
    ours = np.stack([right, left, landmarks[1, :2], mouth])
    _, extent = _upright_box(landmarks, eye_line_roll(landmarks))
    return float(np.linalg.norm(ours - keypoints[:4], axis=1).max() / max(extent, 1e-6))


def _face_order(landmarks: np.ndarray) -> bool:
    """In the face's upright frame: forehead above the eyes above the mouth above the chin,
    and the nose tip between forehead and chin (it may rise to the eyes when looking up)."""
    roll = np.radians(eye_line_roll(landmarks))
    down = np.array([-np.sin(roll), np.cos(roll)])  # the face's "down" in the photo
    right, left = eye_centres(landmarks)
    eyes = max(float(np.dot(right, down)), float(np.dot(left, down)))
    forehead, nose, mouth, chin = (float(np.dot(landmarks[i, :2], down)) for i in (10, 1, 13, 152))
    return forehead < eyes < mouth < chin and forehead < nose < chin


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
