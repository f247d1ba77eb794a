"""The Blender add-on without Blender: its sources, its zip, and its bpy-free modules
(OBJ/MTL reader, .npy/.npz reader checked against numpy, output-folder reader, runner).

The package ``plugins/blender/facenormals3d_blender`` imports bpy in ``__init__``, so the
pure modules are loaded here as submodules of a stand-in package object whose
``__init__`` never runs (they import only each other).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import stat
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

import addon_fixture

REPO = Path(__file__).resolve().parents[2]
ADDON = REPO / "plugins" / "blender" / "facenormals3d_blender"
BLENDER_MODULES = {"bpy", "bpy_extras", "mathutils"}  # what Blender's Python ships besides stdlib


PURE_MODULES = ("objread", "runner", "npyread", "results")


def _load(name: str):
    """``facenormals3d_blender.<name>`` without running the package's bpy ``__init__``."""
    package = "_addon_pkg"
    if package not in sys.modules:
        pkg = types.ModuleType(package)
        pkg.__path__ = [str(ADDON)]
        sys.modules[package] = pkg
    return importlib.import_module(f"{package}.{name}")


objread = _load("objread")
runner = _load("runner")
npyread = _load("npyread")
results = _load("results")


def _imports(path: Path) -> set[str]:
    """Top-level names of absolute imports in a Python file (relative imports excluded)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_addon_imports_only_stdlib_and_blender():
    files = sorted(ADDON.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "importer.py"} | {
        f"{m}.py" for m in PURE_MODULES}
    allowed = set(sys.stdlib_module_names) | BLENDER_MODULES | {"__future__"}
    for path in files:
        extra = _imports(path) - allowed
        assert not extra, f"{path.name} imports {extra}"
    # The pure modules must not need Blender at all (they are tested here without it).
    for name in PURE_MODULES:
        assert not _imports(ADDON / f"{name}.py") & BLENDER_MODULES


def test_bl_info_fields():
    tree = ast.parse((ADDON / "__init__.py").read_text())
    assigns = [n for n in tree.body if isinstance(n, ast.Assign)
               and any(getattr(t, "id", "") == "bl_info" for t in n.targets)]
    assert len(assigns) == 1
    info = ast.literal_eval(assigns[0].value)
    for key in ("name", "author", "version", "blender", "location", "description", "category"):
        assert key in info, key
    assert info["category"] == "Import-Export"
    # The minimum is the oldest Blender the tests run on, and the README says so.
    assert info["blender"] == (4, 2, 0)
    assert "Blender 4.2.0 or newer" in (REPO / "plugins" / "README.md").read_text()
    assert "Face from Photo" in info["location"]


def test_zip_target_builds_installable_zip(tmp_path):
    out = tmp_path / "addon.zip"
    subprocess.run(["make", "-s", "-f", "plugins/blender/blender.mk",
                    f"ADDON_ZIP={out}", "blender-addon-zip"], cwd=REPO, check=True,
                   capture_output=True)
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert names == {f"facenormals3d_blender/{p.name}" for p in ADDON.glob("*.py")}
        assert zf.read("facenormals3d_blender/__init__.py") == (ADDON / "__init__.py").read_bytes()


SQUARE_OBJ = """# two triangles, a unit square in the x-y plane facing +z
mtllib mesh.mtl
o face
v 0 0 0
v 10 0 0
v 10 20 0
v 0 20 0
vt 0 0
vt 1 0
vt 1 1
vt 0 1
vn 0 0 1
usemtl skin
s 1
f 1/1/1 2/2/1 3/3/1
f -4/-4/-1 -2/-2/-1 -1/-1/-1
f 1/1/1 1/1/1 2/2/1
"""


def test_parse_obj_triangles_uvs_normals():
    mesh = objread.parse_obj(SQUARE_OBJ, "square.obj")
    assert mesh.positions[2] == (10.0, 20.0, 0.0)
    assert mesh.faces == [(0, 1, 2), (0, 2, 3)]  # negative indices resolved, degenerate dropped
    assert mesh.face_uvs == [(0, 1, 2), (0, 2, 3)]
    assert mesh.face_normals == [(0, 0, 0), (0, 0, 0)]
    assert (mesh.mtllib, mesh.material) == ("mesh.mtl", "skin")


def test_parse_obj_quads_and_plain_corners():
    mesh = objread.parse_obj("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n")
    assert mesh.faces == [(0, 1, 2, 3)] and mesh.face_uvs == [None] and mesh.face_normals == [None]
    data = objread.to_blender_mesh(mesh, 1.0, centre=False)
    assert data.loop_uvs == [] and data.loop_normals == []


@pytest.mark.parametrize("text, reason", [
    ("v 0 0 0\nv 1 0 0\nf 1 2 3\n", "square.obj:3: vertex index 3 out of range"),
    ("v 0 0\n", "square.obj:1: malformed 'v'"),
    ("v 0 0 0\nv 1 0 0\nf 1 2\n", "square.obj:3: a face needs at least 3 corners"),
    ("v 0 0 0\n", "square.obj: no polygons"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1/x 2 3\n", "square.obj:4: bad texture index 'x'"),
])
def test_parse_obj_errors_name_file_and_line(text, reason):
    with pytest.raises(objread.ObjError) as err:
        objread.parse_obj(text, "square.obj")
    assert str(err.value).startswith(reason)


def test_mtl_texture_lookup():
    mtl = "newmtl a\nmap_Kd a.png\n\nnewmtl skin\nKd 1 1 1\nmap_Kd -s 1 1 1 -bm 0.5 tex ture.png\n"
    assert objread.parse_mtl_texture(mtl, "skin") == "tex ture.png"
    assert objread.parse_mtl_texture(mtl, "other") == "a.png"
    assert objread.parse_mtl_texture("newmtl x\nKd 1 1 1\n") == ""


def test_read_obj_with_texture_files(tmp_path):
    (tmp_path / "mesh.obj").write_text(SQUARE_OBJ)
    (tmp_path / "mesh.mtl").write_text("newmtl skin\nmap_Kd texture.png\n")
    with pytest.raises(objread.ObjError, match="texture 'texture.png' not found"):
        objread.read_obj_with_texture(str(tmp_path / "mesh.obj"))
    (tmp_path / "texture.png").write_bytes(b"\x89PNG")
    mesh, texture = objread.read_obj_with_texture(str(tmp_path / "mesh.obj"))
    assert len(mesh.faces) == 2 and texture == str(tmp_path / "texture.png")
    with pytest.raises(objread.ObjError, match="cannot read"):
        objread.read_obj_with_texture(str(tmp_path / "missing.obj"))


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def test_axis_conversion_is_a_rotation_taking_plus_z_to_minus_y():
    x, y, z = objread.to_blender_axes([(1, 0, 0), (0, 1, 0), (0, 0, 1)])
    assert (x, y, z) == ((1, 0, 0), (0, 0, 1), (0, -1, 0))  # up -> Blender Z, view dir -> -Y
    assert _cross(x, y) == z  # right-handed stays right-handed: windings keep their meaning


def test_to_blender_mesh_scales_centres_and_keeps_winding():
    mesh = objread.parse_obj(SQUARE_OBJ)
    data = objread.to_blender_mesh(mesh, 0.001)  # mm -> m
    assert data.offset == pytest.approx((0.005, 0.0, 0.01))
    assert data.vertices[2] == pytest.approx((0.005, 0.0, 0.01))
    assert data.loop_uvs == [0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1]
    assert data.loop_normals == [(0.0, -1.0, 0.0)] * 6
    # The geometric normal of a converted polygon agrees with its converted vertex normal.
    a, b, c = (data.vertices[i] for i in data.polygons[0])
    n = _cross([b[i] - a[i] for i in range(3)], [c[i] - a[i] for i in range(3)])
    assert n[1] < 0 and n[0] == 0 and n[2] == 0


@pytest.mark.parametrize("system, scale, factor", [
    ("METRIC", 1.0, 0.001), ("METRIC", 0.001, 1.0), ("METRIC", 0.01, 0.1),
    ("IMPERIAL", 1.0, 0.001), ("NONE", 0.001, 0.001), ("METRIC", 0.0, 0.001)])
def test_mm_to_scene_factor(system, scale, factor):
    assert objread.mm_to_scene_factor(system, scale) == pytest.approx(factor)


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_resolve_command_order(tmp_path):
    (tmp_path / "bin").mkdir()
    tool = _executable(tmp_path / "bin" / "facenormals3d", "#!/bin/sh\n")
    venv_tool = tmp_path / "home" / ".venv" / "bin" / "facenormals3d"
    venv_tool.parent.mkdir(parents=True)
    _executable(venv_tool, "#!/bin/sh\n")
    nothing = lambda name: None  # noqa: E731 - an empty PATH
    assert runner.resolve_command(str(tool), {}, nothing) == str(tool)
    assert runner.resolve_command(str(tmp_path / "home"), {}, nothing) == str(venv_tool)
    assert runner.resolve_command("", {}, lambda name: "/on/path/" + name) == "/on/path/facenormals3d"
    home = {runner.HOME_ENV: str(tmp_path / "home")}
    assert runner.resolve_command("", home, nothing) == str(venv_tool)
    with pytest.raises(runner.CommandError, match="command not found on PATH nor in"):
        runner.resolve_command("", {runner.HOME_ENV: str(tmp_path / "empty")}, nothing)
    with pytest.raises(runner.CommandError, match="command not found: /no/such"):
        runner.resolve_command("/no/such", {}, nothing)


def test_build_argv_and_child_environment():
    argv = runner.build_argv("fn3d", "/p/a.jpg", "/tmp/o", max_faces=2, refine=5, normals="landmarks")
    assert argv == ["fn3d", "reconstruct", "/p/a.jpg", "-o", "/tmp/o", "--json",
                    "--normals", "landmarks", "--max-faces", "2", "--refine", "5"]
    assert runner.build_argv("fn3d", "a.jpg", "o", 0, -1) == ["fn3d", "reconstruct", "a.jpg",
                                                             "-o", "o", "--json"]
    env = runner.child_environment({"PYTHONHOME": "/blender/python", "PATH": "/bin"})
    assert env == {"PATH": "/bin", "PYTHONUNBUFFERED": "1"}


def test_progress_summary_and_error_lines():
    log = "INFO: detecting faces\nfaces:  40%|####  | 2/5\rfaces:  60%|###### | 3/5\n\n"
    assert runner.progress_line(log) == "faces:  60%|###### | 3/5"
    assert runner.progress_line("INFO: loading model\n") == "loading model"
    summary = {"succeeded": [], "failed": [{"input": "a.jpg", "error": "a.jpg: no face found\nmore"}]}
    assert runner.parse_summary("warning\n" + json.dumps(summary)) == summary
    assert runner.parse_summary("not json") is None and runner.parse_summary("[1]") is None
    assert runner.error_message(3, summary, "") == "a.jpg: no face found"
    trace = "INFO: x\nTraceback (most recent call last):\n  File...\nValueError: broken\n"
    assert runner.error_message(4, None, trace) == "ValueError: broken"
    assert runner.error_message(4, None, "INFO: a\nERROR: disk full\nINFO: bye\n") == "disk full"
    assert runner.error_message(9, None, "") == "facenormals3d failed with exit code 9"


def test_job_runs_a_child_and_finds_face_folders(tmp_path):
    script = _executable(tmp_path / "tool", f"""#!{sys.executable}
