"""Prior fusion (positions + normals); bilateral on a smooth surface (discontinuities:
test_integration_bilateral.py)."""

import numpy as np
import pytest
import scipy.ndimage as ndi

from integration import Camera, IntegrationSettings, integrate
from integration.surfaces import depth_normals, disc_mask, gaussian_bumps, height_normals

SHAPE = (72, 72)


def _scene():
    mask = disc_mask(SHAPE, 0.45, hole=0.1)
    surf = gaussian_bumps(SHAPE)
    return mask, surf.value, height_normals(surf)


def test_fusion_removes_a_low_frequency_prior_bias():
    mask, truth, normals = _scene()
    rows, cols = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    bias = 3.0 + 0.08 * (cols - 36) + 4.0 * np.cos(rows / 30.0)   # tilt + slow wave
    prior = truth + bias
    res = integrate(normals, mask, prior_depth=prior, prior_weight=1e-5,
                    settings=IntegrationSettings(method="fusion"))
    err = (res.depth - truth)[mask]
    prior_err = bias[mask]
    # with a weak prior the shape comes from the normals, the level from the prior
    assert err.std() < 0.05 * prior_err.std()
    assert abs(err.mean() - prior_err.mean()) < 0.05 * prior_err.std()


def test_fusion_recovers_detail_missing_from_a_blurred_prior():
    mask, truth, normals = _scene()
    prior = ndi.gaussian_filter(truth, 4.0)          # right shape, no detail
    res = integrate(normals, mask, prior_depth=prior, prior_weight=1e-3,
                    settings=IntegrationSettings(method="fusion"))
    # compare shapes: the blur also shifts the prior's level, which fusion keeps
    err = np.std((res.depth - truth)[mask])
    prior_err = np.std((prior - truth)[mask])
    assert err < 0.1 * prior_err


def test_prior_fixes_the_constant_and_fast_path_matches_direct():
    mask, truth, normals = _scene()
    prior = truth + 7.0
    ref = integrate(normals, mask, prior_depth=prior, settings=IntegrationSettings(solver="direct"))
    fast = integrate(normals, mask, prior_depth=prior, settings=IntegrationSettings(method="fusion"))
    assert abs(np.mean(ref.depth[mask] - truth[mask]) - 7.0) < 0.02
    assert np.abs(fast.depth - ref.depth)[mask].max() < 1e-4 * np.ptp(truth[mask])


def test_spatially_varying_prior_weight_anchors_only_where_given():
    mask, truth, normals = _scene()
    prior = truth + 2.0
    weight = np.zeros(SHAPE)
    weight[30:40, 30:40] = 1.0
    res = integrate(normals, mask, prior_depth=prior, prior_weight=weight)
    assert abs(np.mean((res.depth - truth)[mask]) - 2.0) < 0.05


def test_perspective_fusion_takes_the_scale_from_the_prior():
    camera = Camera.from_fov(SHAPE[1], SHAPE[0], 30.0)
    mask = disc_mask(SHAPE, 0.45, hole=0.1)
    surf = gaussian_bumps(SHAPE).scaled(-1.0, offset=400.0)
    normals = depth_normals(surf, camera)
    prior = ndi.gaussian_filter(surf.value, 3.0) * 1.01   # 1 % too far, blurred
    res = integrate(normals, mask, prior_depth=prior, prior_weight=1e-4, camera=camera,
                    settings=IntegrationSettings(method="fusion"))
    ratio = res.depth[mask] / surf.value[mask]
    assert abs(np.median(ratio) - 1.01) < 2e-3         # level from the prior
    assert ratio.std() < 1e-3                          # shape from the normals


def test_bilateral_equals_poisson_on_a_smooth_surface():
    mask, truth, normals = _scene()
    poisson = integrate(normals, mask)
    bilateral = integrate(normals, mask, settings=IntegrationSettings(method="bilateral"))
    assert np.abs(bilateral.depth - poisson.depth)[mask].max() < 0.01 * np.ptp(truth[mask])


@pytest.mark.parametrize("method", ["fusion"])
def test_fusion_requires_a_prior(method):
    mask, _, normals = _scene()
    with pytest.raises(ValueError, match="prior"):
        integrate(normals, mask, settings=IntegrationSettings(method=method))
