"""Landmark files and the order/degeneracy checks."""

import numpy as np
import pytest

from facenormals3d.bench.evaluate import face_surface
from facenormals3d.errors import InputError
from facenormals3d.evaluate.landmarks import check_landmarks, face_frame, load_landmarks


@pytest.fixture(scope="module")
def lm():
    return face_surface(2000)[2]


def test_good_landmarks_pass_in_any_rotated_frame(lm):
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_euler("xyz", [40, 100, -30], degrees=True).as_matrix()
    out = check_landmarks(lm @ rot.T + 5.0)
    assert out.shape == (7, 3)
    np.testing.assert_allclose(face_frame(lm), np.eye(3), atol=0.2)


@pytest.mark.parametrize("bad, match", [
    (lambda l: l[:6], "7 x 3"),
    (lambda l: l[:, :2], "7 x 3"),
    (lambda l: np.where(np.arange(7)[:, None] == 2, np.nan, l), "NaN"),
    (lambda l: np.vstack([l[:1], l[:1], l[2:]]), "coincide"),
    (lambda l: np.outer(np.arange(7.0), [1, 2, 3]), "collinear"),
    (lambda l: l[[1, 0, 2, 3, 4, 5, 6]], "eye corners"),
    (lambda l: l[[0, 1, 2, 3, 4, 6, 5]], "mouth corners"),
    (lambda l: l * [-1, 1, 1], "mirrored"),  # left/right swapped by a reflection
    (lambda l: l[[3, 2, 1, 0, 4, 6, 5]], "mirrored"),  # left/right labels swapped
])
def test_bad_landmarks_raise_clear_errors(lm, bad, match):
    with pytest.raises(InputError, match=match):
        check_landmarks(bad(lm.copy()), "lm.npy")


def test_load_formats(tmp_path, lm):
    np.save(tmp_path / "a.npy", lm)
    np.savetxt(tmp_path / "b.txt", lm, delimiter=",", header="x,y,z")
    pts = "".join(f'<point x="{x}" y="{y}" z="{z}" name="{k}" active="1"/>\n' for k, (x, y, z) in enumerate(lm))
    (tmp_path / "c.pp").write_text(f"<!DOCTYPE PickedPoints>\n<PickedPoints>\n{pts}</PickedPoints>\n")
    for name in ("a.npy", "b.txt", "c.pp"):
        np.testing.assert_allclose(load_landmarks(tmp_path / name, 10.0), lm * 10.0, rtol=1e-6)
    (tmp_path / "d.txt").write_text("1 2 3\n4 5\n")
    with pytest.raises(InputError, match="d.txt"):
        load_landmarks(tmp_path / "d.txt")
    with pytest.raises(InputError, match="not found"):
        load_landmarks(tmp_path / "missing.npy")
