import numpy as np

from facenormals3d.surface import vertex_normals


def test_vertex_normals_of_an_octahedron_point_outwards():
    v = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    f = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4],
                  [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    n = vertex_normals(v, f)
    np.testing.assert_allclose(n, v, atol=1e-12)


def test_unused_vertex_gets_zero_and_area_weighting():
    # Two right triangles meet at vertex 0 (both with a 90 degree corner there): area 0.5
    # facing +z and area 4.5 facing +y. Area weighting gives (0, 9, 1) / sqrt(82) at vertex 0;
    # an unweighted or angle-weighted mean would give (0, 1, 1) / sqrt(2).
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 3], [3, 0, 0], [5, 5, 5.0]])
    f = np.array([[0, 1, 2], [0, 3, 4]])
    n = vertex_normals(v, f)
    np.testing.assert_allclose(n[0], np.array([0, 9, 1]) / np.sqrt(82))
    np.testing.assert_allclose(n[1:3], [[0, 0, 1]] * 2)
    np.testing.assert_allclose(n[3:5], [[0, 1, 0]] * 2)
    np.testing.assert_allclose(n[5], 0.0)  # used by no face


def test_edges_with_use_counts():
    from facenormals3d.surface import edges

    f = np.array([[0, 1, 2], [0, 2, 3]])
    e, counts = edges(f)
    np.testing.assert_array_equal(e, [[0, 1], [0, 2], [0, 3], [1, 2], [2, 3]])
    np.testing.assert_array_equal(counts, [1, 2, 1, 1, 1])  # the diagonal is shared
