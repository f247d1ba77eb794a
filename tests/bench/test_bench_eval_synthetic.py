"""The synthetic benchmark: exact ground truth from the engine, the pipeline scored on it."""

import numpy as np
import pytest

from facenormals3d.conventions import NOW_IBUG68
from facenormals3d.bench.eval_synthetic import SyntheticEvalSettings, evaluate_synthetic, ground_truth_surface


def test_ground_truth_surface_is_the_posed_face(ict_model):
    from facenormals3d.data.synth import SynthEngine

    model = ict_model
    sample = SynthEngine(model).render_index(5, 0, "test")
    points, lm7 = ground_truth_surface(sample, model)
    assert points.shape[1] == 3 and len(points) > 5000
    np.testing.assert_allclose(lm7, sample.vertices_camera[np.asarray(model.landmarks)[list(NOW_IBUG68)]])
    # In front of the camera (OpenGL: z < 0) and face-sized (cheek to cheek ~ 10-20 cm).
    assert np.all(points[:, 2] < 0)
    assert 90 < np.ptp(points[:, 0]) < 220
    # The landmarks project onto the rendered landmark positions.
    cam = sample.params["camera"]["crop"]
    uv = np.stack([cam["focal"] * lm7[:, 0] / -lm7[:, 2] + cam["cx"],
                   -cam["focal"] * lm7[:, 1] / -lm7[:, 2] + cam["cy"]], axis=1)
    np.testing.assert_allclose(uv, sample.landmarks68[list(NOW_IBUG68)], atol=0.5)


def test_baseline_and_landmark_fit_score_on_held_out_faces(ict_dir):
    res = evaluate_synthetic(str(ict_dir), SyntheticEvalSettings(n=2, methods=("mediapipe_mesh", "fit_landmarks")))
    rows = {r["method"]: r for r in res.rows}
    assert set(rows) == {"mediapipe_mesh", "fit_landmarks"} and len(res.samples) == 4
    assert "optimistic" in res.caveat
    for row in rows.values():
        assert row["samples"] == 2
        if row["failed"] < 2:
            # Neither perfect nor useless.
            assert 3.0 < row["normal_mean_deg"] < 45.0
            assert 0.3 < row["coverage"] <= 1.0
            # Over every sample a miss counts 0: the scored faces' mean scaled by their share.
            assert row["coverage_all"] == pytest.approx(row["coverage"] * (2 - row["failed"]) / 2)
            assert 0.2 < row["mesh_median_mm"] < 15.0
            assert 0.1 < row["visible_median_mm"] < 15.0 and row["seconds_per_face"] > 0
            # The hair split partitions the same pixels: the pooled mean lies between its parts.
            parts = [row[k] for k in ("mean_deg_under_hair", "mean_deg_bare_skin") if np.isfinite(row[k])]
            assert parts and min(parts) - 1e-6 <= row["normal_mean_deg"] <= max(parts) + 1e-6
            assert 0 <= row["hair_faces"] <= 2 - row["failed"]
            # The glasses split counts the scored faces whose render wears glasses.
            worn = [r["glasses"] for r in res.samples if r["method"] == row["method"] and "error" not in r]
            assert row["glasses_faces"] == sum(worn)
            assert np.isfinite(row["mean_deg_glasses_faces"]) == any(worn)


def test_normal_errors_of_a_turned_crop_are_scored_in_the_image_frame(ict_model):
    """The exact normals seen in a crop turned by 15 degrees (turned with it, as the
    pipeline's normals are) score ~0 against the image's own normals."""
    from types import SimpleNamespace

    from facenormals3d.bench.eval_synthetic import _normal_errors
    from facenormals3d.data.synth import SynthEngine
    from facenormals3d.face.crop import CropTransform, warp_to_crop

    sample = SynthEngine(ict_model).render_index(5, 0, "test")
    size = sample.mask.shape[0]
    a = np.radians(15.0)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    centre = np.array([size / 2.0, size / 2.0])
    transform = CropTransform(np.hstack([rot, (centre - rot @ centre)[:, None]]), size)
    assert abs(abs(transform.roll_deg) - 15.0) < 1e-6
    seen = warp_to_crop(np.nan_to_num(sample.normals), transform, order=1)
    mask = warp_to_crop(sample.mask.astype(np.uint8), transform, order=0) > 0
    # Into the crop's frame: the inverse of directions_to_photo (a turn about z).
    r = np.radians(transform.roll_deg)
    crop_n = seen.copy()
    crop_n[..., 0] = np.cos(r) * seen[..., 0] - np.sin(r) * seen[..., 1]
    crop_n[..., 1] = np.sin(r) * seen[..., 0] + np.cos(r) * seen[..., 1]
    np.testing.assert_allclose(transform.directions_to_photo(crop_n), seen, atol=1e-6)
    crop_n = np.where(mask[..., None], crop_n, np.nan)
    regions = np.zeros(sample.mask.shape, np.int64)
    err, _, _, cover = _normal_errors(crop_n, mask, SimpleNamespace(transform=transform), sample, regions)
    assert cover > 0.9
    assert np.median(err) < 2.0  # 1.2: resampled twice; not turned back: 8.3


def test_hair_share_counts_hidden_face_pixels():
    from types import SimpleNamespace

    from facenormals3d.bench.eval_synthetic import hair_share

    mask = np.zeros((4, 4), bool)
    mask[:2] = True  # 8 face pixels
    hair = np.zeros((4, 4), np.float32)
    hair[0, :2] = 0.9  # 2 of them under hair
    hair[3, :] = 1.0  # hair outside the face does not count
    assert hair_share(SimpleNamespace(mask=mask, hair=hair)) == 0.25
    assert hair_share(SimpleNamespace(mask=mask, hair=None)) == 0.0


def test_visible_points_are_the_front_of_the_face(ict_model):
    from facenormals3d.data.synth import SynthEngine
    from facenormals3d.bench.eval_synthetic import visible_points

    model = ict_model
    sample = SynthEngine(model).render_index(5, 0, "test")
    points, _ = ground_truth_surface(sample, model)
    seen = visible_points(sample, model)
    assert 0.2 < seen.mean() < 0.95
    # Seen points are nearer the camera than the hidden ones, on average.
    assert points[seen, 2].mean() > points[~seen, 2].mean()
