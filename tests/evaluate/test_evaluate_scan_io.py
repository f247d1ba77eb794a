"""Loading awkward scans: NaNs, duplicates, no faces, empty; predictions without faces."""

import numpy as np
import pytest
import trimesh

from facenormals3d.errors import InputError
from facenormals3d.evaluate.scan_io import load_mesh, load_scan, subsample, write_colored_ply


def write_obj(path, verts, faces=()):
    lines = [f"v {x} {y} {z}" for x, y, z in verts] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_nan_vertices_dropped_with_their_faces(tmp_path):
    p = write_obj(tmp_path / "s.obj", [[0, 0, 0], [1, 0, 0], ["nan", 1, 0], [0, 1, 0]], [[0, 1, 3], [1, 2, 3]])
    scan = load_scan(p, unit_scale=10.0)
    assert scan.points.shape == (3, 3) and np.isfinite(scan.points).all()
    np.testing.assert_array_equal(scan.faces, [[0, 1, 2]])
    assert scan.points[1, 0] == 10.0  # cm -> mm
    assert any("NaN" in n for n in scan.notes)


def test_duplicates_merged_and_faces_reindexed(tmp_path):
    p = write_obj(tmp_path / "d.obj", [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0]], [[0, 1, 2], [3, 4, 2]])
    scan = load_scan(p)
    assert len(scan.points) == 4 and any("duplicate" in n for n in scan.notes)
    np.testing.assert_array_equal(scan.points[scan.faces[1]], [[1, 0, 0], [1, 1, 0], [0, 1, 0]])


def test_point_cloud_scan_ok_but_prediction_needs_faces(tmp_path):
    pts = np.random.default_rng(0).random((50, 3))
    trimesh.PointCloud(pts).export(tmp_path / "pc.ply")
    scan = load_scan(tmp_path / "pc.ply")
    assert scan.faces is None and len(scan.points) == 50
    with pytest.raises(InputError, match="no faces"):
        load_mesh(tmp_path / "pc.ply")


def test_empty_all_nan_and_missing_refused(tmp_path):
    (tmp_path / "e.obj").write_text("# nothing\n")
    with pytest.raises(InputError, match="e.obj: no vertices"):
        load_scan(tmp_path / "e.obj")
    p = write_obj(tmp_path / "n.obj", [["nan", 0, 0], [0, "nan", 0]])
    with pytest.raises(InputError, match="NaN"):
        load_scan(p)
    with pytest.raises(InputError, match="not found"):
        load_scan(tmp_path / "nope.ply")
    q = write_obj(tmp_path / "m.obj", [[0, 0, 0], [1, 0, 0], ["nan", 1, 0]], [[0, 1, 2]])
    with pytest.raises(InputError, match="NaN"):
        load_mesh(q)


def test_subsample_rule():
    np.testing.assert_array_equal(subsample(10, 20), np.arange(10))
    a, b = subsample(1_000_000, 1000, seed=0), subsample(1_000_000, 1000, seed=0)
    assert len(a) == 1000 and len(np.unique(a)) == 1000 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, b)


def test_colored_ply_round_trip(tmp_path):
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    cols = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    write_colored_ply(tmp_path / "m.ply", pts, cols, np.array([[0, 1, 2]]), quality=np.array([0.5, 1, 2]))
    m = trimesh.load(tmp_path / "m.ply", process=False)
    np.testing.assert_allclose(m.vertices, pts)
    np.testing.assert_array_equal(m.visual.vertex_colors[:, :3], cols)
    assert b"property float quality" in (tmp_path / "m.ply").read_bytes()[:400]
    write_colored_ply(tmp_path / "p.ply", pts, cols)
    assert len(trimesh.load(tmp_path / "p.ply").vertices) == 3
