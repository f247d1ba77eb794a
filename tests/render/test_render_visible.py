"""Preview rasterisation from the faces not hidden in each view: the same fragments."""

import numpy as np
import torch
import trimesh

from facenormals3d.raster import frame_mesh
from facenormals3d.render.preview import (EDGE_BARY, HIDDEN_MARGIN, MIN_AREA_PX, SMALL_BOX_PX, hidden_faces,
                                          rasterize_visible)
from facenormals3d.raster import rasterize_views


def _scene():
    """Two ellipsoids, one partly behind the other, a wall behind both, and some flipped
    (back-facing) triangles over the front one's surface."""
    s = trimesh.creation.icosphere(subdivisions=3)
    a = np.asarray(s.vertices) * [1.0, 1.3, 0.8]
    b = np.asarray(s.vertices) * 0.9 + [0.8, 0.3, -1.5]
    wall = np.array([[-3.0, -3.0, -4.0], [3.0, -3.0, -4.0], [3.0, 3.0, -4.0], [-3.0, 3.0, -4.0]])
    f = np.asarray(s.faces)
    faces = np.concatenate([f, f + len(a), np.array([[0, 1, 2], [0, 2, 3]]) + 2 * len(a), f[:40, ::-1]])
    return np.concatenate([a, b, wall]), faces


def _hidden_reference(v, f, view):
    """Slow and plain: a face is hidden when every pixel centre of its box shows a front
    surface more than the margin nearer than its nearest corner, or (small faces) than its
    own depth at every such pixel centre that may lie inside it. A hit near an edge of its
    face does not count as front surface: PyTorch3D may see through such a pixel."""
    q = view.normalise(v)
    p2f, bary = rasterize_views(v, f, [view], rasterizer="open3d")[0]
    p2f, bary = p2f.numpy(), bary.numpy()
    front = np.full(p2f.shape, -np.inf)
    for r, c in zip(*np.nonzero(p2f >= 0)):
        if bary[r, c].min() > EDGE_BARY:
            front[r, c] = q[f[p2f[r, c]], 2] @ bary[r, c]
    out = np.zeros(len(f), bool)
    n = view.size
    for i, tri in enumerate(f):
        x = (q[tri, 0] + 1) * 0.5 * n
        y = (1 - q[tri, 1]) * 0.5 * n
        c0, c1 = int(max(np.ceil(x.min() - 0.5 - 1e-3), 0)), int(min(np.floor(x.max() - 0.5 + 1e-3), n - 1))
        r0, r1 = int(max(np.ceil(y.min() - 0.5 - 1e-3), 0)), int(min(np.floor(y.max() - 0.5 + 1e-3), n - 1))
        if c1 < c0 or r1 < r0:
            continue
        out[i] = q[tri, 2].max() < front[r0:r1 + 1, c0:c1 + 1].min() - HIDDEN_MARGIN
        area = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0])
        if out[i] or c1 - c0 >= SMALL_BOX_PX or r1 - r0 >= SMALL_BOX_PX or abs(area) <= MIN_AREA_PX:
            continue
        out[i] = True
        corners = np.array([x, y, np.ones(3)])
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                w = np.linalg.solve(corners, [c + 0.5, r + 0.5, 1.0])
                if w.min() >= -EDGE_BARY and not w @ q[tri, 2] < front[r, c] - HIDDEN_MARGIN:
                    out[i] = False
    return out


def test_visible_faces_give_the_full_meshs_fragments():
    v, f = _scene()
    views = [frame_mesh(v, size=48), frame_mesh(v, yaw_deg=35, size=41), frame_mesh(v, yaw_deg=-35, pitch_deg=10, size=32)]
    full = rasterize_views(v, f, views, rasterizer="pytorch3d")
    got = rasterize_visible(v, f, views)
    hidden = hidden_faces(v, f, views)
    for (p2f, bary), (ref_p2f, ref_bary), h, view in zip(got, full, hidden, views):
        assert torch.equal(p2f, ref_p2f)
        assert torch.equal(bary, ref_bary)
        assert h.sum() > 0.1 * len(f)  # back halves, most of the far ellipsoid (sub-pixel faces are not counted)
        assert not np.isin(ref_p2f.numpy(), np.flatnonzero(h)).any()
        # The sparse-table box minimum may only keep more faces than the plain one.
        ref = _hidden_reference(v, f, view)
        assert not (h & ~ref).any()
        assert h.sum() >= 0.8 * ref.sum()


def test_nothing_is_hidden_over_pixels_no_ray_hits():
    v = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, -1.0],
                  [0.0, 1.0, -1.0]])
    f = np.array([[0, 1, 2], [3, 4, 5]])
    (h,) = hidden_faces(v, f, [frame_mesh(v, size=16)])
    # The back triangle's box reaches pixels outside the front one: it must stay.
    assert not h.any()


def test_a_pixel_centre_on_a_shared_edge_hides_nothing_behind_it():
    # PyTorch3D sees through a pixel centre that lies exactly on the edge two front faces
    # share (neither has it strictly inside): the face behind must not be dropped.
    v = np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0],
                  [-2.0, -2.0, -1.0], [2.0, -2.0, -1.0], [0.0, 2.0, -1.0]])
    f = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6]])
    view = frame_mesh(v, size=9)
    (got,) = rasterize_visible(v, f, [view])
    (ref,) = rasterize_views(v, f, [view], rasterizer="pytorch3d")
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
