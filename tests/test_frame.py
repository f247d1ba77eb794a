"""The crop frame: pixels <-> mm, pixel centres."""

import numpy as np

from facenormals3d.frame import CropFrame


def test_crop_centre_is_the_origin_and_v_points_down():
    frame = CropFrame(256, 0.5)
    np.testing.assert_array_equal(frame.to_mm(np.array([[128.0, 128.0, 4.0], [138.0, 118.0, 0.0]])),
                                  [[0.0, 0.0, 2.0], [5.0, 5.0, 0.0]])
    assert frame.half_extent_mm == 64.0


def test_to_pixels_inverts_to_mm():
    frame = CropFrame(64, 0.7)
    px = np.random.default_rng(0).uniform(0, 64, (20, 3))
    np.testing.assert_allclose(frame.to_pixels(frame.to_mm(px)), px[:, :2], atol=1e-12)
    assert frame.to_pixels(np.zeros((1, 3), np.float32)).dtype == np.float32


def test_pixel_centres_are_half_a_pixel_in():
    frame = CropFrame(8, 2.0)
    cols, rows = np.array([0, 7]), np.array([0, 3])
    x, y = frame.pixel_centres(cols, rows)
    np.testing.assert_array_equal(np.stack([x, y], 1), frame.to_mm(np.stack([cols + 0.5, rows + 0.5], 1)))
    np.testing.assert_array_equal(x, [-7.0, 7.0])
    index = np.arange(8, dtype=np.float32)
    assert frame.pixel_centres(index, index)[0].dtype == np.float32


def test_resized_keeps_the_region():
    frame = CropFrame(256, 0.5).resized(512)
    assert frame.size == 512 and frame.half_extent_mm == 64.0
