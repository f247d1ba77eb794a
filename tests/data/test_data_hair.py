"""Hair, backgrounds, shoulders, lighting kinds and lens effects of the engine."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from facenormals3d.data import effects, render, scene
from facenormals3d.data.synth import SynthEngine, SynthSettings

QUIET = SynthSettings(size=96, occluder_rate=0.0, glasses_rate=0.0)


def test_hair_changes_the_image_but_not_the_ground_truth(model):
    with_hair = SynthEngine(model, QUIET)
    bald = SynthEngine(model, replace(QUIET, hair=False))
    for index in range(3):
        a, b = with_hair.render_index(2, index), bald.render_index(2, index)
        np.testing.assert_array_equal(a.normals, b.normals)
        np.testing.assert_array_equal(a.mask, b.mask)
        assert a.hair.shape == a.mask.shape and a.hair.dtype == np.float32
        assert 0.0 <= a.hair.min() and a.hair.max() <= 1.0 and not b.hair.any()
    again = with_hair.render_index(2, 2)
    np.testing.assert_array_equal(again.hair, a.hair)
    np.testing.assert_array_equal(again.image, a.image)


def test_hair_survives_the_shard_round_trip(model):
    from facenormals3d.data.datasets import sample_to_item
    from facenormals3d.data.shards import decode, encode

    s = SynthEngine(model, QUIET).render_index(0, 1)
    s.hair[:10, :10] = 0.5
    back = decode(encode(s))["hair"]
    assert np.abs(back - s.hair).max() <= 0.5 / 255 + 1e-6
    assert sample_to_item(s)["hair"].shape == (1, 96, 96)
    old = encode(s)
    del old["hair"]  # shards of layout 1 have no hair: read as none
    assert not decode(old)["hair"].any()


def test_real_heads_get_hair_over_some_faces(ict_model):
    engine = SynthEngine(ict_model, replace(QUIET, size=128))
    samples = [engine.render_index(4, i) for i in range(8)]
    over_face = [float(s.hair[s.mask].mean()) for s in samples]
    assert max(over_face) > 0.005  # brows at least, fringes and beards sometimes
    assert any(s.hair[~(s.depth > 0)].max() > 0.5 for s in samples)  # hair volume past the skull
    styles = {s.params["hair"]["style"] for s in samples}
    assert styles - {"none"}


def test_photo_backgrounds_come_from_the_installed_package_without_the_test_portrait():
    assert "astronaut" not in scene.PHOTO_NAMES
    bank = scene.photo_bank()
    assert len(bank) >= 5 and all(b.ndim == 3 and b.shape[2] == 3 for b in bank)
    img, info = scene.photo_background(np.random.default_rng(0), 64)
    assert img.shape == (64, 64, 3) and np.isfinite(img).all() and img.min() >= 0
    assert info["photo"] in scene.PHOTO_NAMES


def test_every_lighting_kind_is_drawn_and_well_formed():
    rng = np.random.default_rng(3)
    kinds = set()
    for _ in range(200):
        light = render.sample_lighting(rng)
        kinds.add(light["kind"])
        assert all(np.isfinite(l_["direction"]).all() and l_["intensity"] > 0 for l_ in light["lights"])
        assert np.asarray(light["env"]["a"]).shape == (3,)
    assert kinds == set(render.LIGHTING_KINDS)


def test_shoulders_sit_below_the_chin():
    lm = np.zeros((68, 2))
    lm[8], lm[27] = (64, 80), (64, 40)  # chin, nose bridge: the face looks at the camera
    img = np.zeros((128, 128, 3), dtype=np.float32)
    light = render.sample_lighting(np.random.default_rng(0))
    cover = scene.draw_shoulders(scene.sample_clothes(np.random.default_rng(1)), img, lm,
                                 np.array([0.5, 0.3, 0.2]), light)
    assert cover[:80].max() < 0.5 and cover[-1].mean() > 0.5
    assert img[-1].sum() > 0


def test_lens_effects_keep_shape_and_are_seeded():
    img = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    kinds = set()
    for seed in range(30):
        a, pa = effects.lens_effects(np.random.default_rng(seed), img)
        b, _ = effects.lens_effects(np.random.default_rng(seed), img)
        np.testing.assert_array_equal(a, b)
        assert a.shape == img.shape and a.dtype == np.float32 and a.min() >= 0
        kinds.add(pa["kind"])
    assert kinds == {"none", "defocus", "motion", "lowres"}
