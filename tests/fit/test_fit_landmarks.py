"""The landmark fit on analytic cases: known coefficients, invariance, degenerate input."""

import numpy as np
import pytest

from facenormals3d.data.geometry import rotation_matrix
from facenormals3d.errors import InputError
from facenormals3d.fit.landmarks import LandmarkFitSettings, LandmarkFitter, rotation_angles_deg
from facenormals3d.fit.model import load_face_model
from facenormals3d.similarity import umeyama


@pytest.fixture(scope="module")
def model():
    return load_face_model()


@pytest.fixture(scope="module")
def weak_prior_fitter(model):
    # Noise-free landmarks: tiny priors so the fit is (nearly) exact.
    return LandmarkFitter(model, LandmarkFitSettings(identity_prior=1e-4, expression_prior=1e-4, z_weight=1.0,
                                                     iterations=12))


def _landmarks(model, alpha, beta, yaw=0.0, pitch=0.0, roll=0.0, scale=1.0, shift=(0.0, 0.0, 0.0)):
    r = rotation_matrix(yaw, pitch, roll)
    return scale * model.landmark_points(model.shape(alpha, beta)) @ r.T + np.asarray(shift), r


def test_asset_shapes(model):
    v = model.n_vertices
    assert model.identity.shape == (model.n_identity, v, 3) and model.expression.shape == (53, v, 3)
    assert len(model.expression_names) == 53 and "jawOpen" in model.expression_names
    assert model.triangles.max() < v and model.ibug68.shape == (68,)
    assert model.mediapipe_triangles.shape == (478,)
    np.testing.assert_allclose(model.mediapipe_barycentric.sum(1), 1.0, atol=1e-5)
    assert (model.mediapipe_barycentric >= -1e-4).all()
    uv = model.triangle_uvs
    assert uv.min() >= 0 and uv.max() <= 1
    # The mirror map pairs the two halves: mirroring twice comes back for most vertices.
    assert np.mean(model.mirror[model.mirror] == np.arange(v)) > 0.9


def test_face_region_is_the_seen_triangles_of_the_face_parts(model):
    from facenormals3d.fit.model import FACE_REGION_PARTS, PART_HEAD, PART_MOUTH

    parts = model.triangle_parts
    pick = [int(np.flatnonzero(parts == p)[0]) for p in (*FACE_REGION_PARTS, PART_HEAD, PART_MOUTH)]
    tri = np.array([pick + [-1]])  # one pixel per part, and one that sees nothing
    np.testing.assert_array_equal(model.face_region(tri), [[True] * len(FACE_REGION_PARTS) + [False] * 3])


def test_face_region_grows_on_the_surface_only(model):
    from facenormals3d.fit.model import FACE_REGION_PARTS, PART_HEAD

    face = int(np.flatnonzero(model.triangle_parts == FACE_REGION_PARTS[0])[0])
    head = int(np.flatnonzero(model.triangle_parts == PART_HEAD)[0])
    tri = np.full((9, 9), head)
    tri[:, 7:] = -1  # nothing seen there
    tri[4, 4] = face
    grown = model.face_region(tri, grow=2)
    # OpenCV's 5 x 5 ellipse (a disc of radius 2) around the face pixel, nothing elsewhere.
    disc = np.array([[0, 0, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]], bool)
    assert grown[2:7, 2:7].tolist() == disc.tolist() and grown.sum() == disc.sum()
    grown = model.face_region(np.where(np.arange(9) >= 5, -1, tri), grow=2)
    assert not grown[:, 5:].any() and grown[4, 3:5].all()  # never onto pixels that see nothing
    np.testing.assert_array_equal(model.face_region(tri, grow=0), tri == face)
    from facenormals3d.fit.model import PART_MOUTH

    mouth = int(np.flatnonzero(model.triangle_parts == PART_MOUTH)[0])
    tri[:4] = mouth  # an open mouth above the face pixel: the region does not spread into it
    grown = model.face_region(tri, grow=2)
    assert not grown[:4].any() and grown[4, 2:7].all() and grown[6, 4]


