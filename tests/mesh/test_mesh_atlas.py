"""Atlas baking on analytic cases: a flat square seen from the front."""

import numpy as np
import pytest

from facenormals3d.frame import CropFrame
from facenormals3d.mesh import atlas


def _square(half_mm=20.0):
    """Two triangles covering [-h, h]^2 at z = 0, UVs = the whole atlas, u along +x, v along +y."""
    v = np.array([[-half_mm, -half_mm, 0], [half_mm, -half_mm, 0], [half_mm, half_mm, 0], [-half_mm, half_mm, 0]],
                 np.float32)
    f = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    uv = (v[:, :2] / (2 * half_mm) + 0.5)[f]
    n = np.tile([0.0, 0.0, 1.0], (4, 1)).astype(np.float32)
    return v, f, uv, n


def test_sample_points_is_bilinear_with_pixel_centres():
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    xy = np.array([[0.5, 0.5], [1.0, 0.5], [2.5, 2.0]])  # centre of (0,0); between columns; between rows
    out = atlas.sample_points(img, xy)[:, 0]
    np.testing.assert_allclose(out, [0.0, 0.5, 8.0], atol=1e-5)
    assert atlas.sample_points(img, np.array([[-5.0, -5.0]]), outside=-1.0)[0, 0] == -1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.bool_, np.int32])
def test_per_channel_is_numpys_repeat(dtype):
    rng = np.random.default_rng(0)
    w = (rng.random((5, 7)) * 4).astype(dtype)
    for weight in (w, w[:, ::2], w[:0]):  # strided and empty too
        for channels in (1, 3, 4):
            out = atlas.per_channel(weight, channels)
            ref = np.repeat(weight[..., None], channels, axis=-1)
            assert out.dtype == ref.dtype and out.shape == ref.shape and np.array_equal(out, ref)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_blend_is_the_weighted_sum(channels):
    rng = np.random.default_rng(1)
    a, b = (rng.random((2, 9, 13, channels)) * 255).astype(np.float32)
    w = np.clip(rng.random((9, 13)) * 1.4 - 0.2, 0, 1).astype(np.float32)  # 0s and 1s too
    out = atlas.blend(a, b, w)
    ref = w[..., None] * a + (1 - w[..., None]) * b
    assert out.shape == a.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-4)
    assert np.array_equal(out[w == 1], a[w == 1]) and np.array_equal(out[w == 0], b[w == 0])
    for into in ("a", "b", "new"):  # written in place, the same numbers
        a2, b2 = a.copy(), b.copy()
        dst = {"a": a2, "b": b2, "new": np.empty_like(a)}[into]
        assert atlas.blend(a2, b2, w, out=dst) is dst and np.array_equal(dst, out)
    with pytest.raises(ValueError, match="out must be"):
        atlas.blend(a, b, w, out=np.empty(a.shape, np.float64))


def test_push_pull_fills_holes_and_keeps_known_texels():
    img = np.zeros((32, 32, 3), np.float32)
    w = np.zeros((32, 32), np.float32)
    img[:, :16] = 100.0
    w[:, :16] = 1.0
    out = atlas.push_pull_fill(img, w)
    np.testing.assert_allclose(out[:, :16], 100.0, atol=1e-3)
    np.testing.assert_allclose(out[:, 16:], 100.0, atol=1e-3)  # only one colour to spread
    assert np.all(atlas.push_pull_fill(img, np.zeros_like(w)) == 128.0)


