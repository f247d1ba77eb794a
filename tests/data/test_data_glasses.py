"""3-D glasses: placement on the head, depth-tested drawing, cast shadow, ground truth."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from facenormals3d.data import glasses as gl
from facenormals3d.data.effects import capsule_coverage
from facenormals3d.data.geometry import Camera, rotation_matrix
from facenormals3d.data.render import cast
from facenormals3d.data.synth import SynthEngine, SynthSettings
from facenormals3d.raster import raycasting_scene

QUIET = SynthSettings(size=96, occluder_rate=0.0, glasses_rate=0.0, hair=False, camera_effects=False)
NO_LIGHTS = {"env": {"a": [0.5] * 3, "b": [[0.0] * 3] * 3, "m": [[[0.0] * 3] * 3] * 3}, "lights": []}


def _front_camera(size: int = 128, distance: float = 500.0) -> Camera:
    """Looking at the model's front from ``distance`` mm, the head filling the crop."""
    return Camera(rotation=np.eye(3), pivot=np.zeros(3), position=np.array([0.0, 0.0, -distance]),
                  focal=size * distance / 260.0, cx=size / 2, cy=size / 2, size=size)


def _style(sun: bool = False, kind: str = "plastic") -> dict:
    return {**gl.sample_glasses(np.random.default_rng(3)), "sun": sun, "kind": kind,
            "tint": [0.05] * 3 if sun else [0.95] * 3}


def test_capsule_coverage_is_one_inside_and_zero_outside():
    box, cov = capsule_coverage((40, 40), np.array([10.0, 20.0]), np.array([30.0, 20.0]), 3.0)
    rows, cols = np.mgrid[box[0], box[1]]
    d = np.abs(rows + 0.5 - 20.0)  # distance of pixel centres from the segment's line
    between = (cols + 0.5 >= 10) & (cols + 0.5 <= 30)
    assert np.all(cov[between & (d <= 2.5)] == 1.0) and np.all(cov[d >= 3.5] == 0.0)
    _, again = capsule_coverage((40, 40), np.array([10.0, 20.0]), np.array([30.0, 20.0]), 3.0, box=box)
    np.testing.assert_array_equal(again, cov)
    assert capsule_coverage((40, 40), np.array([-20.0, -20.0]), np.array([-10.0, -10.0]), 2.0) is None


def test_camera_to_model_inverts_to_camera():
    cam = Camera(rotation=rotation_matrix(30, -10, 5), pivot=np.array([1.0, 2.0, 3.0]),
                 position=np.array([5.0, -3.0, -600.0]), focal=300.0, cx=64, cy=64, size=128)
    p = np.random.default_rng(0).normal(size=(10, 3)) * 50
    np.testing.assert_allclose(cam.to_model(cam.to_camera(p)), p, atol=1e-9)


def test_glasses_sit_in_front_of_the_eyes_and_the_arms_outside_the_head(model):
    verts = model.neutral
    for seed in range(5):
        style = gl.sample_glasses(np.random.default_rng(seed))
        shape = gl.build_glasses(style, verts, model.landmarks)
        eyes = verts[model.landmarks[36:48]]
        for lens, eye in zip(shape.lenses, (eyes[:6].mean(0), eyes[6:].mean(0))):
            assert lens.centre[2] - eye[2] >= style["vertex_mm"] - 1e-9  # or further, clear of the brows
            assert abs(lens.centre[0] - eye[0]) < lens.a  # the lens covers its eye
        for rim in shape.rims:  # no rim point cuts into the face behind it
            for p in rim:
                near = (np.abs(verts[:, 0] - p[0]) < 3) & (np.abs(verts[:, 1] - p[1]) < 3) & (verts[:, 2] > 0)
                assert not near.any() or p[2] > verts[near, 2].max()
        for arm, side in zip(shape.arms, (-1, 1)):
            assert np.all(side * arm[:, 0] > 0) and np.all(np.diff(arm[:, 2]) < 0)  # back toward the ear
            ear_z = verts[model.landmarks[[0, 16]], 2].mean()
            for p in arm[1:]:
                band = (side * verts[:, 0] > 0) & (np.abs(verts[:, 1] - p[1]) < 6) & (np.abs(verts[:, 2] - p[2]) < 4)
                band &= verts[:, 2] > ear_z - 10  # in front of the ear, which the arm's end goes into
                assert not band.any() or side * p[0] > np.abs(verts[band, 0]).max()


