"""reconstruct end to end on real photos: files, formats, geometry, API == CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facenormals3d.errors import ExitCode
from facenormals3d.pipeline import DEFAULT_WEIGHTS, Reconstructor, ReconstructSettings

SCRIPT = Path(sys.executable).with_name("facenormals3d")
SOURCES = ["landmarks"] + (["network"] if DEFAULT_WEIGHTS.is_file() else [])
FILES = ("mesh.obj", "mesh.mtl", "texture.png", "mesh.ply", "normals.png", "normals.npy", "depth.npy",
         "mask.png", "landmarks7.npy", "landmarks.npy", "landmarks_photo.npy", "preview.png",
         "report.json", "transform.json")


def run_cli(*args):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.fixture(scope="module", params=SOURCES)
def cli_result(request, astronaut_png, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"recon-{request.param}")
    r = run_cli("reconstruct", astronaut_png, "-o", out, "--normals", request.param, "--json")
    assert r.returncode == 0, r.stderr
    return request.param, out / "astronaut" / "face_0", json.loads(r.stdout)


def test_every_file_is_written_and_readable(cli_result):
    import open3d as o3d
    import trimesh

    _, face, summary = cli_result
    assert summary["n_succeeded"] == 1 and len(summary["succeeded"][0]["faces"]) == 1
    for name in FILES:
        assert (face / name).is_file(), name
    tm = trimesh.load(face / "mesh.obj", process=False)
    assert len(tm.vertices) > 5000 and len(tm.faces) > 10000
    # The OBJ's material and texture are found (what MeshLab/Blender need).
    assert tm.visual.material.image is not None and tm.visual.material.image.size == (256, 256)
    ply = o3d.io.read_triangle_mesh(str(face / "mesh.ply"))
    assert len(ply.vertices) == len(tm.vertices) and ply.has_vertex_normals()
    # Plausible human face in millimetres: ~12-20 cm wide and tall, a few cm deep.
    ext = np.ptp(np.asarray(ply.vertices), axis=0)
    assert 100 < ext[0] < 200 and 110 < ext[1] < 220 and 30 < ext[2] < 150
    # Normals point towards the camera for the bulk of the face.
    assert np.mean(np.asarray(ply.vertex_normals)[:, 2] > 0) > 0.9
    report = json.loads((face / "report.json").read_text())
    assert report["mesh"]["units"] == "mm" and "outer eye corners" in report["scale"]["rule"]
    assert set(report["timings_seconds"]) >= {"normals", "integration", "mesh", "total"}


def test_landmarks7_lie_on_the_mesh_in_the_right_places(cli_result):
    import open3d as o3d

    _, face, _ = cli_result
    lm7 = np.load(face / "landmarks7.npy")
    assert lm7.shape == (7, 3)
    mesh = o3d.t.io.read_triangle_mesh(str(face / "mesh.ply"))
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(mesh)
    dist = scene.compute_distance(o3d.core.Tensor(lm7.astype(np.float32))).numpy()
    assert dist.max() < 1.0  # mm
    # Right eye (subject's) on the viewer's left, eyes above the nose, nose above the mouth.
    assert lm7[0, 0] < lm7[1, 0] < lm7[2, 0] < lm7[3, 0]
    assert lm7[:4, 1].min() > lm7[4, 1] > lm7[5:, 1].max()
    assert 25 < np.linalg.norm(lm7[1] - lm7[2]) < 45  # inner eye corners ~30-35 mm apart


def test_python_api_gives_the_mesh_the_cli_wrote(cli_result, astronaut_png):
    import open3d as o3d

    source, face, _ = cli_result
    import facenormals3d

    recs = facenormals3d.reconstruct(astronaut_png, normal_source=source, device="cpu")
    assert len(recs) == 1
    ply = o3d.io.read_triangle_mesh(str(face / "mesh.ply"))
    np.testing.assert_array_equal(np.asarray(ply.vertices, np.float32), recs[0].mesh.vertices)
    np.testing.assert_array_equal(np.asarray(ply.triangles), recs[0].mesh.faces)
    tm = recs[0].to_trimesh()
    o3 = recs[0].to_open3d()
    assert len(tm.vertices) == len(o3.vertices) == len(recs[0].mesh.vertices)


def test_group_photo_gives_six_meshes_and_is_deterministic(group_photo):
    with Reconstructor(ReconstructSettings(normal_source="landmarks")) as rec:
        a = rec.run(group_photo, "group")
        b = rec.run(group_photo, "group")
    assert len(a) == 6
    for ra, rb in zip(a, b):
        assert len(ra.mesh.vertices) > 1000
        np.testing.assert_array_equal(ra.mesh.vertices, rb.mesh.vertices)


def test_no_face_photo_and_max_faces(tmp_path, group_photo):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(blank)
    r = run_cli("reconstruct", blank, "-o", tmp_path / "out", "--normals", "landmarks")
    assert r.returncode == ExitCode.BAD_INPUT and "blank.png: no face found" in r.stderr
    assert not (tmp_path / "out" / "blank").exists()
    with Reconstructor(ReconstructSettings(normal_source="landmarks", max_faces=2)) as rec:
        assert len(rec.run(group_photo)) == 2


def test_missing_weights_is_a_clear_error(tmp_path):
    from facenormals3d.errors import InputError

    with pytest.raises(InputError, match="nothing.safetensors: weights file not found"):
        Reconstructor(ReconstructSettings(weights=str(tmp_path / "nothing.safetensors")))