def test_fit_recovers_known_coefficients(model, weak_prior_fitter):
    rng = np.random.default_rng(3)
    alpha = np.zeros(model.n_identity)
    alpha[:10] = rng.normal(size=10)
    beta = np.zeros(53)
    beta[model.expression_names.index("jawOpen")] = 0.5
    beta[model.expression_names.index("eyeBlink_L")] = 0.7
    target, r = _landmarks(model, alpha, beta, yaw=25, pitch=-10, roll=5, scale=1.1, shift=(4, -3, 20))
    fit = weak_prior_fitter.fit(target)
    assert fit.summary()["landmark_rms_mm"] < 0.3 and fit.summary()["outliers"] == 0
    true_vertices = 1.1 * model.shape(alpha, beta) @ r.T + np.array([4, -3, 20])
    fitted = fit.pose.apply(model.shape(fit.alpha, fit.beta))
    face = np.unique(model.triangles[model.triangle_parts == 0])
    # Identity modes carry overall size too, so size splits between pose and shape: compare
    # after a similarity, on the face the landmarks constrain.
    aligned = umeyama(fitted[face], true_vertices[face]).apply(fitted[face])
    assert np.median(np.linalg.norm(aligned - true_vertices[face], axis=1)) < 0.5
    assert abs(fit.beta[model.expression_names.index("jawOpen")] - 0.5) < 0.1
    assert abs(fit.beta[model.expression_names.index("eyeBlink_L")] - 0.7) < 0.15
    angles = rotation_angles_deg(fit.pose.rotation)
    assert abs(angles["yaw"] - 25) < 2 and abs(angles["pitch"] + 10) < 2 and abs(angles["roll"] - 5) < 2


def test_rotation_angles_match_the_engine_convention():
    for yaw, pitch, roll in [(30, 0, 0), (0, 20, 0), (0, 0, -15), (70, -10, 12)]:
        a = rotation_angles_deg(rotation_matrix(yaw, pitch, roll))
        np.testing.assert_allclose([a["yaw"], a["pitch"], a["roll"]], [yaw, pitch, roll], atol=1e-6)


def test_fit_is_invariant_to_position_and_scale(model):
    fitter = LandmarkFitter(model)
    rng = np.random.default_rng(0)
    alpha = rng.normal(size=model.n_identity) * 0.5
    base, _ = _landmarks(model, alpha, np.zeros(53), yaw=15)
    base = base + rng.normal(scale=0.7, size=base.shape)  # mediapipe-like noise
    a = fitter.fit(base)
    b = fitter.fit(2.5 * base + np.array([30.0, -12.0, 7.0]))
    # Priors are in mm, so a pure scale changes their relative weight a little.
    np.testing.assert_allclose(b.pose.scale / a.pose.scale, 2.5, rtol=0.02)
    shape_a = model.shape(a.alpha, a.beta)
    shape_b = model.shape(b.alpha, b.beta)
    assert np.median(np.linalg.norm(shape_a - shape_b, axis=1)) < 0.5


def test_profile_landmarks_give_a_full_posed_face(model):
    target, _ = _landmarks(model, np.zeros(model.n_identity), np.zeros(53), yaw=80)
    fit = LandmarkFitter(model).fit(target)
    assert abs(rotation_angles_deg(fit.pose.rotation)["yaw"] - 80) < 3
    v = fit.pose.apply(model.shape(fit.alpha, fit.beta))
    assert v.shape == (model.n_vertices, 3) and np.isfinite(v).all()


@pytest.mark.parametrize("case", ["nan", "equal", "collinear", "shape"])
def test_degenerate_landmarks_raise_a_clear_error(model, case):
    lm = model.landmark_points(model.mean)
    if case == "nan":
        lm[5, 1] = np.nan
    elif case == "equal":
        lm[:] = 3.0
    elif case == "collinear":
        lm = np.outer(np.linspace(0, 1, 478), [1.0, 2.0, 3.0])
    else:
        lm = lm[:100]
    with pytest.raises(InputError, match="photo.jpg face 0"):
        LandmarkFitter(model).fit(lm, "photo.jpg face 0")