def test_a_wall_in_front_hides_the_glasses_and_an_empty_scene_shows_them(model):
    cam = _front_camera()
    shape = gl.build_glasses(_style(), model.neutral, model.landmarks)
    img = np.full((128, 128, 3), 0.3, np.float32)
    shown = gl.draw_glasses(_style(), shape, cam, np.zeros((128, 128), np.float32), None, NO_LIGHTS, img)
    assert shown.frame.max() > 0.9 and shown.lens.max() == 1.0 and not shown.hides.any()
    assert np.abs(img - 0.3).max() > 0.05
    walled = np.full((128, 128, 3), 0.3, np.float32)
    wall = np.full((128, 128), 300.0, np.float32)  # 300 mm from the camera: before the head at ~400
    hidden = gl.draw_glasses(_style(), shape, cam, wall, None, NO_LIGHTS, walled)
    assert not hidden.frame.any() and not hidden.lens.any()
    np.testing.assert_array_equal(walled, 0.3)
    # A wall over the left half of the crop only: what shows lies in the right half (frames
    # whose centre line is there may spill a line width over).
    half = np.where(np.arange(128)[None, :] < 64, 300.0, 0.0).astype(np.float32) * np.ones((128, 1), np.float32)
    part = gl.draw_glasses(_style(), shape, cam, half, None, NO_LIGHTS, np.full((128, 128, 3), 0.3, np.float32))
    assert part.frame[:, 64:].max() > 0.9 and not part.frame[:, :60].any() and not part.lens[:, :64].any()


def test_sunglasses_hide_the_eyes_and_clear_lenses_do_not(model):
    cam = _front_camera()
    shape = gl.build_glasses(_style(), model.neutral, model.landmarks)
    eye = np.round(cam.project(cam.to_camera(model.neutral[model.landmarks[36:42]].mean(0)[None]))[0]).astype(int)
    for sun in (False, True):
        img = np.full((128, 128, 3), 0.3, np.float32)
        layer = gl.draw_glasses(_style(sun), shape, cam, np.zeros((128, 128), np.float32), None, NO_LIGHTS, img)
        assert layer.lens[eye[1], eye[0]] == 1.0
        assert (layer.hides[eye[1], eye[0]] > 0.5) == sun
        assert (img[eye[1], eye[0]].mean() < 0.1) == sun


def test_a_hard_light_casts_the_frame_on_the_face_and_a_soft_one_does_not(model):
    cam = _front_camera()
    vc = cam.to_camera(model.neutral)
    scene = raycasting_scene(vc, model.triangles, nthreads=1)
    depth = cast(scene, cam.ray_directions()).depth
    shape = gl.build_glasses(_style(), model.neutral, model.landmarks)
    light = {"direction": [0.0, 0.3, 1.0], "color": [1.0] * 3, "intensity": 3.0, "cone_deg": 0.5}
    hard = gl.draw_glasses(_style(), shape, cam, depth, scene, {**NO_LIGHTS, "lights": [light]},
                           np.full((128, 128, 3), 0.3, np.float32))
    assert hard.shadow.max() > 0.3 and not hard.shadow[depth == 0].any()
    # The shadow falls below the frame (the light is above the camera).
    rows = np.flatnonzero(hard.shadow.max(axis=1) > 0.3)
    frame_rows = np.flatnonzero(hard.frame.max(axis=1) > 0.5)
    assert rows.max() > frame_rows.max()
    soft = gl.draw_glasses(_style(), shape, cam, depth, scene, {**NO_LIGHTS, "lights": [{**light, "cone_deg": 20.0}]},
                           np.full((128, 128, 3), 0.3, np.float32))
    assert not soft.shadow.any()


def test_frames_and_clear_lenses_keep_the_ground_truth(model):
    bare = SynthEngine(model, QUIET)
    worn = SynthEngine(model, replace(QUIET, glasses_rate=1.0))
    suns = set()
    for index in range(6):
        a, b = bare.render_index(4, index), worn.render_index(4, index)
        np.testing.assert_array_equal(a.normals * b.mask[..., None], b.normals)
        assert not (b.mask & ~a.mask).any()
        sun = b.params["glasses"]["sun"]
        suns.add(sun)
        if not sun:
            np.testing.assert_array_equal(a.mask, b.mask)
        assert not np.array_equal(a.image, b.image)
    again = worn.render_index(4, 5)
    np.testing.assert_array_equal(again.image, b.image)
