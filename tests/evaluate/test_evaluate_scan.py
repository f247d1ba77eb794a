"""Scan-to-mesh evaluation: known similarities undone, self-score ~0, scale and units."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from facenormals3d.bench.evaluate import face_surface, make_case, sample_surface
from facenormals3d.evaluate.alignment import MeshDistance, Similarity, umeyama
from facenormals3d.evaluate.scan import ScanEvalSettings, crop_region, evaluate_scan


@pytest.fixture(scope="module")
def case():
    return make_case(n_scan=8000, n_triangles=6000, noise_mm=0.2, deform_mm=0.0, landmark_noise_mm=3.0)


def test_umeyama_recovers_similarity_without_reflection():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20, 3))
    true = Similarity(2.5, Rotation.from_rotvec([0.3, -1.0, 0.5]).as_matrix(), np.array([1.0, 2, 3]))
    est = umeyama(a, true.apply(a))
    assert est.scale == pytest.approx(2.5)
    np.testing.assert_allclose(est.rotation, true.rotation, atol=1e-10)
    mirrored = umeyama(a, a * [-1, 1, 1])
    assert np.linalg.det(mirrored.rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(true.then(true.inverse()).apply(a), a, atol=1e-10)


def test_exact_point_to_triangle_distance():
    v = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]], float)
    md = MeshDistance(v, np.array([[0, 1, 2]]))
    q = np.array([[1, 1, 3.0], [20, 0, 0], [-3, -4, 0]])
    np.testing.assert_allclose(md.distance(q), [3.0, 10.0, 5.0], atol=1e-4)


def test_known_similarity_and_noise_are_undone(case):
    res = evaluate_scan(case["pred_v"], case["pred_f"], case["pred_lm"], case["scan_points"],
                        case["scan_lm"])
    # |N(0, 0.2)| projected on the normal: median 0.674 * 0.2 = 0.135 mm.
    assert res.median < 0.2
    assert res.similarity.scale == pytest.approx(case["similarity"].scale, rel=2e-3)
    landmark_only = evaluate_scan(case["pred_v"], case["pred_f"], case["pred_lm"], case["scan_points"],
                                  case["scan_lm"], ScanEvalSettings(refine=False))
    assert landmark_only.median > 3 * res.median  # 3 mm landmark noise needed the refinement


def test_mesh_against_itself_scores_zero():
    v, f, lm = face_surface(4000)
    pts = sample_surface(v, f, 3000)
    res = evaluate_scan(v, f, lm, pts, lm)
    assert res.median < 1e-3 and res.mean < 1e-3
    assert res.similarity.scale == pytest.approx(1.0, abs=1e-4)


def test_metric_keeps_scale_and_units_convert(case):
    v, f, lm = face_surface(4000)
    pts = sample_surface(v, f, 3000)
    # Prediction half the size: free scale recovers it, metric keeps it and reports the error.
    free = evaluate_scan(v * 0.5, f, lm * 0.5, pts, lm)
    metric = evaluate_scan(v * 0.5, f, lm * 0.5, pts, lm, ScanEvalSettings(metric=True))
    assert free.similarity.scale == pytest.approx(2.0, rel=1e-3) and free.median < 0.01
    assert metric.similarity.scale == 1.0 and metric.median > 5.0
    # A metric prediction in metres, converted to mm, scores ~0 with --metric.
    from facenormals3d.evaluate.scan_io import UNIT_TO_MM
    in_m = v / 1000.0
    ok = evaluate_scan(in_m * UNIT_TO_MM["m"], f, lm / 1000.0 * UNIT_TO_MM["m"], pts, lm,
                       ScanEvalSettings(metric=True))
    assert ok.median < 1e-3


def test_crop_rule_matches_now_definition():
    _, _, lm = face_surface(2000)
    centre, radius = crop_region(lm)
    bridge = (lm[1] + lm[2]) / 2
    np.testing.assert_allclose(centre, lm[4] + 0.3 * (bridge - lm[4]))
    assert radius == pytest.approx(0.7 * (np.linalg.norm(lm[0] - lm[3]) + np.linalg.norm(bridge - lm[4])))


def test_scan_far_from_landmarks_is_refused():
    from facenormals3d.errors import InputError

    v, f, lm = face_surface(2000)
    with pytest.raises(InputError, match="within"):
        evaluate_scan(v, f, lm, v + 1000.0, lm)


def test_too_many_points_subsampled_deterministically():
    v, f, lm = face_surface(2000)
    pts = sample_surface(v, f, 5000)
    a = evaluate_scan(v, f, lm, pts, lm, ScanEvalSettings(max_points=1000))
    b = evaluate_scan(v, f, lm, pts, lm, ScanEvalSettings(max_points=1000))
    assert a.n_points == 1000 and any("subset" in n for n in a.notes)
    np.testing.assert_array_equal(a.scan_indices, b.scan_indices)
