"""Lighting and reflectance: analytic checks of the SH + directional model, its fit, the
engine-light conversion, shadow rays, the lit renderer and the light presets."""

from __future__ import annotations

import numpy as np
import pytest

from facenormals3d.errors import InputError
from facenormals3d.raster import shadow_visibility
from facenormals3d.render.lighting import (DirectionalLight, Lighting, LightingSettings, clamped_cosine_sh,
                                           fit_lighting, light_terms, masked_blur, sh_basis_np)

SIZE = 96


def sphere_pixels(size: int = SIZE):
    """Unit normals of a front-facing sphere filling ~80% of a ``size`` crop, and their flat indices."""
    c = (np.arange(size) + 0.5 - size / 2) / (0.4 * size)
    x, y = np.meshgrid(c, -c)
    r2 = x * x + y * y
    inside = r2 < 0.95
    n = np.stack([x, y, np.sqrt(np.clip(1 - r2, 0, 1))], -1)[inside]
    return n, np.flatnonzero(inside.ravel())


def true_light() -> Lighting:
    sh = np.zeros((9, 3))
    sh[0] = [0.9, 0.8, 0.7]
    sh[1] = [0.2, 0.2, 0.25]  # brighter above
    return Lighting(sh=sh, lights=[DirectionalLight(np.array([0.6, 0.3, 0.74]) / np.linalg.norm([0.6, 0.3, 0.74]),
                                                    np.array([1.0, 0.9, 0.8]))])


def test_clamped_cosine_sh_approximates_the_clamped_cosine():
    n, _ = sphere_pixels()
    d = np.array([0.3, 0.5, 0.81]) / np.linalg.norm([0.3, 0.5, 0.81])
    approx = sh_basis_np(n) @ clamped_cosine_sh(d)
    exact = np.maximum(n @ d, 0)
    assert np.abs(approx - exact).mean() < 0.05  # order 2 captures most of it


def test_fit_recovers_a_known_light_and_constant_albedo_on_a_sphere():
    n, pixels = sphere_pixels()
    light = true_light()
    albedo = np.array([0.6, 0.45, 0.35])
    diffuse, _ = light_terms(n, light)
    colors = albedo * diffuse
    fit = fit_lighting(n, colors, pixels, SIZE, settings=LightingSettings(specular=False))
    # The product (what the photo shows) is reproduced, the albedo is constant up to scale,
    # and the directional light points where the true one does.
    pred = fit.smooth_albedo * fit.diffuse
    assert np.abs(pred - colors).mean() < 0.01
    ratio = fit.smooth_albedo / albedo
    assert ratio.std(0).max() / ratio.mean() < 0.05
    assert np.allclose(fit.diffuse.mean(0), 1.0, atol=1e-4)  # the scale convention
    assert len(fit.lighting.lights) == 1
    cos = fit.lighting.lights[0].direction @ light.lights[0].direction
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))) < 20


