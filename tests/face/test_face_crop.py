import numpy as np
import pytest

from facenormals3d.face.crop import (CropSettings, CropTransform, crop_from_points,
                                     invert_similarity, warp_to_crop, warp_to_photo)


def test_crop_rule_frames_box_centre_and_scale():
    pts = np.array([[100.0, 100.0], [200.0, 180.0]])  # box 100 x 80
    s = CropSettings(size=256, scale=1.5, shift_up=0.0)
    crop = crop_from_points(pts, s)
    centre = crop.to_crop(np.array([[150.0, 140.0]]))
    np.testing.assert_allclose(centre, [[128.0, 128.0]])
    assert crop.scale == pytest.approx(256 / 150.0)


def test_shift_up_moves_face_down_in_crop():
    pts = np.array([[0.0, 0.0], [100.0, 100.0]])
    a = crop_from_points(pts, CropSettings(shift_up=0.0)).to_crop(np.array([[50.0, 50.0]]))
    b = crop_from_points(pts, CropSettings(shift_up=0.2)).to_crop(np.array([[50.0, 50.0]]))
    assert b[0, 1] > a[0, 1] and a[0, 0] == pytest.approx(b[0, 0])


def test_points_round_trip_including_z():
    rng = np.random.default_rng(0)
    m = np.array([[0.7, -0.2, 13.0], [0.2, 0.7, -5.0]])
    crop = CropTransform(m, 256)
    pts = rng.uniform(0, 500, (20, 3))
    np.testing.assert_allclose(crop.to_photo(crop.to_crop(pts)), pts, atol=1e-9)
    np.testing.assert_allclose(invert_similarity(invert_similarity(m)), m, atol=1e-12)
    # z scales with the crop like x and y do.
    assert crop.to_crop(pts)[0, 2] == pytest.approx(pts[0, 2] * crop.scale)


def test_warp_places_pixels_where_the_transform_says():
    img = np.zeros((300, 400), np.float32)
    img[120, 250] = 1.0  # pixel centre (250.5, 120.5)
    crop = crop_from_points(np.array([[200.0, 80.0], [300.0, 180.0]]))
    out = warp_to_crop(img, crop, order=0)
    expected = crop.to_crop(np.array([[250.5, 120.5]]))[0]
    r, c = np.unravel_index(np.argmax(out), out.shape)
    assert abs(c + 0.5 - expected[0]) <= 1.0 and abs(r + 0.5 - expected[1]) <= 1.0


def test_warp_back_to_photo_round_trips_smooth_image():
    yy, xx = np.mgrid[0:200, 0:200]
    img = (np.sin(xx / 15.0) * np.cos(yy / 20.0) * 100 + 120).astype(np.float32)
    crop = crop_from_points(np.array([[60.0, 60.0], [140.0, 140.0]]))  # upscales ~2x
    back = warp_to_photo(warp_to_crop(img, crop), crop, img.shape)
    inner = (slice(70, 130), slice(70, 130))
    assert np.abs(back[inner] - img[inner]).mean() < 1.0


def test_bad_points_raise():
    with pytest.raises(ValueError):
        crop_from_points(np.array([[np.nan, 1.0], [2.0, 3.0]]))


@pytest.mark.parametrize("angle", [0.0, 0.3, 1.2])
def test_fast_affine_sampling_matches_the_exact_reference(astronaut, angle):
    # OpenCV rounds source positions to 1/32 px: bilinear values stay within 1/64 of the
    # largest step between neighbouring pixels (255 here at most) of scipy's exact sampling,
    # away from the image border (where scipy's "constant" mode does not interpolate).
    from facenormals3d.face.crop import _affine, affine_reference

    img = astronaut.astype(np.float32)
    c, s = 1.3 * np.cos(angle), 1.3 * np.sin(angle)
    m = np.array([[c, -s, 150.3], [s, c, 60.7]])
    fast, exact = _affine(img, m, (160, 160), 1), affine_reference(img, m, (160, 160), 1)
    # Output pixels whose source lies at least 2 px inside the photo.
    yy, xx = np.mgrid[0:160, 0:160] + 0.5
    sx, sy = m[0, 0] * xx + m[0, 1] * yy + m[0, 2], m[1, 0] * xx + m[1, 1] * yy + m[1, 2]
    inside = (sx > 2) & (sx < 510) & (sy > 2) & (sy < 510)
    assert inside.mean() > 0.5
    diff = np.abs(fast - exact)[inside]
    assert diff.max() <= 255 / 64 + 1e-3 and diff.mean() < 0.2
    # Nearest: the same pixel except where a position is within float error of a tie.
    near = _affine(img, m, (160, 160), 0) != affine_reference(img, m, (160, 160), 0)
    assert near.any(axis=-1)[inside].mean() < 0.01
    # Outside the photo both are 0.
    far = (sx < -2) | (sx > 514) | (sy < -2) | (sy > 514)
    assert np.all(fast[far] == 0) and np.all(exact[far] == 0)
