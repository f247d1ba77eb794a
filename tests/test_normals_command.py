"""facenormals3d normals: crop maps, photo-grid maps, preview."""

import numpy as np

from facenormals3d.conventions import read_normal_map


def test_normals_in_crop_and_photo_grid(tmp_path, astronaut_png, astronaut, cli):
    out = tmp_path / "out"
    r = cli("normals", astronaut_png, "-o", out, "--normals", "landmarks")
    assert r.returncode == 0, r.stderr
    d = out / "astronaut"
    crop_n = np.load(d / "face_0" / "normals.npy")
    assert crop_n.shape == (256, 256, 3)
    png_n = read_normal_map(d / "face_0" / "normals.png")
    known = np.isfinite(crop_n[..., 0])
    assert known.mean() > 0.25
    # 16-bit PNG keeps the float map to well under a degree.
    cos = np.sum(png_n[known] * crop_n[known], axis=1)
    assert np.degrees(np.arccos(np.clip(cos.min(), -1, 1))) < 0.1
    photo_n = np.load(d / "photo_normals.npy")
    assert photo_n.shape == astronaut.shape
    inside = np.isfinite(photo_n[..., 0])
    rows, cols = np.nonzero(inside)
    # The face sits where the astronaut's face is (x ~ 170-285, y ~ 60-190 in the photo).
    assert 150 < cols.mean() < 300 and 60 < rows.mean() < 190
    np.testing.assert_allclose(np.linalg.norm(photo_n[inside], axis=1), 1.0, atol=1e-4)
    # Left half of the face leans left (n_x < 0), right half right: the same frame as the crop.
    mid = cols.mean()
    assert np.median(photo_n[inside & (np.arange(512)[None, :] < mid - 30)][:, 0]) < 0
    assert np.median(photo_n[inside & (np.arange(512)[None, :] > mid + 30)][:, 0]) > 0
    for name in ("preview.png", "photo_mask.png", "photo_normals.png"):
        assert (d / name).is_file()
