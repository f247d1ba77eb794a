"""The Blender add-on without Blender: its sources, its zip, and its bpy-free reader/runner.

The package ``plugins/blender/facenormals3d_blender`` imports bpy in ``__init__``, so the
pure modules are loaded here by file path (they import nothing from the add-on).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ADDON = REPO / "plugins" / "blender" / "facenormals3d_blender"
BLENDER_MODULES = {"bpy", "bpy_extras", "mathutils"}  # what Blender's Python ships besides stdlib


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_addon_{name}", ADDON / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


objread = _load("objread")
runner = _load("runner")


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
    assert {f.name for f in files} >= {"__init__.py", "objread.py", "runner.py"}
    allowed = set(sys.stdlib_module_names) | BLENDER_MODULES | {"__future__"}
    for path in files:
        extra = _imports(path) - allowed
        assert not extra, f"{path.name} imports {extra}"
    # The pure modules must not need Blender at all (they are tested here without it).
    for name in ("objread.py", "runner.py"):
        assert not _imports(ADDON / name) & BLENDER_MODULES


def test_bl_info_fields():
    tree = ast.parse((ADDON / "__init__.py").read_text())
    assigns = [n for n in tree.body if isinstance(n, ast.Assign)
               and any(getattr(t, "id", "") == "bl_info" for t in n.targets)]
    assert len(assigns) == 1
    info = ast.literal_eval(assigns[0].value)
    for key in ("name", "author", "version", "blender", "location", "description", "category"):
        assert key in info, key
    assert info["category"] == "Import-Export"
    assert isinstance(info["blender"], tuple) and info["blender"] >= (3, 6, 0)
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
