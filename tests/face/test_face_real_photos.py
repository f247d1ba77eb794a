"""The front end on real pixels: the astronaut portrait and a six-face group picture."""

import numpy as np
import pytest

from facenormals3d.errors import NoFaceError
from facenormals3d.face.align import align_face
from facenormals3d.face.coarse import coarse_face, metric_scale
from facenormals3d.face.topology import FACE_OVAL


def test_astronaut_has_one_face_with_landmarks_in_its_box(astronaut, finder):
    faces = finder.find(astronaut)
    assert len(faces) == 1
    f = faces[0]
    assert f.landmarks.shape == (478, 3) and f.score > 0.8
    x0, y0, x1, y1 = f.box
    # The face box of the astronaut is around x 175-280, y 70-170 (her face in the photo).
    assert 150 < x0 < 200 and 250 < x1 < 300 and 50 < y0 < 100 and 150 < y1 < 200
    core = f.landmarks[[33, 263, 1, 61, 291], :2]  # eye corners, nose tip, mouth corners
    pad = 0.1 * (x1 - x0)
    assert np.all((core[:, 0] > x0 - pad) & (core[:, 0] < x1 + pad))
    assert np.all((core[:, 1] > y0 - pad) & (core[:, 1] < y1 + pad))
    # Anatomy: the subject's right eye (33) is on the image's left; the nose points at us.
    assert f.landmarks[33, 0] < f.landmarks[263, 0]
    assert f.landmarks[1, 2] > f.landmarks[234, 2]


def test_aligned_crop_mask_and_coarse_maps(astronaut, finder):
    face = align_face(astronaut, finder.find(astronaut)[0])
    assert face.crop.shape == (256, 256, 3) and face.crop.dtype == np.uint8
    np.testing.assert_allclose(face.transform.to_photo(face.landmarks_crop), face.landmarks_photo,
                               atol=1e-6)
    # Whole face oval inside the crop, and the mask covers a sensible share of it.
    oval = face.landmarks_crop[list(FACE_OVAL), :2]
    assert oval.min() > 0 and oval.max() < 256
    assert 0.25 < face.mask.mean() < 0.6
    # She smiles with teeth showing: the mouth opening is not face.
    mouth = face.landmarks_crop[[13, 14], :2].mean(0).astype(int)
    assert not face.mask[mouth[1], mouth[0]]

    coarse = coarse_face(face.landmarks_crop, 256)
    assert coarse.mm_per_pixel == pytest.approx(metric_scale(face.landmarks_crop))
    # Mask lies on the landmark mesh; normals are unit and face the camera.
    assert (face.mask & ~coarse.coverage).sum() < 0.01 * face.mask.sum()
    n = coarse.normals[face.mask]
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-4)
    assert np.nanmedian(n[:, 2]) > 0.6 and (n[:, 2] > 0).mean() > 0.97
    # Face width in mm is that of an adult (cheek to cheek ~ 130-160 mm).
    width = np.ptp(coarse.vertices[[234, 454], 0])
    assert 110 < width < 180
    # Normals agree with finite differences of the depth map away from the outline.
    d = coarse.depth.astype(np.float64)
    s = coarse.mm_per_pixel
    dzdx = (d[1:-1, 2:] - d[1:-1, :-2]) / (2 * s)
    dzdy = -(d[2:, 1:-1] - d[:-2, 1:-1]) / (2 * s)  # rows go down, y goes up
    fd = np.dstack([-dzdx, -dzdy, np.ones_like(dzdx)])
    fd /= np.linalg.norm(fd, axis=2, keepdims=True)
    inner = face.mask[1:-1, 1:-1]
    from scipy.ndimage import binary_erosion

    inner = binary_erosion(inner, iterations=6)
    cos = np.sum(fd * coarse.normals[1:-1, 1:-1], axis=2)[inner]
    # Smooth (interpolated) normals differ from the flat facets' slopes by a few degrees;
    # a flipped axis or a wrong scale would give tens of degrees.
    assert np.degrees(np.arccos(np.clip(np.median(cos), -1, 1))) < 10.0
    corr_x = np.corrcoef(fd[..., 0][inner], coarse.normals[1:-1, 1:-1, 0][inner])[0, 1]
    corr_y = np.corrcoef(fd[..., 1][inner], coarse.normals[1:-1, 1:-1, 1][inner])[0, 1]
    assert corr_x > 0.9 and corr_y > 0.9


def test_group_photo_yields_six_faces(group_photo, finder):
    faces = finder.find(group_photo)
    assert len(faces) == 6
    centres = np.array([f.landmarks[:, :2].mean(0) for f in faces])
    # One face per pasted head: 3 columns x 2 rows.
    assert len(set(np.round(centres[:, 0] / 580).astype(int))) == 3
    assert len(set(np.round(centres[:, 1] / 480).astype(int))) == 2


def test_photo_without_a_face(finder):
    yy, xx = np.mgrid[0:300, 0:400]
    img = np.dstack([xx % 256, yy % 256, (xx + yy) % 256]).astype(np.uint8)
    with pytest.raises(NoFaceError, match="pattern.png: no face found"):
        finder.find(img, "pattern.png")
