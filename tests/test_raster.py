"""The rasterisation module: binned CPU rasterisation matches PyTorch3D's plain full-image
rasteriser, the crop frame's ray casting matches its OrthoView, barycentric interpolation."""

import numpy as np
import trimesh

from facenormals3d.frame import CropFrame
from facenormals3d.raster import (barycentric, crop_view, frame_mesh, interpolate, interpolate_hits, orthographic_hits,
                                  rasterize, rasterize_reference, rasterize_views)


def test_binned_views_match_the_plain_rasteriser():
    s = trimesh.creation.icosphere(subdivisions=3)
    v = np.asarray(s.vertices) * [1.0, 1.3, 0.8]
    f = np.asarray(s.faces)
    f = np.concatenate([f, f[:40, ::-1] + 0])  # some back faces on top of front ones
    views = [frame_mesh(v, size=37), frame_mesh(v, yaw_deg=35, size=37), frame_mesh(v, pitch_deg=-20, size=20)]
    got = rasterize_views(v, f, views, rasterizer="pytorch3d")
    assert len(got) == 3
    for (p2f, bary), view in zip(got, views):
        ref_p2f, ref_bary = rasterize_reference(view.normalise(v), f, view.size)
        assert p2f.shape == (view.size, view.size) and bary.shape == (view.size, view.size, 3)
        assert (p2f == ref_p2f).all()
        hit = p2f >= 0
        assert 0.2 < hit.float().mean() < 0.9
        assert (bary - ref_bary)[hit].abs().max() < 1e-4
        assert (bary[~hit] == 0).all()


def test_faces_off_screen_or_between_pixel_centres_are_dropped_not_drawn():
    v = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0],
                  [5.0, 5.0, 0.0], [6.0, 5.0, 0.0], [5.0, 6.0, 0.0]])
    f = np.array([[0, 1, 2], [3, 4, 5]])
    view = frame_mesh(v[:3], size=16)
    p2f, _ = rasterize_views(v, f, [view], rasterizer="pytorch3d")[0]
    assert set(np.unique(p2f.numpy())) == {-1, 0}


SHIFT = (0.37, 0.21)


def _tilted_plane(n: int = 6):
    """A grid over [-10, 10]^2 mm + SHIFT of the plane z = 3 + 0.2 x - 0.1 y, counter-clockwise;
    shifted so that no crop pixel centre of the tests lies on a triangle edge."""
    xs = np.linspace(-10.0, 10.0, n)
    xx, yy = np.meshgrid(xs + SHIFT[0], xs + SHIFT[1])
    v = np.stack([xx.ravel(), yy.ravel(), 3 + 0.2 * xx.ravel() - 0.1 * yy.ravel()], axis=1)
    i = np.arange(n * n).reshape(n, n)[:-1, :-1].ravel()
    f = np.concatenate([np.stack([i, i + 1, i + n + 1], 1), np.stack([i, i + n + 1, i + n], 1)])
    return v, f


def test_orthographic_hits_of_a_plane_are_exact_and_interpolate_to_the_hit_points():
    v, f = _tilted_plane()
    frame = CropFrame(size=16, mm_per_pixel=1.5)  # spans 24 mm: the border misses the plane
    depth, tri, bary = orthographic_hits(v, f, frame)
    x, y = np.meshgrid(*frame.pixel_centres(np.arange(16), np.arange(16)))
    inside = (np.abs(x - SHIFT[0]) < 10) & (np.abs(y - SHIFT[1]) < 10)
    np.testing.assert_array_equal(tri >= 0, inside)
    np.testing.assert_allclose(depth[inside], (3 + 0.2 * x - 0.1 * y)[inside], atol=1e-4)
    assert np.isnan(depth[~inside]).all() and (bary[~inside] == 0).all()
    np.testing.assert_allclose(bary[inside].sum(-1), 1.0, atol=1e-6)
    p = interpolate_hits(v, f, tri, bary)
    np.testing.assert_allclose(p[inside], np.stack([x, y, depth], -1)[inside], atol=1e-4)
    assert np.isnan(p[~inside]).all()


def test_crop_frame_ray_casting_and_its_ortho_view_see_the_same_triangles():
    v, f = _tilted_plane()
    frame = CropFrame(size=16, mm_per_pixel=1.5)
    _, tri, bary = orthographic_hits(v, f, frame)
    for rasterizer in ("open3d", "pytorch3d"):
        p2f, b = rasterize(v, f, crop_view(frame), rasterizer=rasterizer)
        np.testing.assert_array_equal(p2f.numpy(), tri)
        np.testing.assert_allclose(b.numpy(), bary, atol=1e-4)


def test_interpolate_matches_a_dense_reference_and_keeps_float32():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(10, 4)).astype(np.float32)
    corners = rng.integers(0, 10, (2, 5, 3))
    w = rng.random((2, 5, 3)).astype(np.float32)
    got = interpolate(values, corners, w)
    assert got.dtype == np.float32 and got.shape == (2, 5, 4)
    ref = np.einsum("...c,...cd->...d", w.astype(np.float64), values.astype(np.float64)[corners])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_barycentric_follows_open3d_convention():
    np.testing.assert_allclose(barycentric(np.array([[0.2, 0.3], [0.0, 0.0]])), [[0.5, 0.2, 0.3], [1, 0, 0]])


def test_interpolate_on_column_major_points_is_the_row_major_result():
    from facenormals3d.raster import columns, interpolate

    rng = np.random.default_rng(3)
    values = rng.random((50, 4)).astype(np.float32)
    corners = rng.integers(0, 50, (200, 3))
    bary = rng.random((200, 3)).astype(np.float32)
    ref = interpolate(values, corners, bary)
    rows = np.flatnonzero(rng.random(200) < 0.5)
    assert columns(corners).flags.f_contiguous and columns(bary, rows).flags.f_contiguous
    assert np.array_equal(interpolate(values, columns(corners), columns(bary)), ref)
    assert np.array_equal(interpolate(values, columns(corners, rows), columns(bary, rows)), ref[rows])
    assert np.array_equal(columns(corners, rows), corners[rows])
