"""Error colour map and scale bar."""

import numpy as np

from facenormals3d.render.colormap import (ERROR_ANCHORS, INVALID_RGB, colorbar, error_colors,
                                           with_colorbar)


def test_error_colors_ends_clip_and_nan():
    c = error_colors(np.array([0.0, 10.0, -5.0, 99.0, np.nan]), 0.0, 10.0)
    assert c.dtype == np.uint8 and c.shape == (5, 3)
    np.testing.assert_array_equal(c[0], np.round(ERROR_ANCHORS[0] * 255))
    np.testing.assert_array_equal(c[1], np.round(ERROR_ANCHORS[-1] * 255))
    np.testing.assert_array_equal(c[2], c[0])  # clipped below
    np.testing.assert_array_equal(c[3], c[1])  # clipped above
    np.testing.assert_array_equal(c[4], INVALID_RGB)


def test_colorbar_shape_and_ramp_direction():
    bar = colorbar(200, 0.0, 5.0, "mm")
    assert bar.shape == (200, 90, 3)
    top, bottom = bar[25, 15].astype(int), bar[185, 15].astype(int)
    assert top[0] > top[2] and bottom[2] > bottom[0]  # red (large) on top, blue at the bottom
    img = np.zeros((100, 50, 3), np.uint8)
    out = with_colorbar(img, 0, 1)
    assert out.shape == (100, 140, 3)
