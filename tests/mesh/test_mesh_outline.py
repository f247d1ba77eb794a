import numpy as np

from facenormals3d.mesh import MeshSettings, depth_to_mesh, smooth_outline


def _disc(n=64, r=25.0):
    yy, xx = np.mgrid[0:n, 0:n] + 0.5
    return (xx - n / 2) ** 2 + (yy - n / 2) ** 2 <= r * r


def _outline(faces, n):
    """Boolean mask of vertices on edges used by one triangle only."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    u, c = np.unique(e, axis=0, return_counts=True)
    on = np.zeros(n, bool)
    on[u[c == 1].ravel()] = True
    return on


def test_outline_relaxation_rounds_the_staircase_and_keeps_the_inside():
    mask = _disc()
    depth = np.full(mask.shape, 5.0)
    raw = depth_to_mesh(depth, mask, pixel_size_mm=1.0)
    smooth = depth_to_mesh(depth, mask, pixel_size_mm=1.0, settings=MeshSettings(smooth_outline=4))
    # Only the staircase's teeth go: a few corner triangles out of thousands.
    assert 0 < len(raw.faces) - len(smooth.faces) < 0.02 * len(raw.faces)
    r_raw = np.linalg.norm(raw.vertices[:, :2], axis=1)
    r_smooth = np.linalg.norm(smooth.vertices[:, :2], axis=1)
    out_raw, out_smooth = _outline(raw.faces, len(r_raw)), _outline(smooth.faces, len(r_smooth))
    # The outline gets rounder (less radial spread) and shrinks by under a pixel.
    assert np.std(r_smooth[out_smooth]) < 0.8 * np.std(r_raw[out_raw])
    assert abs(r_smooth.max() - r_raw.max()) < 1.0
    np.testing.assert_array_equal(np.unique(smooth.vertices[:, 2]), [5.0])
    # Interior vertices do not move.
    inner_raw = raw.vertices[r_raw < 15]
    inner_smooth = smooth.vertices[r_smooth < 15]
    np.testing.assert_array_equal(inner_raw, inner_smooth)
    # No triangle folds over or collapses.
    v, f = smooth.vertices, smooth.faces
    nz = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])[:, 2]
    assert np.all(nz > 0)


def test_zero_iterations_is_identity():
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0.5]])
    f = np.array([[0, 1, 2], [0, 2, 3]])
    v2, f2 = smooth_outline(v, f, 0)
    np.testing.assert_array_equal(v2, v)
    np.testing.assert_array_equal(f2, f)
