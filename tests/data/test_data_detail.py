"""The detail layer: closed-form gradients against finite differences, and its effect on normals."""

from __future__ import annotations

import numpy as np

from facenormals3d.data import textures as tx


def groove_height(xy, a, b, depth, width, t0):
    """Reference: the groove's height, written directly from its definition."""
    ab = b - a
    t = np.clip(((xy - a) @ ab) / (ab @ ab), 0, 1)
    d = np.linalg.norm(xy - (a + t[:, None] * ab), axis=1)
    return -depth * np.exp(-(d / width) ** 2) * np.sin(np.pi * (t0 + (1 - t0) * t))


def test_groove_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    a, b = np.array([-5.0, 2.0]), np.array([12.0, -9.0])
    xy = rng.uniform(-12, 18, size=(4000, 2))
    grad = np.zeros_like(xy)
    tx._add_groove(grad, xy, a, b, 0.6, 2.5, t0=0.1)
    eps = 1e-4
    fd = np.stack([(groove_height(xy + [eps, 0], a, b, 0.6, 2.5, 0.1) - groove_height(xy - [eps, 0], a, b, 0.6, 2.5, 0.1)),
                   (groove_height(xy + [0, eps], a, b, 0.6, 2.5, 0.1) - groove_height(xy - [0, eps], a, b, 0.6, 2.5, 0.1))],
                  axis=1) / (2 * eps)
    # Away from the segment's end caps (where t clamps and the height has a kink).
    ab = b - a
    t_raw = ((xy - a) @ ab) / (ab @ ab)
    ok = (t_raw > 0.02) & (t_raw < 0.98)
    np.testing.assert_allclose(grad[ok], fd[ok], atol=1e-5)
    assert np.abs(grad).max() > 0.1  # the groove is really there


def test_surface_gradient_of_a_linear_height_on_a_tilted_plane():
    # A plane through the origin spanned by t1, t2; parameters (a, b) are coordinates along them.
    t1 = np.array([1.0, 0.0, 0.5]) / np.sqrt(1.25)
    t2 = np.array([0.0, 1.0, 0.0])
    corners = np.array([[0, 0], [3, 0.5], [0.5, 2]], dtype=np.float64)
    pts = corners @ np.stack([t1, t2])
    edges = (pts[1:] - pts[:1])[None].repeat(5, axis=0)
    deltas = (corners[1:] - corners[:1])[None].repeat(5, axis=0)
    dh = np.array([[0.2, -0.1]] * 5)
    g = tx.surface_gradient(edges[:, 0], edges[:, 1], deltas, dh)
    np.testing.assert_allclose(g, np.broadcast_to(0.2 * t1 - 0.1 * t2, (5, 3)), atol=1e-6)


def test_perturbed_normals_are_unit_and_tilt_against_the_slope():
    n = np.tile([0.0, 0.0, 1.0], (3, 1))
    g = np.array([[0.1, 0, 0], [0, -0.2, 0], [0, 0, 0.5]])  # the last one is purely normal
    out = tx.perturb_normals(n, g)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert out[0, 0] < 0 and out[1, 1] > 0
    np.testing.assert_allclose(out[2], [0, 0, 1], atol=1e-7)


def test_noise_bank_derivatives_are_consistent():
    bank = tx.noise_bank(256)
    # Tile-space central differences of the value channels against the stored derivatives.
    for value, du, dv in ((tx.FINE, tx.FINE_DU, tx.FINE_DV), (tx.MID, tx.MID_DU, tx.MID_DV)):
        h = bank[..., value].astype(np.float64)
        fd_u = (np.roll(h, -1, axis=1) - np.roll(h, 1, axis=1)) / (2 / 256)
        fd_v = (np.roll(h, -1, axis=0) - np.roll(h, 1, axis=0)) / (2 / 256)
        for fd, exact in ((fd_u, bank[..., du]), (fd_v, bank[..., dv])):
            corr = np.corrcoef(fd.ravel(), exact.ravel())[0, 1]
            assert corr > 0.9, corr


def test_detail_layer_shows_in_the_ground_truth_normals(tmp_path, monkeypatch):
    from facenormals3d.data.fake_ict import write_fake_ict
    from facenormals3d.data.ict import load_ict
    from facenormals3d.data.synth import SynthEngine, SynthSettings

    monkeypatch.setenv("FACENORMALS3D_CACHE", str(tmp_path / "cache"))
    model = load_ict(write_fake_ict(tmp_path / "ict", n_lat=20, n_lon=28), use_cache=False)
    base = SynthSettings(size=96, background=False, occluder_rate=0.0, glasses_rate=0.0, camera_effects=False, detail=False)
    smooth = SynthEngine(model, base).render_index(0, 1)
    detailed = SynthEngine(model, SynthSettings(size=96, background=False, occluder_rate=0.0, glasses_rate=0.0, camera_effects=False,
                                                detail_strength=1.0)).render_index(0, 1)
    assert np.array_equal(smooth.mask, detailed.mask) and np.array_equal(smooth.depth, detailed.depth)
    m = smooth.mask
    angle = np.degrees(np.arccos(np.clip(np.sum(smooth.normals[m] * detailed.normals[m], axis=1), -1, 1)))
    assert 0.2 < np.mean(angle) < 15.0  # visible but not wild