def test_a_turned_light_shades_turned_normals_the_same():
    """Lighting.rotated: the irradiance at R n under the turned light is the irradiance at n
    (SH and directional lights); a crop's rotation_to_crop undoes directions_to_photo."""
    from facenormals3d.face.crop import CropTransform

    a = np.radians(20.0)
    t = CropTransform(np.array([[np.cos(a), np.sin(a), 5.0], [-np.sin(a), np.cos(a), 3.0]]), 256)
    r = t.rotation_to_crop()
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 3))
    np.testing.assert_allclose(t.directions_to_photo(v @ r.T), v, atol=1e-12)
    light = true_light()
    light.sh = rng.normal(size=(9, 3))  # every band, every m
    turned = light.rotated(r)
    n = rng.normal(size=(200, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    np.testing.assert_allclose(light_terms(n @ r.T, turned)[0], light_terms(n, light)[0], atol=1e-10)
    np.testing.assert_allclose(turned.lights[0].direction, r @ light.lights[0].direction)
    np.testing.assert_allclose(light.rotated(np.eye(3)).sh, light.sh, atol=1e-12)


def test_lighting_round_trips_through_json_and_rejects_bad_files():
    light = true_light()
    back = Lighting.from_dict(light.to_dict())
    assert np.allclose(back.sh, light.sh)
    assert np.allclose(back.lights[0].direction, light.lights[0].direction)
    with pytest.raises(InputError, match="my.json"):
        Lighting.from_dict({"sh": [[1, 2]]}, "my.json")
    with pytest.raises(InputError, match="x.json"):
        Lighting.from_dict({"lights": [{"direction": [0, 0, 0]}]}, "x.json")


def test_masked_blur_keeps_a_constant_and_ignores_outside_pixels():
    _, pixels = sphere_pixels()
    out = masked_blur(np.full((len(pixels), 2), 0.7, np.float32), pixels, SIZE, 5.0)
    assert np.allclose(out, 0.7, atol=1e-4)


def test_shadow_rays_are_blocked_under_a_roof_and_free_elsewhere():
    from facenormals3d.raster import raycasting_scene

    roof = np.array([[-5, -5, 10], [5, -5, 10], [5, 5, 10], [-5, 5, 10]], float)
    scene = raycasting_scene(roof, np.array([[0, 1, 2], [0, 2, 3]]))
    points = np.array([[0, 0, 0], [20, 0, 0]], np.float32)
    normals = np.array([[0, 0, 1], [0, 0, 1]], np.float32)
    vis = shadow_visibility(scene, points, normals, np.array([0.0, 0.0, 1.0]))
    assert vis.tolist() == [0.0, 1.0]


def test_engine_light_converts_exactly_to_sh():
    from facenormals3d.data.render import env_irradiance, sample_lighting
    from facenormals3d.bench.eval_relight import engine_lighting

    light = sample_lighting(np.random.default_rng(3))
    light["env"]["a"] = [2.0, 2.0, 2.0]  # keep the engine's floor clamp out of the way
    n, _ = sphere_pixels()
    ours = sh_basis_np(n) @ engine_lighting(light).sh
    assert np.allclose(ours, env_irradiance(light["env"], n.astype(np.float32)), atol=1e-4)


def test_render_lit_shades_a_flat_square_facing_the_camera():
    from facenormals3d.raster import OrthoView
    from facenormals3d.render.relight import render_lit

    v = np.array([[-10, -10, 0], [10, -10, 0], [10, 10, 0], [-10, 10, 0]], float)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    uv = (v[f][..., :2] + 10) / 20
    atlas = np.full((8, 16, 3), 0.5, np.float32)
    sh = np.zeros((9, 3))
    sh[0] = 0.2 / 0.28209479177387814
    light = Lighting(sh=sh, lights=[DirectionalLight(np.array([0.0, 0.0, 1.0]), np.full(3, 0.6))])
    view = OrthoView(rotation=np.eye(3), center=np.zeros(3), half_extent=12.0, size=32)
    out = render_lit(v, f, uv, atlas, light, view, rasterizer="open3d")
    assert out.coverage[16, 16] and not out.coverage[0, 0]
    assert np.allclose(out.rgb[out.coverage], 0.5 * (0.2 + 0.6), atol=1e-3)


def test_presets_and_directions_parse():
    from facenormals3d.commands.relight import parse_lights
    from facenormals3d.render.relight import PRESETS

    lights = parse_lights(list(PRESETS), ["1,0,1"])
    assert set(PRESETS) <= set(lights) and "dir_1_0_1" in lights
    assert all(np.isclose(np.linalg.norm(l.direction), 1) for light in lights.values() for l in light.lights)
    with pytest.raises(InputError, match="nope"):
        parse_lights(["nope"], None)


def test_relight_help_lists_the_presets():
    from facenormals3d.cli import build_parser
    from facenormals3d.render.relight import PRESETS

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    text = sub.choices["relight"].format_help()
    assert all(name in text for name in PRESETS)


def test_soft_alpha_is_zero_outside_and_one_deep_inside():
    from facenormals3d.render.relight import soft_alpha

    region = np.zeros((40, 40), bool)
    region[5:35, 5:35] = True
    a = soft_alpha(region, 5.0)
    assert a[~region].max() == 0 and a[20, 20] == 1 and 0 < a[6, 20] < 1
    # A region cut off by the render's square fades out at the square's edge too.
    top = np.zeros((40, 40), bool)
    top[:20, 5:35] = True
    b = soft_alpha(top, 5.0)
    assert b[0, 20] < 0.3 and b[10, 20] == 1


def lit(rgb: np.ndarray, coverage: np.ndarray):
    from facenormals3d.render.relight import LitRender

    return LitRender(rgb=rgb.astype(np.float32), coverage=coverage, albedo=np.zeros_like(rgb, np.float32))


def test_shading_quotient_is_the_light_ratio_and_distrusts_dark_pixels():
    from facenormals3d.render.relight import shading_quotient

    cov = np.zeros((32, 32), bool)
    cov[4:28, 4:28] = True
    albedo = np.array([0.6, 0.4, 0.3])
    old = np.where(cov[..., None], albedo * 0.8, 0.0)
    old[10:14, 10:14] = 0.01 * albedo  # the mouth socket: too dark to relight
    new = np.where(cov[..., None], albedo * 1.2 * np.array([1.1, 1.0, 0.9]), 0.0)  # brighter, warmer
    ratio, conf = shading_quotient(lit(new, cov), lit(old, cov))
    assert np.allclose(ratio[~cov], 1.0) and np.allclose(conf[~cov], 0.0)
    # Luminance ratio x colour change = the per-channel ratio where the colour change is smooth.
    assert np.allclose(ratio[20, 20], 1.5 * np.array([1.1, 1.0, 0.9]), rtol=0.01)
    assert conf[20, 20] == 1.0 and conf[12, 12] < 0.1
    assert ratio.max() <= 3.0  # the dark socket does not blow up


def test_quotient_composite_scales_the_photo_inside_and_keeps_it_outside():
    from facenormals3d.face.crop import square_crop
    from facenormals3d.render.appearance import linear_to_srgb8, srgb8_to_linear
    from facenormals3d.render.relight import composite_quotient

    photo = np.full((64, 64, 3), 120, np.uint8)
    crop = square_crop(np.array([32.0, 32.0]), 32.0, 0.0, 32)  # the photo's middle 32 x 32, 1:1
    ratio = np.full((32, 32, 3), 2.0, np.float32)
    alpha = np.zeros((32, 32), np.float32)
    alpha[8:24, 8:24] = 1.0
    out = composite_quotient(photo, ratio, alpha, crop)
    assert (out[:10] == 120).all() and (out[:, :10] == 120).all()
    inside = linear_to_srgb8(np.array([2.0 * srgb8_to_linear(np.array([120], np.uint8))[0]]))[0]
    assert abs(int(out[32, 32, 0]) - int(inside)) <= 1


def test_numpy_sh_basis_matches_the_torch_reference():
    import torch

    from facenormals3d.render.shading import sh_basis

    n, _ = sphere_pixels(16)
    assert np.allclose(sh_basis_np(n), sh_basis(torch.as_tensor(n)).numpy(), atol=1e-12)


def full_raster(h: int = 64, w: int = 128):
    """An atlas raster covering every texel (the triangle and barycentrics do not matter)."""
    from facenormals3d.mesh.atlas import AtlasRaster

    return AtlasRaster(width=w, height=h, texel=np.arange(h * w), triangle=np.zeros(h * w, np.int64),
                       bary=np.ones((h * w, 3), np.float32) / 3)


def test_dark_texels_are_filled_from_their_lit_surroundings_not_divided():
    from facenormals3d.render.appearance import _fill_dark, _shading_confidence

    h, w = 64, 128
    raster = full_raster(h, w)
    albedo = np.full((h, w, 3), 0.4, np.float32)
    shading = np.ones((h, w, 3), np.float32)
    shading[20:40, 40:80] = 0.05  # a deep shadow where the division blew up
    albedo[20:40, 40:80] = 3.0
    settings = LightingSettings(confident_shading=(0.2, 0.6))
    out, share = _fill_dark(albedo, _shading_confidence(shading, raster, settings), raster, settings)
    assert np.allclose(out[20:40, 40:80], 0.4, atol=1e-3)  # filled from the lit albedo around it
    assert np.allclose(out[:10], 0.4, atol=1e-6)  # well-lit texels keep their division
    assert abs(share - 20 * 40 / (h * w)) < 1e-6
    off = LightingSettings(confident_shading=(0.0, 0.0))
    same, none = _fill_dark(albedo, _shading_confidence(shading, raster, off), raster, off)
    assert none == 0.0 and same is albedo


def test_symmetry_prior_evens_out_a_side_gradient_and_keeps_detail():
    from facenormals3d.render.appearance import _symmetric_levels

    h, w = 64, 128
    raster = full_raster(h, w)
    rows, cols = np.divmod(raster.texel, w)
    mirror = rows * w + (w - 1 - cols)  # the atlas mirrored left-right
    x = (np.arange(w) + 0.5) / w
    rng = np.random.default_rng(0)
    detail = np.exp(0.1 * rng.standard_normal((h, w, 1))).astype(np.float32)
    albedo = (0.4 * np.exp(0.5 * (x - 0.5))[None, :, None] * detail).repeat(3, 2).astype(np.float32)
    out = _symmetric_levels(albedo, raster, mirror, LightingSettings(symmetry_sigma_texels=8.0))
    # The gradient (a light from the right left in the albedo) is gone: both halves agree ...
    left, right = np.log(out[8:-8, 8:56]).mean(), np.log(out[8:-8, 72:120]).mean()
    assert abs(left - right) < 0.02 < abs(np.log(albedo[8:-8, 8:56]).mean() - np.log(albedo[8:-8, 72:120]).mean())
    # ... at their mean level, and the texel-scale detail stays the texel's own.
    assert abs(np.log(out).mean() - np.log(albedo).mean()) < 0.01
    assert np.corrcoef(np.log(out[16:48, 16:112, 0]).ravel(), np.log(detail[16:48, 16:112, 0]).ravel())[0, 1] > 0.9
    same = _symmetric_levels(albedo, raster, np.full_like(mirror, -1), LightingSettings())
    assert np.array_equal(same, albedo)  # no mirror texels: unchanged


def test_mirror_texels_of_a_symmetric_strip_mirror_the_atlas():
    from facenormals3d.mesh.atlas import mirror_texels, rasterize_atlas

    # A strip of 4 x 2 quads in x in [-2, 2], its UVs u = (x + 2) / 4, mirrored at x = 0; the
    # right half's quads are split along the other diagonal (no mirror partner triangle).
    xs, ys = np.arange(-2, 3), np.arange(0, 3)
    xx, yy = np.meshgrid(xs, ys)
    verts = np.stack([xx.ravel(), yy.ravel()], 1).astype(float)
    index = lambda i, j: j * len(xs) + i  # noqa: E731
    faces = []
    for j in range(2):
        for i in range(4):
            a, b, c, d = index(i, j), index(i + 1, j), index(i + 1, j + 1), index(i, j + 1)
            faces += [[a, b, c], [a, c, d]] if i < 2 else [[a, b, d], [b, c, d]]
    faces = np.array(faces)
    uv = np.stack([(verts[:, 0] + 2) / 4, verts[:, 1] / 2], 1)[faces]
    mirror = np.array([index(len(xs) - 1 - i, j) for j in range(len(ys)) for i in range(len(xs))])
    raster = rasterize_atlas(uv, 32, 16)
    m = mirror_texels(raster, faces, uv, mirror)
    rows, cols = np.divmod(raster.texel, 32)
    assert (m >= 0).all()
    assert np.array_equal(m, rows * 32 + (31 - cols))


def test_specular_strength_is_fitted_from_the_signed_residual():
    from facenormals3d.render.lighting import _fit_specular

    n, pixels = sphere_pixels()
    lobe = np.clip(n[:, 2], 0, 1) ** 24
    diffuse = np.full((len(n), 3), 0.5)
    noise = 0.05 * np.random.default_rng(1).standard_normal((len(n), 1))  # shading error, no shine
    ks = _fit_specular(diffuse + noise, diffuse, lobe, pixels, SIZE, LightingSettings())
    assert ks.mean() < 0.02
    shiny = _fit_specular(diffuse + 0.3 * lobe[:, None], diffuse, lobe, pixels, SIZE, LightingSettings())
    assert np.abs(shiny[lobe > 0.5] - 0.3).max() < 0.05


def test_srgb8_to_linear_is_the_table_lookup():
    from facenormals3d.data.albedo import srgb_to_linear
    from facenormals3d.render.appearance import srgb8_to_linear

    table = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
    rng = np.random.default_rng(0)
    for shape in [(7, 5, 3), (7, 5), (3, 4, 4), (9,)]:
        x = rng.integers(0, 256, shape).astype(np.uint8)
        y = srgb8_to_linear(x)
        assert y.dtype == np.float32 and y.shape == x.shape and np.array_equal(y, table[x])