import json, os, sys
out = sys.argv[sys.argv.index("-o") + 1]
for k in (1, 0, 10):
    os.makedirs(os.path.join(out, "pic", f"face_{{k}}"))
    open(os.path.join(out, "pic", f"face_{{k}}", "mesh.obj"), "w").close()
os.makedirs(os.path.join(out, "pic", "face_x"))
print("INFO: done", file=sys.stderr)
print(json.dumps({{"succeeded": [{{"input": sys.argv[2], "output": os.path.join(out, "pic")}}],
                  "failed": []}}))
""")
    work = tmp_path / "work"
    work.mkdir()
    job = runner.ReconstructJob(runner.build_argv(str(script), "/x/pic.jpg", str(work)), str(work),
                                "/x/pic.jpg", str(work))
    result = job.wait(60)
    assert result.error == ""
    assert [Path(p).parent.name for p in result.meshes] == ["face_0", "face_1", "face_10"]
    assert job.status().endswith("done")
    failing = _executable(tmp_path / "bad", "#!/bin/sh\necho 'ERROR: x.jpg: no face found' >&2\n"
                                            "exit 3\n")
    job = runner.ReconstructJob([str(failing)], str(work), "/x/pic.jpg", str(work / "none"))
    assert job.wait(60).error == "x.jpg: no face found"
    with pytest.raises(runner.CommandError, match="cannot start"):
        runner.ReconstructJob([str(tmp_path / "missing")], str(work), "a.jpg", str(work))


# -- .npy / .npz without numpy, checked against numpy ------------------------------------


def _npy_bytes(array, version=None) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=version, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize("array", [
    np.arange(24, dtype="<f4").reshape(2, 4, 3) / 7,
    np.arange(12, dtype=">f4").reshape(4, 3) * -1.5,  # big-endian comes back native
    np.linspace(-1, 1, 21, dtype="<f8").reshape(7, 3),
    np.arange(-5, 5, dtype="<i8"), np.arange(6, dtype="<i4"), np.arange(5, dtype=np.uint8),
    np.zeros((0, 3), np.float32), np.float32(2.5),
])
@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_npy_numbers_match_numpy(array, version):
    got = npyread.parse_npy(_npy_bytes(np.asarray(array), version), "a.npy")
    assert got.shape == np.shape(array) and got.size == np.size(array)
    assert list(got.data) == pytest.approx(np.ravel(array).astype(np.float64).tolist())


def test_npy_strings_and_rows():
    names = np.array(["browDown_L", "jawOpen", "é_ünïcode", ""])
    got = npyread.parse_npy(_npy_bytes(names), "n.npy")
    assert got.dtype == names.dtype.str and got.data == names.tolist()
    assert npyread.parse_npy(_npy_bytes(np.array([b"ab", b"c"])), "b.npy").data == [b"ab", b"c"]
    points = npyread.parse_npy(_npy_bytes(np.arange(6.0).reshape(2, 3)), "p.npy")
    assert points.rows() == [(0.0, 1.0, 2.0), (3.0, 4.0, 5.0)]


@pytest.mark.parametrize("raw, reason", [
    (b"not numpy", "not a .npy file"),
    (_npy_bytes(np.array([{"a": 1}], dtype=object).astype("U5")).replace(b"<U5", b"|O8"),
     "object arrays"),
    (_npy_bytes(np.asfortranarray(np.ones((2, 3), np.float32))), "Fortran-ordered"),
    (_npy_bytes(np.ones(3, np.complex64)), "unsupported dtype"),
    (_npy_bytes(np.ones(4, np.float32))[:-3], "truncated"),
    (_npy_bytes(np.ones(2, [("a", "<f4")])), "structured"),
])
def test_npy_refuses_what_it_cannot_read(raw, reason):
    with pytest.raises(npyread.NpyError, match=reason) as err:
        npyread.parse_npy(raw, "x.npy")
    assert str(err.value).startswith("x.npy: ")


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_members_match_numpy(tmp_path, save):
    deltas = np.random.default_rng(1).normal(size=(3, 5, 3)).astype(np.float32)
    save(tmp_path / "b.npz", names=np.array(["a", "bb", "ccc"]), deltas=deltas)
    got = npyread.read_npz(str(tmp_path / "b.npz"))
    assert set(got) == {"names", "deltas"} and got["names"].data == ["a", "bb", "ccc"]
    assert got["deltas"].shape == (3, 5, 3)
    assert np.array_equal(np.frombuffer(got["deltas"].data.tobytes(), np.float32), deltas.ravel())
    with pytest.raises(npyread.NpyError, match="no array 'other'"):
        npyread.read_npz(str(tmp_path / "b.npz"), ("other",))
    (tmp_path / "bad.npz").write_bytes(b"PK nonsense")
    with pytest.raises(npyread.NpyError, match="bad.npz: cannot read"):
        npyread.read_npz(str(tmp_path / "bad.npz"))


# -- one photo's output folder ---------------------------------------------------------


def test_mtl_maps_normal_map_and_bump():
    mtl = ("newmtl face\nmap_Kd texture.png\nnorm normal_map.png\n"
           "map_Bump -bm 1 normal_map.png\n")
    assert objread.parse_mtl_maps(mtl, "face") == {"map_Kd": "texture.png",
                                                   "norm": "normal_map.png",
                                                   "map_Bump": "normal_map.png"}
    assert objread.parse_mtl_maps("newmtl x\nbump -bm 2 b.png\n") == {"map_Bump": "b.png"}
    assert objread.parse_mtl_maps("newmtl x\nKd 1 1 1\n") == {}


def test_results_reads_contract_folder(tmp_path):
    folder = addon_fixture.write_photo_output(str(tmp_path), "astro", n_faces=2, albedo=True)
    faces = results.read_photo_folder(folder)
    assert [f.index for f in faces] == [0, 1] and results.photo_name(folder) == "astro"
    face = faces[0]
    assert face.base_color_kind == "albedo" and face.base_color.endswith("albedo.png")
    assert face.normal_map == os.path.join(folder, "face_0", "normal_map.png")
    assert face.shape_key_names == list(addon_fixture.ICT_EXPRESSIONS)
    deltas = np.load(os.path.join(folder, "face_0", "blendshapes.npz"))["deltas"]
    assert np.array_equal(np.frombuffer(face.shape_key_deltas.tobytes(), np.float32),
                          deltas.ravel())
    assert np.allclose(face.landmarks, np.load(os.path.join(folder, "face_0", "landmarks.npy")))
    assert len(face.landmarks7) == 7 == len(results.NOW_POINTS)
    # A single face folder works too, and its photo is the parent folder.
    assert results.photo_name(os.path.join(folder, "face_1")) == "astro"
    assert len(results.read_photo_folder(os.path.join(folder, "face_1"))) == 1


def test_results_today_layout_without_new_files(tmp_path):
    folder = addon_fixture.write_photo_output(str(tmp_path), "old", normal_map=False,
                                              blendshapes=False, landmarks=False)
    (face,) = results.read_photo_folder(folder)
    assert face.base_color_kind == "texture" and face.normal_map == ""
    assert face.shape_key_names == [] and face.shape_key_deltas is None
    assert face.landmarks == [] and face.landmarks7 == []


def test_results_errors_name_the_file(tmp_path):
    with pytest.raises(results.ResultError, match="no face_<k>/mesh.obj inside"):
        results.read_photo_folder(str(tmp_path))
    folder = addon_fixture.write_photo_output(str(tmp_path), "p")
    face_dir = os.path.join(folder, "face_0")
    n = len(addon_fixture.grid_vertices())
    np.savez(os.path.join(face_dir, "blendshapes.npz"), names=np.array(["a", "b"]),
             deltas=np.zeros((2, n - 1, 3), np.float32))
    with pytest.raises(results.ResultError, match=r"blendshapes.npz: 'deltas' has shape "
                                                  rf"\(2, {n - 1}, 3\), expected \(2, {n}, 3\)"):
        results.read_photo_folder(folder)
    np.savez(os.path.join(face_dir, "blendshapes.npz"), names=np.array(["a", "a"]),
             deltas=np.zeros((2, n, 3), np.float32))
    with pytest.raises(results.ResultError, match="distinct"):
        results.read_photo_folder(folder)
    os.remove(os.path.join(face_dir, "blendshapes.npz"))
    np.save(os.path.join(face_dir, "landmarks7.npy"), np.zeros((5, 3)))
    with pytest.raises(results.ResultError, match=r"landmarks7.npy: expected a \(7, 3\)"):
        results.read_photo_folder(folder)
    os.remove(os.path.join(face_dir, "normal_map.png"))
    with pytest.raises(results.ResultError, match="normal map 'normal_map.png' not found"):
        results.read_photo_folder(folder)


def test_points_matrix_and_shape_keys_follow_the_mesh_conversion():
    mesh = objread.parse_obj(SQUARE_OBJ)
    data = objread.to_blender_mesh(mesh, 0.001)
    # A point at a vertex lands on that converted vertex (same rotation, scale, centring).
    assert objread.points_to_blender([mesh.positions[2]], 0.001, data.offset) == [
        pytest.approx(data.vertices[2])]
    # The matrix the add-on hands to Mesh.transform does the same conversion.
    m = np.array(objread.blender_matrix(0.001, data.offset))
    homogeneous = np.c_[np.array(mesh.positions), np.ones(4)]
    assert np.allclose((homogeneous @ m.T)[:, :3], data.vertices)
    assert np.isclose(np.linalg.det(m[:3, :3]), 1e-9)  # a rotation times 0.001: no mirroring
    basis = objread.flat_coords(mesh.positions)
    assert list(basis[6:9]) == [10.0, 20.0, 0.0]
    deltas = np.zeros((2, 4, 3), np.float32)
    deltas[1, 2] = (1.0, 2.0, 3.0)
    from array import array

    key = objread.shape_key_coords(basis, array("f", deltas.tobytes()), 1)
    assert np.array_equal(np.array(key).reshape(4, 3),
                          np.array(basis).reshape(4, 3) + deltas[1])
    with pytest.raises(ValueError, match="not enough"):
        objread.shape_key_coords(basis, array("f", deltas.tobytes()), 2)


def test_no_previews_flag_and_fallback_for_older_tools(tmp_path):
    argv = runner.build_argv("fn3d", "a.jpg", "o", no_previews=True)
    assert argv == ["fn3d", "reconstruct", "a.jpg", "-o", "o", "--json", "--no-previews"]
    usage = ("usage: facenormals3d [-h]\n"
             "facenormals3d: error: unrecognized arguments: --no-previews\n")
    assert runner.rejects_flag(2, usage, "--no-previews")
    assert not runner.rejects_flag(3, usage, "--no-previews")
    assert not runner.rejects_flag(2, "error: unrecognized arguments: --x\n", "--no-previews")
    # An old tool: rejects the flag like argparse, works without it.
    old = _executable(tmp_path / "old", f"""#!{sys.executable}
import os, sys
if "--no-previews" in sys.argv:
    print("facenormals3d: error: unrecognized arguments: --no-previews", file=sys.stderr)
    sys.exit(2)
out = sys.argv[sys.argv.index("-o") + 1]
os.makedirs(os.path.join(out, "pic", "face_0"))
open(os.path.join(out, "pic", "face_0", "mesh.obj"), "w").close()
""")
    work = tmp_path / "work"
    work.mkdir()
    job = runner.ReconstructJob(runner.build_argv(str(old), "/x/pic.jpg", str(work),
                                                  no_previews=True),
                                str(work), "/x/pic.jpg", str(work))
    result = job.wait(60)
    assert result.error == "" and result.folder == str(work / "pic")
    assert job.dropped_flags == ["--no-previews"] and "--no-previews" not in job.argv
    assert job.command_seconds() > 0