def test_texture_of_a_face_cut_by_the_photo_edge_has_no_black_padding():
    v, f, uv, n = _square()
    raster = atlas.rasterize_atlas(uv, 64, 32)
    assert len(raster.texel) == 64 * 32
    size, s = 64, 1.0  # the square spans crop pixels 12..52
    zbuffer = np.zeros((size, size), np.float32)
    view = atlas.view_texels(raster, f[raster.triangle], v, n, zbuffer, CropFrame(size, s))
    assert view.weight.min() > 0.99
    photo = np.zeros((64, 32, 3), np.uint8)  # only the left half of the crop is inside the photo
    photo[:] = (200, 120, 60)
    tex = atlas.bake_texture(raster, view, None, photo, np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    assert tex.shape == (32, 64, 3)
    np.testing.assert_allclose(tex.reshape(-1, 3), np.tile([200, 120, 60], (64 * 32, 1)), atol=1)


def test_hidden_texels_are_not_sampled():
    v, f, uv, n = _square()
    raster = atlas.rasterize_atlas(uv, 16, 16)
    zbuffer = np.full((64, 64), 10.0, np.float32)  # something 10 mm in front of the square
    assert atlas.view_texels(raster, f[raster.triangle], v, n, zbuffer, CropFrame(64, 1.0)).weight.max() == 0.0

    assert atlas.sample_points(np.zeros((4, 4, 3), np.uint8), np.zeros((0, 2))).shape == (0, 3)


def test_a_view_that_sees_no_texel_bakes_without_error():
    """A mirror view hidden everywhere (a profile face) must not reach OpenCV with an empty map."""
    v, f, uv, n = _square()
    raster = atlas.rasterize_atlas(uv, 16, 16)
    seen = atlas.view_texels(raster, f[raster.triangle], v, n, np.zeros((64, 64), np.float32), CropFrame(64, 1.0))
    hidden = atlas.view_texels(raster, f[raster.triangle], v, n, np.full((64, 64), 10.0, np.float32),
                               CropFrame(64, 1.0))
    photo = np.full((64, 64, 3), 90, np.uint8)
    for own, mirror in ((seen, hidden), (hidden, seen), (hidden, None)):
        tex = atlas.bake_texture(raster, own, mirror, photo, np.array([[1.0, 0, 0], [0, 1.0, 0]]))
        assert tex.shape == (16, 16, 3)


def test_normal_map_is_flat_for_the_mesh_normal_and_tilts_with_u():
    v, f, uv, n = _square()
    raster = atlas.rasterize_atlas(uv, 32, 32)
    zbuffer = np.zeros((64, 64), np.float32)
    view = atlas.view_texels(raster, f[raster.triangle], v, n, zbuffer, CropFrame(64, 1.0))
    conf = np.ones((64, 64), np.float32)
    flat = np.tile(np.array([0, 0, 1], np.float32), (64, 64, 1))
    nm = atlas.bake_normal_map(raster, view, v, f, uv, n, flat, conf)
    np.testing.assert_allclose(nm.reshape(-1, 3), np.tile([0, 0, 1], (32 * 32, 1)), atol=1e-5)
    tilt = np.tile(np.array([0.6, 0.0, 0.8], np.float32), (64, 64, 1))  # leaning towards +x = +u
    nm = atlas.bake_normal_map(raster, view, v, f, uv, n, tilt, conf)
    np.testing.assert_allclose(nm.reshape(-1, 3), np.tile([0.6, 0.0, 0.8], (32 * 32, 1)), atol=1e-4)
    up = np.tile(np.array([0.0, 0.6, 0.8], np.float32), (64, 64, 1))  # towards +y = +v (OpenGL green up)
    nm = atlas.bake_normal_map(raster, view, v, f, uv, n, up, conf)
    np.testing.assert_allclose(nm.reshape(-1, 3), np.tile([0.0, 0.6, 0.8], (32 * 32, 1)), atol=1e-4)


def test_atlas_cache_round_trip_and_recovery(tmp_path):
    """cached_atlas stores the raster and mirror map once and reads back the same arrays; a
    damaged file is recomputed and rewritten; without a folder it just computes."""
    from facenormals3d.mesh.atlas import cached_atlas, mirror_texels, rasterize_atlas

    verts = np.array([[-1, 0], [0, 0], [1, 0], [-1, 1], [0, 1], [1, 1]], float)
    faces = np.array([[0, 1, 4], [0, 4, 3], [1, 2, 4], [2, 5, 4]])
    uv = np.stack([(verts[:, 0] + 1) / 2, verts[:, 1]], 1)[faces]
    mirror = np.array([2, 1, 0, 5, 4, 3])
    ref = rasterize_atlas(uv, 16, 8)
    ref_mirror = mirror_texels(ref, faces, uv, mirror)

    def same(got):
        raster, m = got
        assert (raster.width, raster.height) == (16, 8)
        for name in ("texel", "triangle", "bary"):
            a, b = getattr(raster, name), getattr(ref, name)
            assert a.dtype == b.dtype and np.array_equal(a, b)
        assert m.dtype == ref_mirror.dtype and np.array_equal(m, ref_mirror)

    same(cached_atlas(faces, uv, mirror, 16, 8, None))
    same(cached_atlas(faces, uv, mirror, 16, 8, tmp_path))
    (path,) = tmp_path.glob("atlas-*.npz")
    same(cached_atlas(faces, uv, mirror, 16, 8, tmp_path))  # read back
    path.write_bytes(b"not a zip")
    same(cached_atlas(faces, uv, mirror, 16, 8, tmp_path))  # damaged: recomputed
    assert np.load(path)["texel"].size == ref.texel.size  # and rewritten
    cached_atlas(faces, uv, mirror, 32, 16, tmp_path)  # another size: another file
    assert len(list(tmp_path.glob("atlas-*.npz"))) == 2 and not list(tmp_path.glob("*.tmp"))


def test_texel_views_on_the_background_get_no_weight():
    from facenormals3d.mesh.atlas import PERSON_RAMP, TexelView, on_person

    person = np.zeros((8, 8), np.float32)
    person[:, 4:] = 1.0  # right half of the crop shows the person
    view = TexelView(crop_xy=np.array([[1.5, 3.5], [6.5, 3.5], [-5.0, 3.5]], np.float32),
                     weight=np.array([1.0, 0.6, 1.0], np.float32))
    out = on_person(view, person)
    np.testing.assert_allclose(out.weight, [0.0, 0.6, 0.0], atol=1e-6)  # background, person, off the crop
    assert np.array_equal(out.crop_xy, view.crop_xy)
    # On the ramp: linear between its ends.
    mid = on_person(TexelView(crop_xy=view.crop_xy[:1], weight=np.ones(1, np.float32)),
                    np.full((8, 8), sum(PERSON_RAMP) / 2, np.float32))
    np.testing.assert_allclose(mid.weight, [0.5], atol=1e-6)


def test_subsampled_keeps_every_factor_th_texel_from_the_offset_and_remembers_it():
    from facenormals3d.mesh.atlas import AtlasRaster

    h, w = 8, 16
    texel = np.flatnonzero(np.arange(h * w) % 5 != 0)  # some texels uncovered
    raster = AtlasRaster(width=w, height=h, texel=texel, triangle=texel * 10, bary=np.zeros((len(texel), 3), np.float32))
    small, keep = raster.subsampled(4, 2)
    rows, cols = np.divmod(texel[keep], w)
    assert set(rows) <= {2, 6} and set(cols) <= {2, 6, 10, 14}
    expected = [r * w + c for r in (2, 6) for c in (2, 6, 10, 14) if (r * w + c) % 5 != 0]
    assert sorted(texel[keep]) == expected
    assert (small.width, small.height) == (4, 2)
    np.testing.assert_array_equal(small.texel, (rows // 4) * 4 + cols // 4)
    np.testing.assert_array_equal(small.triangle, raster.triangle[keep])
    assert raster.subsampled(4, 2)[1] is keep  # kept, not worked out again
    assert raster.subsampled(4)[1] is not keep


def test_texel_density_and_the_automatic_texture_size():
    # A 10 mm square whose UVs cover the left half of the atlas ([0, 0.5] x [0, 1]): in a
    # 2h x h atlas that is h x h texels, h / 10 texels per mm.
    v = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0]], np.float64)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    uv = np.array([[0, 0], [0.5, 0], [0.5, 1], [0, 1]], np.float32)[f]
    assert atlas.texel_density(v, f, uv) == pytest.approx(0.1)
    assert atlas.texel_density(v, f, uv, height=512) == pytest.approx(51.2)
    # Stretched 45 deg into depth, the surface has sqrt(2) times the area for the same texels.
    tilted = v.copy()
    tilted[:, 2] = tilted[:, 1]
    assert atlas.texel_density(tilted, f, uv) == pytest.approx(0.1 / 2 ** 0.25)
    # Two texels per photo pixel: 0.1 texels per mm at height 1 -> 512 serves up to 25.6
    # photo pixels per mm, 1024 up to 51.2; beyond that the largest size.
    assert atlas.auto_texture_size(0.1, 25.6) == 512
    assert atlas.auto_texture_size(0.1, 25.7) == 1024
    assert atlas.auto_texture_size(0.1, 500.0) == atlas.AUTO_TEXTURE_SIZES[-1] == 1024
