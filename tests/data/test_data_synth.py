"""The synthetic engine: geometry against depth, landmarks, determinism, splits, alignment."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from facenormals3d.data.fake_ict import write_fake_ict
from facenormals3d.data.geometry import image_camera_rotation
from facenormals3d.data.ict import load_ict
from facenormals3d.data.synth import SynthEngine, SynthSettings, identity_id, identity_split
from facenormals3d.face.crop import CropSettings, crop_from_points
from facenormals3d.face.topology import CROP_POINTS_IBUG68

PLAIN = SynthSettings(size=128, detail=False, background=False, occluder_rate=0.0, glasses_rate=0.0, hair=False,
                      shoulders=False, camera_effects=False)


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACENORMALS3D_CACHE", str(tmp_path_factory.mktemp("cache")))
        folder = write_fake_ict(tmp_path_factory.mktemp("ict") / "ICT-FaceKit")
        load_ict(folder)
        yield folder


def depth_normals(sample) -> np.ndarray:
    """Normals from central differences of the depth map, through the crop camera (the
    render camera's frame), turned into the crop's own camera's frame (the truth's)."""
    cam = sample.params["camera"]["crop"]
    size = sample.depth.shape[0]
    c = np.arange(size) + 0.5
    u, v = np.meshgrid(c, c)
    d = sample.depth
    pts = np.stack([d * (u - cam["cx"]) / cam["focal"], -d * (v - cam["cy"]) / cam["focal"], -d], axis=-1)
    tu = np.zeros_like(pts)
    tv = np.zeros_like(pts)
    tu[:, 1:-1] = pts[:, 2:] - pts[:, :-2]
    tv[1:-1] = pts[2:] - pts[:-2]
    n = np.cross(tu, -tv)  # image v runs down; -tv points up
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    return n @ image_camera_rotation(cam["focal"], cam["cx"], cam["cy"], cam["size"])


def interior(mask: np.ndarray, margin: int = 3) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_erosion(mask, iterations=margin)


def angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1, 1)))


def test_normals_agree_with_depth_finite_differences(model):
    engine = SynthEngine(model, PLAIN)
    for index in range(3):
        s = engine.render_index(0, index)
        inner = interior(s.mask)
        assert inner.sum() > 500
        err = angles_deg(s.normals[inner], depth_normals(s)[inner])
        assert np.median(err) < 2.5 and np.percentile(err, 95) < 6.0, (np.median(err), np.percentile(err, 95))
        assert np.all(s.normals[inner][:, 2] > 0)  # visible surface faces the camera (+z)


def test_crop_own_camera_looks_through_the_crop_centre():
    # A principal point at the crop's centre: the render camera is the crop's own.
    np.testing.assert_allclose(image_camera_rotation(500.0, 64.0, 64.0, 128), np.eye(3), atol=1e-12)
    focal, cx, cy, size = 1866.0, 490.0, -218.0, 256  # a seed-777 test render's crop
    r = image_camera_rotation(focal, cx, cy, size)
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    # Its optical axis (-z) is the ray through the crop's centre pixel (x right, y up).
    ray = np.array([(128 - cx) / focal, -(128 - cy) / focal, -1.0])
    np.testing.assert_allclose(r @ [0.0, 0.0, -1.0], ray / np.linalg.norm(ray), atol=1e-12)
    # The smallest turn: about the axis perpendicular to both optical axes, which stays put.
    axis = np.cross([0.0, 0.0, 1.0], r[:, 2])
    np.testing.assert_allclose(r @ axis, axis, atol=1e-12)
    # The turn is the off-axis angle: ~15.5 deg here.
    assert np.degrees(np.arccos(r[2, 2])) == pytest.approx(np.degrees(np.arctan(np.hypot(362, 346) / focal)))


def test_normal_map_orientation_matches_the_convention(model):
    s = SynthEngine(model, replace(PLAIN, geometry=replace(PLAIN.geometry, yaw_deg=0.0, pitch_deg=0.0,
                                                          roll_deg=0.0, off_axis_deg=0.0))).render_index(0, 0)
    ys, xs = np.nonzero(s.mask)
    left, right = s.normals[s.mask][xs < xs.mean() - 15], s.normals[s.mask][xs > xs.mean() + 15]
    top, bottom = s.normals[s.mask][ys < ys.mean() - 15], s.normals[s.mask][ys > ys.mean() + 15]
    assert left[:, 0].mean() < -0.2 < 0.2 < right[:, 0].mean()   # x to the image right
    assert bottom[:, 1].mean() < -0.2 < 0.2 < top[:, 1].mean()   # y up
    np.testing.assert_allclose(np.linalg.norm(s.normals[s.mask], axis=1), 1.0, atol=1e-4)


def test_landmarks_land_where_faces_have_them(model):
    engine = SynthEngine(model, PLAIN)
    s = engine.render_index(0, 0)
    lm = s.landmarks68
    assert np.all((lm > 0) & (lm < 128))
    right_eye, left_eye, mouth = lm[36:42].mean(0), lm[42:48].mean(0), lm[48:60].mean(0)
    assert right_eye[0] < lm[30, 0] < left_eye[0]            # subject's right eye on the image left
    assert max(right_eye[1], left_eye[1]) < lm[33, 1] < mouth[1] < lm[8, 1]  # eyes, nose, mouth, chin
    # The crop is the shared rule on these landmarks, up to the recorded jitter.
    again = crop_from_points(lm[list(CROP_POINTS_IBUG68)], CropSettings(size=128))
    k = s.params["camera"]["crop_jitter"]["scale"]
    assert abs(again.scale * k - 1.0) < 0.02
    # The jitter scales about the crop's centre, then shifts: the rule's centre lands at the
    # render's centre plus the recorded shift (until 2026-12-06 the shift was never applied).
    shift = np.array(s.params["camera"]["crop_jitter"]["shift_px"])
    centre = again.to_photo(np.array([[64.0, 64.0]]))[0]
    np.testing.assert_allclose(centre, 64.0 + shift, atol=0.05)
    assert np.array(s.params["camera"]["photo_to_crop"]).shape == (2, 3)
    # Landmarks sit on the rendered head: their pixels were hit.
    px = np.clip(lm.astype(int), 0, 127)
    assert (s.depth[px[:, 1], px[:, 0]] > 0).mean() > 0.95


def test_same_seed_same_sample_and_different_seeds_differ(model):
    engine = SynthEngine(model, SynthSettings())
    a, b = engine.render_index(3, 5), engine.render_index(3, 5)
    for name in ("image", "normals", "mask", "depth", "albedo", "shading", "landmarks68"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = engine.render_index(3, 6)
    assert c.identity != a.identity and c.seed != a.seed
    assert np.abs(c.image.astype(int) - a.image.astype(int)).mean() > 5
    assert a.params["identity_coefficients"] != c.params["identity_coefficients"]


def test_mask_normals_depth_and_image_are_aligned(model):
    s = SynthEngine(model, PLAIN).render_index(1, 2)
    hit = s.depth > 0
    assert np.all(s.mask <= hit)                                   # face pixels are surface pixels
    assert np.array_equal(np.any(s.normals != 0, axis=-1), s.mask)  # normals exactly on the mask
    assert np.all(s.albedo[~hit] == 0) and np.all(s.albedo[s.mask] > 0)
    grey = s.image[interior(~hit, 2)]                              # the flat background
    inside = s.image[interior(hit, 2)]
    assert np.ptp(grey, axis=0).max() <= 1                         # untouched background
    assert np.abs(inside.astype(int) - grey[0].astype(int)).sum(axis=1).mean() > 10


def test_identity_splits_are_disjoint_and_follow_the_rule():
    ids = {sp: {identity_id(0, i, sp) for i in range(200)} for sp in ("train", "val", "test")}
    assert all(identity_split(i) == sp for sp, group in ids.items() for i in group)
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert {identity_split(identity_id(0, i)) for i in range(400)} == {"train", "val", "test"}
    # images_per_identity groups consecutive indices.
    assert identity_id(0, 4, "train", 2) == identity_id(0, 5, "train", 2)


def test_synth_dataset_items_follow_the_contract(fake_dir):
    import torch

    from facenormals3d.data.datasets import SynthDataset

    ds = SynthDataset(fake_dir, n=3, seed=0, split="val")
    item = ds[1]
    shapes = {"image": (3, 256, 256), "normals": (3, 256, 256), "mask": (1, 256, 256), "depth": (1, 256, 256),
              "albedo": (3, 256, 256), "shading": (3, 256, 256), "landmarks68": (68, 2)}
    for key, shape in shapes.items():
        assert item[key].shape == shape and item[key].dtype == torch.float32, key
    assert item["identity"].dtype == torch.int64 and int(item["identity"]) % 20 == 1
    assert item["image"].min() >= 0 and item["image"].max() <= 1
    assert set(torch.unique(item["mask"]).tolist()) <= {0.0, 1.0}
    assert torch.equal(ds[1]["normals"], item["normals"])


@pytest.mark.ict
def test_real_model_smoke(ict_model):
    engine = SynthEngine(ict_model, PLAIN)
    s = engine.render_index(0, 0)
    assert 0.15 < s.mask.mean() < 0.8
    inner = interior(s.mask)
    err = angles_deg(s.normals[inner], depth_normals(s)[inner])
    assert np.median(err) < 3.0, np.median(err)
    lm = s.landmarks68
    assert lm[36:42, 1].mean() < lm[48:60, 1].mean()
    full = SynthEngine(ict_model).render_index(0, 1)
    assert full.image.std() > 10 and full.mask.any()
    # The culled scene leaves no see-through holes inside the head's silhouette.
    from scipy import ndimage

    for index in range(2, 4):
        hit = engine.render_index(0, index).depth > 0
        assert (ndimage.binary_fill_holes(hit) & ~hit).sum() <= 3


def test_a_margin_renders_more_around_the_same_crop(model):
    """``margin`` widens the render about the crop's centre at the same pixels per mm: the
    same face lands at the same place, shifted by the added border."""
    from dataclasses import replace

    narrow = SynthEngine(model, PLAIN).render_index(3, 0)
    wide_settings = replace(PLAIN, margin=1.5)
    assert wide_settings.render_side == 192
    wide = SynthEngine(model, wide_settings).render_index(3, 0)
    assert wide.image.shape == (192, 192, 3) and wide.normals.shape == (192, 192, 3)
    np.testing.assert_allclose(wide.landmarks68 - 32.0, narrow.landmarks68, atol=1e-3)
    inner = wide.mask[32:160, 32:160]
    assert (inner == narrow.mask).mean() > 0.99


def test_a_replaced_light_changes_only_the_light(model):
    # Everything drawn after the shading (hair, glasses, background, hands, camera effects)
    # stays the drawn light's sample: relighting scores compare two photos of one scene.
    from facenormals3d.data.render import sample_lighting

    engine = SynthEngine(model, SynthSettings(size=128, detail=False, occluder_rate=1.0, glasses_rate=1.0))
    seed, ident = 11, identity_id(7, 0, "test")
    a = engine.render(seed, ident)
    other = sample_lighting(np.random.default_rng(5))
    assert other != a.params["lighting"]
    b = engine.render(seed, ident, lighting=other)
    for key in ("hair", "glasses", "background", "occluders", "sensor", "clothes"):
        assert b.params.get(key) == a.params.get(key), key
    np.testing.assert_array_equal(b.normals, a.normals)
    np.testing.assert_array_equal(b.mask, a.mask)
    assert np.abs(b.image.astype(int) - a.image.astype(int)).mean() > 2
    # The drawn light passed back in (a copy, not the same object) renders the same photo.
    same = engine.render(seed, ident, lighting={**a.params["lighting"]})
    np.testing.assert_array_equal(same.image, a.image)
