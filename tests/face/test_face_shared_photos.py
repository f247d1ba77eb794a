"""The front end on the real in-the-wild photos in ``../shared/data/photos`` (beside the
checkout, as CI clones it; never committed): every counted face found, nothing else, and
every crop upright; on some photos also with the photo turned upside down. Skips when the folder is absent."""

from pathlib import Path

import numpy as np
import pytest

from facenormals3d.face import boxes
from facenormals3d.face.align import align_face
from facenormals3d.face.pose import eye_line_roll

PHOTOS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "photos"
#: Faces a person counts (the folder's README); photos not listed have one.
COUNTS = {"3ddfa_emma": 3, "3ddfa_trump_hillary": 2, "3ddfa_JianzhuGuo": 1, "fa_aflw-test": 1,
          "fa_grid3x3": 9, "fn_multiface": 6}
#: Photos also searched turned upside down: those with several faces (but the nine-face grid,
#: the slowest) and one single face. The upright search covers every photo.
TURNED = {"3ddfa_emma", "3ddfa_trump_hillary", "fn_multiface", "fa_aflw-test"}


def _photos() -> list[Path]:
    return sorted(p for p in PHOTOS.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


pytestmark = pytest.mark.skipif(not _photos(), reason=f"no real photos at {PHOTOS.resolve()} "
                                                      "(the shared data folder beside the checkout)")


def _crop_is_upright(face) -> bool:
    lm = face.landmarks_crop
    return abs(eye_line_roll(lm)) < 3.0 and lm[10, 1] < lm[1, 1] < lm[152, 1]


@pytest.mark.parametrize("path", _photos(), ids=lambda p: p.stem)
def test_counted_faces_found_upright_and_turned_over(path, finder):
    from facenormals3d.photo import load_photo

    photo = load_photo(path).pixels
    expected = COUNTS.get(path.stem, 1)
    search = finder.search(photo)
    assert len(search.faces) == expected, [s.reason for s in search.skipped]
    assert search.skipped == []
    assert search.rotations_tried == [0]  # upright photos need no turned passes
    for det in search.faces:
        face = align_face(photo, det)
        assert _crop_is_upright(face)
        # People in these photos stand upright: no face may be fitted on its side.
        assert abs(face.roll_deg) < 45
        scores = finder.orientation_scores(photo, det.landmarks)
        assert scores[0] >= max(scores) - 0.08
    if path.stem not in TURNED:
        return
    # Upside down: the same faces, each with its eye line turned by 180 degrees.
    turned = np.ascontiguousarray(boxes.turn_image(photo, 180))
    again = finder.search(turned)
    assert len(again.faces) == expected
    h, w = photo.shape[:2]
    for det in again.faces:
        centre = boxes.unturn_points(det.landmarks[[1], :2], 180, (h, w))  # back into the photo
        match = min(search.faces, key=lambda f: np.linalg.norm(f.landmarks[1, :2] - centre))
        diff = (det.roll_deg - match.roll_deg - 180 + 180) % 360 - 180
        assert abs(diff) < 10
        assert _crop_is_upright(align_face(turned, det))
