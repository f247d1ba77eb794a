import numpy as np

from facenormals3d.surface import vertex_normals


def test_vertex_normals_of_an_octahedron_point_outwards():
    v = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    f = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4],
                  [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    n = vertex_normals(v, f)
    np.testing.assert_allclose(n, v, atol=1e-12)


def test_unused_vertex_gets_zero_and_area_weighting():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5], [0, 0, 0.0]])
    f = np.array([[0, 1, 2]])
    n = vertex_normals(v, f)
    np.testing.assert_allclose(n[:3], [[0, 0, 1]] * 3)
    np.testing.assert_allclose(n[3:], 0.0)


def test_edges_with_use_counts():
    from facenormals3d.surface import edges

    f = np.array([[0, 1, 2], [0, 2, 3]])
    e, counts = edges(f)
    np.testing.assert_array_equal(e, [[0, 1], [0, 2], [0, 3], [1, 2], [2, 3]])
    np.testing.assert_array_equal(counts, [1, 2, 1, 1, 1])  # the diagonal is shared
