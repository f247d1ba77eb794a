"""Preview rasterisation from the faces that face each view's camera."""

import numpy as np
import torch
import trimesh

from facenormals3d.raster import frame_mesh, rasterize_views
from facenormals3d.render.preview import rasterize_front_faces


def _closed_scene():
    """Two closed, outward-wound ellipsoids, one partly behind the other, and a wall
    behind both that faces the camera."""
    s = trimesh.creation.icosphere(subdivisions=3)
    a = np.asarray(s.vertices) * [1.0, 1.3, 0.8]
    b = np.asarray(s.vertices) * 0.9 + [0.8, 0.3, -1.5]
    wall = np.array([[-3.0, -3.0, -4.0], [3.0, -3.0, -4.0], [3.0, 3.0, -4.0], [-3.0, 3.0, -4.0]])
    f = np.asarray(s.faces)
    faces = np.concatenate([f, f + len(a), np.array([[0, 1, 2], [0, 2, 3]]) + 2 * len(a)])
    return np.concatenate([a, b, wall]), faces


def test_front_faces_give_a_closed_meshs_fragments():
    """The same fragments as the full mesh, except at the few silhouette pixels where
    PyTorch3D misses the grazing front face and the full mesh shows one from behind."""
    v, f = _closed_scene()
    views = [frame_mesh(v, size=48), frame_mesh(v, yaw_deg=35, size=41), frame_mesh(v, yaw_deg=-35, pitch_deg=10, size=32)]
    full = rasterize_views(v, f, views, rasterizer="pytorch3d")
    got = rasterize_front_faces(v, f, views)
    for (p2f, bary), (ref_p2f, ref_bary), view in zip(got, full, views):
        front = view.facing(v, f) > 0
        same = p2f == ref_p2f
        assert torch.equal(bary[same], ref_bary[same])
        differ = ref_p2f[~same].numpy()
        assert len(differ) <= 0.01 * (ref_p2f >= 0).sum() and not front[differ].any()
        assert 0.4 * len(f) < front.sum() < 0.6 * len(f) + 2  # each ellipsoid's near half, the wall
        assert front[-2:].all()


def test_facing_follows_the_winding_and_the_view():
    v = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    ccw, cw = np.array([[0, 1, 2]]), np.array([[0, 2, 1]])
    view = frame_mesh(v, size=16)
    assert view.facing(v, ccw)[0] > 0 > view.facing(v, cw)[0]
    behind = frame_mesh(v, yaw_deg=180, size=16)  # the camera goes round to the back
    assert behind.facing(v, ccw)[0] < 0 < behind.facing(v, cw)[0]
    edge_on = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert not view.facing(edge_on, ccw)[0] > 0


def test_a_face_seen_from_behind_is_not_drawn():
    """The documented difference from the full mesh: a back face in front shows what lies behind it."""
    v = np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0],
                  [-2.0, -2.0, -1.0], [2.0, -2.0, -1.0], [0.0, 2.0, -1.0]])
    f = np.array([[0, 2, 1], [3, 4, 5]])  # the near triangle wound clockwise: its back faces the camera
    view = frame_mesh(v, size=9)
    (full,) = rasterize_views(v, f, [view], rasterizer="pytorch3d")
    (got,) = rasterize_front_faces(v, f, [view])
    centre = (4, 4)
    assert full[0].numpy().reshape(9, 9)[centre] == 0 and got[0].numpy().reshape(9, 9)[centre] == 1


def test_the_fitted_heads_preview_matches_the_full_mesh():
    from facenormals3d.fit.model import load_face_model

    model = load_face_model()
    v, f = model.mean.astype(np.float32), model.triangles
    views = [frame_mesh(v, size=96), frame_mesh(v, yaw_deg=-35, size=96), frame_mesh(v, yaw_deg=35, size=96)]
    full = rasterize_views(v, f, views, rasterizer="pytorch3d")
    got = rasterize_front_faces(v, f, views)
    for (p2f, _), (ref_p2f, _) in zip(got, full):
        assert (p2f != ref_p2f).sum() <= 2
