"""Binned CPU rasterisation: the same fragments as PyTorch3D's plain full-image rasteriser."""

import numpy as np
import trimesh

from facenormals3d.render.camera import frame_mesh
from facenormals3d.render.raster import rasterize_reference, rasterize_views


def test_binned_views_match_the_plain_rasteriser():
    s = trimesh.creation.icosphere(subdivisions=3)
    v = np.asarray(s.vertices) * [1.0, 1.3, 0.8]
    f = np.asarray(s.faces)
    f = np.concatenate([f, f[:40, ::-1] + 0])  # some back faces on top of front ones
    views = [frame_mesh(v, size=37), frame_mesh(v, yaw_deg=35, size=37), frame_mesh(v, pitch_deg=-20, size=20)]
    got = rasterize_views(v, f, views, rasterizer="pytorch3d")
    assert len(got) == 3
    for (p2f, bary), view in zip(got, views):
        ref_p2f, ref_bary = rasterize_reference(view.normalise(v), f, view.size)
        assert p2f.shape == (view.size, view.size) and bary.shape == (view.size, view.size, 3)
        assert (p2f == ref_p2f).all()
        hit = p2f >= 0
        assert 0.2 < hit.float().mean() < 0.9
        assert (bary - ref_bary)[hit].abs().max() < 1e-4
        assert (bary[~hit] == 0).all()


def test_faces_off_screen_or_between_pixel_centres_are_dropped_not_drawn():
    v = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0],
                  [5.0, 5.0, 0.0], [6.0, 5.0, 0.0], [5.0, 6.0, 0.0]])
    f = np.array([[0, 1, 2], [3, 4, 5]])
    view = frame_mesh(v[:3], size=16)
    p2f, _ = rasterize_views(v, f, [view], rasterizer="pytorch3d")[0]
    assert set(np.unique(p2f.numpy())) == {-1, 0}
