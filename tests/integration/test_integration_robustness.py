"""Awkward inputs: holes, several components, islands, grazing/NaN normals, bad shapes."""

import numpy as np
import pytest

from integration import Camera, IntegrationSettings, integrate
from integration.surfaces import disc_mask, gaussian_bumps, height_normals, plane, sphere_cap

SHAPE = (64, 64)


def _bumps():
    surf = gaussian_bumps(SHAPE)
    return surf.value, height_normals(surf)


def test_empty_mask_is_a_clear_error():
    _, normals = _bumps()
    with pytest.raises(ValueError, match="mask: no pixel"):
        integrate(normals, np.zeros(SHAPE, bool))


@pytest.mark.parametrize("kwargs, match", [
    ({"normals": np.zeros((64, 64))}, "H x W x 3"),
    ({"normals": np.zeros((64, 64, 4))}, "H x W x 3"),
    ({"mask": np.ones((64, 63), bool)}, "mask: shape"),
    ({"prior_depth": np.zeros((3, 3))}, "prior_depth: shape"),
    ({"prior_depth": np.zeros(SHAPE), "prior_weight": np.ones((2, 2))}, "prior_weight: shape"),
    ({"prior_depth": np.zeros(SHAPE), "prior_weight": -1.0}, "prior_weight"),
    ({"confidence": np.ones((5, 5))}, "confidence: shape"),
    ({"confidence": -np.ones(SHAPE)}, "confidence"),
    ({"prior_weight": 1.0}, "without prior_depth"),
])
def test_bad_inputs_raise_value_errors(kwargs, match):
    _, normals = _bumps()
    args = {"normals": normals, "mask": np.ones(SHAPE, bool)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        integrate(args.pop("normals"), args.pop("mask"), **args)


def test_bad_settings_raise():
    with pytest.raises(ValueError):
        IntegrationSettings(method="magic")
    with pytest.raises(ValueError):
        IntegrationSettings(pixel_size=0.0)
    with pytest.raises(ValueError):
        Camera(fx=-1.0, fy=1.0, cx=0.0, cy=0.0)


def test_each_component_gets_its_own_constant_and_islands_survive():
    height, normals = _bumps()
    mask = np.zeros(SHAPE, bool)
    mask[4:40, 4:30] = True
    mask[10:60, 36:60] = True
    mask[50, 10] = True                      # one-pixel island
    mask[55:57, 15] = True                   # two-pixel island
    for solver in ("direct", "amg"):
        res = integrate(normals, mask, settings=IntegrationSettings(solver=solver))
        assert res.n_components == 4
        assert np.all(np.isfinite(res.depth[mask]))
        assert res.depth[50, 10] == pytest.approx(0.0, abs=1e-12)
        for rows, cols in ((slice(4, 40), slice(4, 30)), (slice(10, 60), slice(36, 60))):
            got = res.depth[rows, cols]
            want = height[rows, cols] - height[rows, cols].mean()
            assert abs(got.mean()) < 1e-8
            assert np.abs(got - want).max() < 0.05 * np.ptp(want)


def test_nan_normals_are_filled_not_propagated():
    height, normals = _bumps()
    mask = disc_mask(SHAPE, 0.45)
    broken = normals.copy()
    broken[28:36, 20:30] = np.nan            # a patch of unknown normals
    broken[5, 5] = 0.0                       # zero-length normal (outside the disc anyway)
    ref = integrate(normals, mask)
    res = integrate(broken, mask)
    assert np.all(np.isfinite(res.depth[mask]))
    far = mask.copy()
    far[20:44, 12:38] = False
    offset = np.mean((res.depth - ref.depth)[far])
    assert np.abs(res.depth - ref.depth - offset)[far].max() < 0.05 * np.ptp(height[mask])


def test_zero_confidence_acts_like_unknown_normals():
    _, normals = _bumps()
    mask = disc_mask(SHAPE, 0.45)
    conf = np.ones(SHAPE)
    conf[28:36, 20:30] = 0.0
    garbage = normals.copy()
    garbage[28:36, 20:30] = [0.6, -0.6, 0.52]   # wrong but finite normals
    nan_normals = normals.copy()
    nan_normals[28:36, 20:30] = np.nan
    a = integrate(garbage, mask, confidence=conf)
    b = integrate(nan_normals, mask)
    np.testing.assert_allclose(a.depth[mask], b.depth[mask], atol=1e-6)


def test_grazing_normals_at_the_rim_stay_finite_and_local():
    radius = 0.45 * SHAPE[1]
    surf = sphere_cap(SHAPE, radius)
    normals = height_normals(surf)
    mask = np.isfinite(surf.value)           # the whole hemisphere: n_z -> 0 at the rim
    normals[mask & (normals[..., 2] < 0.05)] *= [1.0, 1.0, -1.0]   # even back-facing ones
    res = integrate(normals, mask)
    assert np.all(np.isfinite(res.depth[mask]))
    inner = disc_mask(SHAPE, 0.3)
    err = res.depth - surf.value
    err -= np.mean(err[inner])
    assert np.abs(err[inner]).max() < 0.03 * radius


def test_non_finite_prior_pixels_are_ignored():
    surf = plane(SHAPE, 0.1, 0.2, offset=5.0)
    normals = height_normals(surf)
    mask = disc_mask(SHAPE, 0.45)
    prior = surf.value.copy()
    prior[::3] = np.nan
    prior[1::7] = np.inf
    res = integrate(normals, mask, prior_depth=prior, prior_weight=0.1)
    np.testing.assert_allclose(res.depth[mask], surf.value[mask], atol=1e-6)
    with pytest.raises(ValueError, match="no finite prior"):
        integrate(normals, mask, prior_depth=np.full(SHAPE, np.nan))


def test_perspective_prior_must_be_positive():
    surf = plane(SHAPE, 0.0, 0.0, offset=5.0)
    normals = height_normals(surf)
    camera = Camera.from_fov(SHAPE[1], SHAPE[0], 40.0)
    with pytest.raises(ValueError, match="positive"):
        integrate(normals, np.ones(SHAPE, bool), camera=camera, prior_depth=-np.ones(SHAPE))


def test_tiny_masks_and_single_pixel_images():
    res = integrate(np.array([[[0.0, 0.0, 1.0]]]), np.ones((1, 1), bool))
    assert res.depth.shape == (1, 1) and res.depth[0, 0] == 0.0
    normals = np.zeros((3, 4, 3))
    normals[..., 2] = 1.0
    res = integrate(normals, np.ones((3, 4), bool), settings=IntegrationSettings(method="dct"))
    np.testing.assert_allclose(res.depth, 0.0, atol=1e-12)
