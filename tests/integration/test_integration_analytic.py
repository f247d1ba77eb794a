"""Integration against surfaces with known answers (orthographic and perspective)."""

import numpy as np
import pytest

from integration import Camera, IntegrationSettings, depth_to_points, integrate
from integration.surfaces import (Field, depth_normals, disc_mask, gaussian_bumps,
                                  height_normals, plane, sphere_cap, sphere_depth)

SHAPE = (72, 72)
DIRECT = IntegrationSettings(solver="direct")
AMG = IntegrationSettings(solver="amg")


def _centred(z, mask):
    return z - np.nanmean(z[mask])


def test_plane_orthographic_is_exact_with_both_solvers():
    mask = disc_mask(SHAPE, 0.45, hole=0.1)
    surf = plane(SHAPE, 0.3, -0.7)
    normals = height_normals(surf, pixel_size=1.0)
    for settings in (DIRECT, AMG):
        res = integrate(normals, mask, settings=settings)
        assert np.all(np.isnan(res.depth[~mask])) and np.all(np.isfinite(res.depth[mask]))
        assert abs(np.mean(res.depth[mask])) < 1e-9  # free constant: mean zero
        np.testing.assert_allclose(res.depth[mask], _centred(surf.value, mask)[mask], atol=1e-6)


def test_pixel_size_scales_the_height():
    mask = disc_mask(SHAPE, 0.45, hole=0.1)
    surf = gaussian_bumps(SHAPE)
    normals = height_normals(surf)
    a = integrate(normals, mask, settings=IntegrationSettings(pixel_size=1.0))
    b = integrate(normals, mask, settings=IntegrationSettings(pixel_size=0.25))
    np.testing.assert_allclose(b.depth[mask], 0.25 * a.depth[mask], rtol=1e-5, atol=1e-6)


def test_sphere_cap_orthographic():
    mask = disc_mask(SHAPE, 0.4, hole=0.08)           # n_z >= ~0.45 on this disc
    surf = sphere_cap(SHAPE, radius=0.45 * SHAPE[1])
    normals = height_normals(surf)
    res = integrate(normals, mask, settings=AMG)
    truth = _centred(surf.value, mask)
    err = np.abs(res.depth - truth)[mask]
    depth_range = np.ptp(truth[mask])
    assert err.mean() < 5e-3 * depth_range
    assert res.converged and res.iterations > 0


def test_gaussians_fast_path_matches_direct_and_truth():
    mask = disc_mask(SHAPE, 0.45, hole=0.1)
    surf = gaussian_bumps(SHAPE)
    normals = height_normals(surf)
    ref = integrate(normals, mask, settings=DIRECT)
    fast = integrate(normals, mask, settings=AMG)
    cold = integrate(normals, mask, settings=IntegrationSettings(warm_start=False))
    truth = _centred(surf.value, mask)
    depth_range = np.ptp(truth[mask])
    assert np.abs(ref.depth - truth)[mask].mean() < 2e-3 * depth_range
    assert ref.solver == "direct" and fast.solver == "amg"
    for res in (fast, cold):
        assert np.abs(res.depth - ref.depth)[mask].max() < 1e-4 * depth_range
        assert res.residual < 1e-6


def test_dct_equals_direct_on_full_rectangle():
    shape = (40, 56)
    mask = np.ones(shape, bool)
    normals = height_normals(gaussian_bumps(shape))
    ref = integrate(normals, mask, settings=DIRECT)
    dct = integrate(normals, mask, settings=IntegrationSettings(method="dct"))
    assert dct.solver == "dct"
    np.testing.assert_allclose(dct.depth, ref.depth, atol=1e-8)


def test_dct_on_a_disc_is_close_but_biased_at_the_edge():
    mask = disc_mask(SHAPE, 0.45, hole=0.1)
    surf = gaussian_bumps(SHAPE)
    normals = height_normals(surf)
    truth = _centred(surf.value, mask)
    dct = integrate(normals, mask, settings=IntegrationSettings(method="dct"))
    ref = integrate(normals, mask, settings=DIRECT)
    err_dct = np.abs(dct.depth - truth)[mask].mean()
    err_ref = np.abs(ref.depth - truth)[mask].mean()
    assert err_ref < err_dct < 0.05 * np.ptp(truth[mask])


def _perspective_gaussians(camera):
    bumps = gaussian_bumps(SHAPE, scale=0.3)
    # distance ~ 400 px-units with bumps of up to ~20 towards the camera
    return bumps.scaled(-1.0, offset=400.0)


@pytest.mark.parametrize("solver", ["direct", "amg"])
def test_perspective_gaussians_up_to_scale(solver):
    camera = Camera.from_fov(SHAPE[1], SHAPE[0], 30.0)
    mask = disc_mask(SHAPE, 0.45, hole=0.1)
    surf = _perspective_gaussians(camera)
    normals = depth_normals(surf, camera)
    res = integrate(normals, mask, camera=camera, settings=IntegrationSettings(solver=solver))
    assert res.perspective
    # without a prior the scale is free: geometric mean = reference_depth (1.0)
    assert abs(np.mean(np.log(res.depth[mask]))) < 1e-9
    truth = surf.value / np.exp(np.mean(np.log(surf.value[mask])))
    rel = np.abs(res.depth - truth)[mask] / truth[mask]
    relief = np.ptp(truth[mask]) / truth[mask].mean()   # ~5 % of the distance
    assert rel.max() < 0.01 * relief


def test_perspective_sphere_with_prior_scale():
    camera = Camera(fx=90.0, fy=90.0, cx=36.0, cy=36.0)
    centre = np.array([0.05, -0.03, -3.0])
    depth, normals = sphere_depth(camera, SHAPE, centre, radius=1.0)
    mask = disc_mask(SHAPE, 0.3, hole=0.05) & np.isfinite(depth)
    # a prior known only at the (accurate) centre pixel fixes the scale
    prior = np.full(SHAPE, np.nan)
    prior[36, 36] = depth[36, 36]
    res = integrate(normals, mask, camera=camera, prior_depth=prior, prior_weight=1.0)
    points = depth_to_points(res.depth, camera)[mask]
    radii = np.linalg.norm(points - centre, axis=1)
    assert np.abs(radii - 1.0).max() < 2e-3
    assert np.abs(res.depth - depth)[mask].max() < 2e-3


def test_depth_to_points_follows_opengl_axes():
    camera = Camera(fx=100.0, fy=100.0, cx=2.5, cy=1.5)
    depth = np.full((3, 5), 2.0)
    pts = depth_to_points(depth, camera)
    np.testing.assert_allclose(pts[1, 2], [0.0, 0.0, -2.0])   # the principal point pixel
    assert pts[1, 4, 0] > 0 and pts[2, 2, 1] < 0               # right is +x, down is -y
    np.testing.assert_allclose(pts[1, 4, 0], 2 * 2.0 / 100.0)


def test_custom_field_normals_match_finite_differences():
    # the exact perspective normals agree with normals from the back-projected points
    camera = Camera.from_fov(SHAPE[1], SHAPE[0], 40.0)
    surf = _perspective_gaussians(camera)
    n = depth_normals(surf, camera)
    pts = depth_to_points(surf.value, camera)
    du = np.gradient(pts, axis=1)
    dv = np.gradient(pts, axis=0)
    fd = np.cross(dv, du)  # rows go down (-y), cols right (+x): dv x du points to +z
    fd /= np.linalg.norm(fd, axis=-1, keepdims=True)
    inner = (slice(2, -2), slice(2, -2))
    assert np.min(np.sum(fd[inner] * n[inner], axis=-1)) > 0.999
    assert isinstance(surf, Field)
