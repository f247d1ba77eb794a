"""The Blender add-on inside real Blender (the ``bpy`` module), headless.

Run by ``make test-blender`` with ``.venv-blender/bin/python -m pytest tests/plugins/blender``.
The add-on is installed from its zip the way a user does (Preferences > Add-ons > Install),
then:

* the scripting API ``facenormals3d_blender.import_reconstruction`` imports output folders
  written here by ``tests/plugins/addon_fixture.py`` (the tool's output contract: mesh +
  normal map + blendshapes.npz + landmarks), and the checks compare what Blender holds
  with the arrays written (shape-key positions, landmark positions, names, placement);
* the import operator runs against a stand-in ``facenormals3d`` script written here,
  which writes the same layout and the ``--json`` summary, or fails like the tool does;
* the operator runs the real ``facenormals3d reconstruct`` from the main .venv on the
  astronaut photo; the checks that need the fitted-mesh outputs (shape keys, normal map,
  1024 px texture) apply when the tool wrote those files. The add-on's time over the
  command is printed in the run's summary ("facenormals3d add-on timings").
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import bpy
import addon_utils
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "plugins"))
import addon_fixture  # noqa: E402

ADDON = "facenormals3d_blender"
GRID = addon_fixture.GRID
STAND_IN_WIDTH_MM = addon_fixture.WIDTH_MM
N_KEYS = len(addon_fixture.ICT_EXPRESSIONS)

STAND_IN = r'''
"""Stand-in for `facenormals3d reconstruct PHOTO -o OUT --json`: same layout, fake face."""
import json, os, sys
sys.path.insert(0, %(fixture_dir)r)
from addon_fixture import write_face

argv = sys.argv[1:]
assert argv[0] == "reconstruct", argv
photo, out = argv[1], argv[argv.index("-o") + 1]
stem = os.path.splitext(os.path.basename(photo))[0]
with open(os.environ["STAND_IN_ARGV"], "w") as fh:
    json.dump(argv, fh)

def fail(code, message):
    print("ERROR: " + message, file=sys.stderr)
    print(json.dumps({"succeeded": [], "failed": [{"input": photo, "error": message,
                      "kind": "input"}], "n_succeeded": 0, "n_failed": 1, "exit_code": code}))
    sys.exit(code)

with open(photo, "rb") as fh:
    magic = fh.read(8)
if not (magic.startswith(b"\x89PNG") or magic.startswith(b"\xff\xd8")):
    fail(3, photo + ": not a readable image (JPEG/PNG expected)")
if "noface" in stem:
    fail(3, photo + ": no face found")
if "crash" in stem:
    print("INFO: loading model", file=sys.stderr)
    print("Traceback (most recent call last):\nRuntimeError: the model exploded", file=sys.stderr)
    sys.exit(4)
print("INFO: detecting faces", file=sys.stderr)
print("INFO: reconstructing face 0", file=sys.stderr)
write_face(os.path.join(out, stem, "face_0"))
print(json.dumps({"succeeded": [{"input": photo, "output": os.path.join(out, stem), "faces": 1}],
                  "failed": [], "n_succeeded": 1, "n_failed": 0, "exit_code": 0}))
''' % {"fixture_dir": str(REPO / "tests" / "plugins")}


def _load_build_zip():
    spec = importlib.util.spec_from_file_location("build_zip", REPO / "plugins/blender/build_zip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    """The add-on installed from a freshly built zip and enabled; its preferences."""
    zip_path = tmp_path_factory.mktemp("zip") / f"{ADDON}.zip"
    _load_build_zip().build_zip(REPO / "plugins/blender" / ADDON, zip_path)
    assert bpy.ops.preferences.addon_install(filepath=str(zip_path)) == {"FINISHED"}
    addon_utils.enable(ADDON, default_set=True)
    assert ADDON in bpy.context.preferences.addons
    yield bpy.context.preferences.addons[ADDON].preferences
    addon_utils.disable(ADDON, default_set=True)


@pytest.fixture
def stand_in(tmp_path, monkeypatch, addon):
    """An executable stand-in for the tool, set as the add-on's command preference."""
    script = tmp_path / "facenormals3d"
    script.write_text(f"#!{sys.executable}\n" + STAND_IN)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("STAND_IN_ARGV", str(tmp_path / "argv.json"))
    addon.command = str(script)
    yield tmp_path
    addon.command = ""


@pytest.fixture
def photo(tmp_path):
    """A tiny valid PNG named photo.png (the stand-in never decodes it)."""
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    return path


@pytest.fixture(autouse=True)
def clean_scene():
    """Every test starts with the factory scene (metric, unit scale 1) and no leftovers."""
    bpy.ops.wm.read_homefile(use_empty=False, use_factory_startup=True)
    yield


KINDS = ("objects", "meshes", "materials", "images", "collections", "shape_keys")


def _datablocks():
    return {kind: sorted(b.name for b in getattr(bpy.data, kind)) for kind in KINDS}


def _api():
    import facenormals3d_blender

    return facenormals3d_blender


def _world_mean_normal(obj):
    """Area-weighted mean polygon normal in world space, normalised (x, y, z)."""
    rot = obj.matrix_world.to_3x3()
    total = [0.0, 0.0, 0.0]
    for poly in obj.data.polygons:
        n = rot @ poly.normal
        for i in range(3):
            total[i] += n[i] * poly.area
    length = sum(c * c for c in total) ** 0.5
    return [c / length for c in total]


def _bsdf(material):
    return next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")


def _texture_node(material):
    links = _bsdf(material).inputs["Base Color"].links
    assert links, "Base Color is not driven by a node"
    node = links[0].from_node
    assert node.type == "TEX_IMAGE"
    return node


def _normal_map_image(material):
    """The image behind the BSDF's Normal input, through a tangent-space Normal Map node."""
    links = _bsdf(material).inputs["Normal"].links
    assert links, "Normal is not driven by a node"
    node = links[0].from_node
    assert node.type == "NORMAL_MAP" and node.space == "TANGENT" and node.uv_map == "UVMap"
    image_node = node.inputs["Color"].links[0].from_node
    assert image_node.type == "TEX_IMAGE"
    return image_node.image


def _world_coords(obj, coords=None):
    """(N, 3) world positions of a mesh object's vertices (or of ``coords``, local)."""
    if coords is None:
        coords = np.empty(3 * len(obj.data.vertices), np.float32)
        obj.data.vertices.foreach_get("co", coords)
    local = np.asarray(coords, np.float64).reshape(-1, 3)
    m = np.array(obj.matrix_world)
    return local @ m[:3, :3].T + m[:3, 3]


def _to_blender(points_mm):
    """The add-on's documented conversion: (x, y, z) mm -> (x, -z, y) m (metric scene)."""
    p = np.asarray(points_mm, np.float64)
    return np.stack([p[:, 0], -p[:, 2], p[:, 1]], -1) / 1000.0


# -- the scripting API -------------------------------------------------------------------


def test_api_imports_a_contract_folder(addon, tmp_path):
    folder = addon_fixture.write_photo_output(str(tmp_path), "astro", n_faces=2)
    bpy.context.scene.cursor.location = (1.0, 2.0, 3.0)
    before = _datablocks()
    timings = {}
    faces = _api().import_reconstruction(folder, landmark_empties=True, timings=timings)
    assert [f.name for f in faces] == ["astro_face0", "astro_face1"]
    assert set(timings) == {"read", "build", "cpu"}
    # Its own collection, named after the photo, holding the faces and their helpers.
    coll = bpy.data.collections["astro"]
    assert coll.name in bpy.context.scene.collection.children
    assert all(f.users_collection == (coll,) for f in faces)
    assert {o.name for o in coll.objects} == {"astro_face0", "astro_face1",
                                              "astro_face0_landmarks", "astro_face1_landmarks"} | {
        f"astro_face{k}_{p}" for k in (0, 1) for p in _api().results.NOW_POINTS}
    assert bpy.context.view_layer.objects.active == faces[0] and faces[1].select_get()
    # Side by side at the 3D cursor, a quarter of the widest face apart, not overlapping.
    w0, w1 = faces[0].dimensions.x, faces[1].dimensions.x
    assert w0 == pytest.approx(0.16, rel=1e-3) and w1 == pytest.approx(0.128, rel=1e-3)
    assert tuple(faces[0].location) == pytest.approx((1.0, 2.0, 3.0))
    assert faces[1].location.x - faces[0].location.x == pytest.approx((w0 + w1) / 2 + w0 / 4)
    # Shape keys: Basis + the 53 expressions, each = basis + the turned, scaled delta.
    face0 = faces[0]
    keys = face0.data.shape_keys
    assert keys.name == "astro_face0" and keys.use_relative
    assert [k.name for k in keys.key_blocks] == ["Basis", *addon_fixture.ICT_EXPRESSIONS]
    deltas = np.load(os.path.join(folder, "face_0", "blendshapes.npz"))["deltas"]
    basis = np.empty(3 * len(face0.data.vertices), np.float32)
    keys.key_blocks["Basis"].data.foreach_get("co", basis)
    for k in (0, 26, N_KEYS - 1):
        co = np.empty_like(basis)
        keys.key_blocks[k + 1].data.foreach_get("co", co)
        assert np.allclose(co.reshape(-1, 3) - basis.reshape(-1, 3), _to_blender(deltas[k]),
                           atol=1e-6)
    # The mesh is the file's, turned and scaled (up to the centring shift).
    verts = _world_coords(face0)
    expected = _to_blender(addon_fixture.grid_vertices())
    assert np.allclose(verts - verts.mean(0), expected - expected.mean(0), atol=1e-6)
    # Landmarks: a child point cloud whose vertex i sits on landmark i (= mesh vertex i
    # in the fixture); the empties on the 7 NoW points.
    cloud = bpy.data.objects["astro_face0_landmarks"]
    assert cloud.parent == face0 and cloud.type == "MESH" and cloud.hide_render
    assert len(cloud.data.vertices) == 478 and len(cloud.data.polygons) == 0
    assert np.allclose(_world_coords(cloud), verts[:478], atol=1e-6)
    for point, vertex in zip(_api().results.NOW_POINTS, addon_fixture.NOW_VERTICES):
        empty = bpy.data.objects[f"astro_face0_{point}"]
        assert empty.type == "EMPTY" and empty.parent == face0
        assert np.allclose(np.array(empty.matrix_world.translation), verts[vertex], atol=1e-6)
    # Material: packed base colour from the texture, packed Non-Color normal map.
    material = face0.data.materials[0]
    assert material.name == "astro_face0"
    color = _texture_node(material).image
    assert color.name == "astro_face0_basecolor" and color.packed_file is not None
    assert tuple(color.size) == (8, 4)
    normal = _normal_map_image(material)
    assert normal.name == "astro_face0_normal" and normal.packed_file is not None
    assert normal.colorspace_settings.name == "Non-Color"
    assert face0.data.uv_layers.active.name == "UVMap"
    added = {k: set(v) - set(before[k]) for k, v in _datablocks().items()}
    assert added["materials"] == {"astro_face0", "astro_face1"}
    assert added["shape_keys"] == {"astro_face0", "astro_face1"}


def test_api_reimport_never_renames_the_first_import(addon, tmp_path):
    folder = addon_fixture.write_photo_output(str(tmp_path), "astro", albedo=True)
    first = _api().import_reconstruction(folder)[0]
    owned = {"object": first, "mesh": first.data, "material": first.data.materials[0],
             "keys": first.data.shape_keys, "collection": first.users_collection[0],
             "color": _texture_node(first.data.materials[0]).image,
             "normal": _normal_map_image(first.data.materials[0]),
             "cloud": first.children[0]}
    names = {k: v.name for k, v in owned.items()}
    assert names == {"object": "astro_face0", "mesh": "astro_face0", "material": "astro_face0",
                     "keys": "astro_face0", "collection": "astro",
                     "color": "astro_face0_basecolor", "normal": "astro_face0_normal",
                     "cloud": "astro_face0_landmarks"}
    second = _api().import_reconstruction(folder)[0]
    third = _api().import_reconstruction(folder)[0]
    assert {k: v.name for k, v in owned.items()} == names  # the first import is untouched
    # Later imports carry one common suffix on every datablock they made.
    for obj, suffix in ((second, ".001"), (third, ".002")):
        assert obj.name == "astro_face0" + suffix and obj.data.name == obj.name
        assert obj.data.shape_keys.name == obj.name
        assert obj.users_collection[0].name == "astro" + suffix
        material = obj.data.materials[0]
        assert material.name == obj.name
        assert _texture_node(material).image.name == "astro_face0_basecolor" + suffix
        assert _normal_map_image(material).name == "astro_face0_normal" + suffix
        assert obj.children[0].name == "astro_face0_landmarks" + suffix
    # The albedo is the base colour when the tool wrote one.
    assert Path(_texture_node(first.data.materials[0]).image.filepath).name == "albedo.png"
    # Each import lands beside the earlier ones, not on top of them.
    xs = sorted(o.location.x for o in (first, second, third))
    assert xs[1] - xs[0] >= first.dimensions.x and xs[2] - xs[1] >= first.dimensions.x


def test_api_into_a_given_collection_linking_relative_files(addon, tmp_path):
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    folder = addon_fixture.write_photo_output(str(tmp_path / "out"), "astro",
                                              blendshapes=False, landmarks=False)
    target = bpy.data.collections.new("Heads")
    bpy.context.scene.collection.children.link(target)
    (face,) = _api().import_reconstruction(folder, target, pack=False, location=(0, 5, 0))
    assert face.users_collection == (target,) and "astro" not in bpy.data.collections
    assert tuple(face.location) == pytest.approx((0, 5, 0))
    assert face.data.shape_keys is None and not face.children  # today's outputs: no extras
    color = _texture_node(face.data.materials[0]).image
    assert color.packed_file is None and color.filepath == "//out/astro/face_0/texture.png"
    assert Path(bpy.path.abspath(color.filepath)).is_file()


def test_api_errors_leave_the_file_unchanged(addon, tmp_path, monkeypatch):
    api = _api()
    before = _datablocks()
    with pytest.raises(FileNotFoundError, match="no such folder"):
        api.import_reconstruction(str(tmp_path / "missing"))
    with pytest.raises(api.results.ResultError, match="no face_<k>/mesh.obj"):
        api.import_reconstruction(str(tmp_path))
    folder = addon_fixture.write_photo_output(str(tmp_path), "astro", n_faces=2)
    np.savez(os.path.join(folder, "face_1", "blendshapes.npz"), names=np.array(["a"]),
             deltas=np.zeros((1, 3, 3), np.float32))
    with pytest.raises(api.results.ResultError, match="'deltas' has shape"):
        api.import_reconstruction(folder)
    assert _datablocks() == before
    # A failure while making the Blender data (here: in face 1's 6th shape key) removes
    # everything this import had made, including face 0 and the new collection.
    os.remove(os.path.join(folder, "face_1", "blendshapes.npz"))
    addon_fixture.write_face(os.path.join(folder, "face_1"), seed=1)
    real, calls = api.objread.shape_key_coords, []

    def failing(*args):
        calls.append(args)
        if len(calls) == N_KEYS + 6:
            raise RuntimeError("disk on fire")
        return real(*args)

    monkeypatch.setattr(api.objread, "shape_key_coords", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        api.import_reconstruction(folder)
    assert _datablocks() == before


# -- the import operator against a stand-in tool ------------------------------------------


def test_imports_stand_in_face_textured_and_facing_minus_y(stand_in, photo):
    before = _datablocks()
    result = bpy.ops.import_mesh.facenormals3d_photo(filepath=str(photo), max_faces=2, refine=3)
    assert result == {"FINISHED"}
    obj = bpy.data.objects["photo_face0"]
    assert obj.users_collection[0].name == "photo"
    assert bpy.context.view_layer.objects.active == obj
    mesh = obj.data
    assert len(mesh.vertices) == GRID[0] * GRID[1]
    assert len(mesh.polygons) == 2 * (GRID[0] - 1) * (GRID[1] - 1)
    # The face looked along +z in the file; in Blender it must look along -Y.
    nx, ny, nz = _world_mean_normal(obj)
    assert ny < -0.95 and abs(nx) < 0.05 and abs(nz) < 0.05
    # Height (file y) became Blender Z; mm became metres in the default metric scene.
    assert obj.dimensions.x == pytest.approx(STAND_IN_WIDTH_MM / 1000, rel=1e-3)
    assert obj.dimensions.z == pytest.approx(0.2, rel=1e-3)
    assert obj.dimensions.y == pytest.approx(0.08, rel=2e-3)  # paraboloid depth range
    # Textured: UVs, a material whose Base Color comes from the packed photo texture.
    assert mesh.uv_layers.active is not None
    us = [d.uv[0] for d in mesh.uv_layers.active.data]
    assert min(us) == pytest.approx(0.0, abs=1e-4) and max(us) == pytest.approx(1.0, abs=1e-4)
    image = _texture_node(mesh.materials[0]).image
    assert tuple(image.size) == (8, 4)
    assert image.packed_file is not None  # the temp folder is gone, the texture stays
    assert _normal_map_image(mesh.materials[0]).packed_file is not None
    assert len(mesh.shape_keys.key_blocks) == 1 + N_KEYS
    # The dialog options reached the command line; previews are skipped.
    argv = json.loads((stand_in / "argv.json").read_text())
    assert argv[argv.index("--max-faces") + 1] == "2" and argv[argv.index("--refine") + 1] == "3"
    assert "--no-previews" in argv
    out_dir = Path(argv[argv.index("-o") + 1])
    assert not out_dir.exists()  # keep_files off: the work folder was deleted
    after = _datablocks()
    assert set(after["objects"]) - set(before["objects"]) == {"photo_face0",
                                                              "photo_face0_landmarks"}


def test_operator_options_turn_extras_off(stand_in, photo):
    assert bpy.ops.import_mesh.facenormals3d_photo(
        filepath=str(photo), shape_keys=False, landmarks=False, landmark_empties=True) == {
        "FINISHED"}
    obj = bpy.data.objects["photo_face0"]
    assert obj.data.shape_keys is None
    assert sorted(c.name for c in obj.children) == sorted(
        f"photo_face0_{p}" for p in _api().results.NOW_POINTS)


def test_millimetre_scene_keeps_millimetres(stand_in, photo):
    units = bpy.context.scene.unit_settings
    units.system, units.scale_length, units.length_unit = "METRIC", 0.001, "MILLIMETERS"
    assert bpy.ops.import_mesh.facenormals3d_photo(filepath=str(photo)) == {"FINISHED"}
    obj = bpy.data.objects["photo_face0"]
    assert obj.dimensions.x == pytest.approx(STAND_IN_WIDTH_MM, rel=1e-3)
    key = obj.data.shape_keys.key_blocks["jawOpen"]
    assert max(abs(a.co[i] - b.co[i]) for a, b in zip(key.data, obj.data.vertices)
               for i in range(3)) > 1.0  # deltas of a few mm stay mm
    argv = json.loads((stand_in / "argv.json").read_text())
    assert "--refine" not in argv  # -1 = the tool's default


def test_keep_files_go_next_to_the_saved_blend(stand_in, photo, tmp_path):
    before = _datablocks()
    with pytest.raises(RuntimeError, match="save the .blend file first"):
        bpy.ops.import_mesh.facenormals3d_photo(filepath=str(photo), keep_files=True)
    assert _datablocks() == before
    project = tmp_path / "project"
    project.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(project / "scene.blend"))
    for suffix in ("", ".001"):
        assert bpy.ops.import_mesh.facenormals3d_photo(filepath=str(photo), keep_files=True) == {
            "FINISHED"}
        obj = bpy.data.objects["photo_face0" + suffix]
        image = _texture_node(obj.data.materials[0]).image
        assert image.packed_file is None
        assert image.filepath == f"//facenormals3d/photo{suffix}/face_0/texture.png"
        assert _normal_map_image(obj.data.materials[0]).filepath == \
            f"//facenormals3d/photo{suffix}/face_0/normal_map.png"
    assert sorted(p.name for p in (project / "facenormals3d").iterdir()) == ["photo",
                                                                            "photo.001"]
    # A chosen folder works without a saved .blend relative to it.
    elsewhere = tmp_path / "kept"
    assert bpy.ops.import_mesh.facenormals3d_photo(
        filepath=str(photo), keep_files=True, files_folder=str(elsewhere)) == {"FINISHED"}
    assert (elsewhere / "photo" / "face_0" / "mesh.obj").is_file()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["photo"]  # no work folder left


@pytest.mark.parametrize("name, content, expected", [
    ("bad.jpg", b"this is a text file, not a photo\n", "not a readable image"),
    ("noface.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, "no face found"),
    ("crash.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, "the model exploded"),
])
def test_tool_failures_are_error_reports_and_leave_scene_unchanged(
        stand_in, tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    before = _datablocks()
    with pytest.raises(RuntimeError, match=expected):  # bpy.ops raises on an ERROR report
        bpy.ops.import_mesh.facenormals3d_photo(filepath=str(path))
    assert _datablocks() == before


def test_missing_command_is_an_error_report(addon, photo):
    addon.command = str(photo.parent / "no-such-facenormals3d")
    try:
        before = _datablocks()
        with pytest.raises(RuntimeError, match="command not found"):
            bpy.ops.import_mesh.facenormals3d_photo(filepath=str(photo))
        assert _datablocks() == before
    finally:
        addon.command = ""


# -- the real tool -------------------------------------------------------------------------


def _real_command():
    home = Path(os.environ.get("FACENORMALS3D_HOME", REPO))
    command = home / ".venv" / "bin" / "facenormals3d"
    # `make test-blender` runs `make setup` first: a missing tool is a failure, not a skip.
    assert command.is_file(), f"no facenormals3d in {home}/.venv (run `make setup`)"
    return command


def test_real_reconstruct_rejects_a_text_file_named_jpg(addon, tmp_path):
    addon.command = str(_real_command())
    try:
        bad = tmp_path / "astronaut.jpg"
        bad.write_text("not an image\n")
        before = _datablocks()
        with pytest.raises(RuntimeError, match="Face from Photo: .*astronaut.jpg"):
            bpy.ops.import_mesh.facenormals3d_photo(filepath=str(bad), detail="landmarks")
        assert _datablocks() == before
    finally:
        addon.command = ""


def test_real_reconstruct_on_astronaut(addon, tmp_path, capsys, timing_log):
    command = _real_command()
    photo = tmp_path / "astronaut.png"
    # skimage is only in the main .venv: let its Python write the public-domain photo.
    subprocess.run([str(command.parent / "python"), "-c",
                    "import sys, imageio.v3 as iio, skimage.data; "
                    "iio.imwrite(sys.argv[1], skimage.data.astronaut())", str(photo)], check=True)
    addon.command = str(command)
    kept = tmp_path / "kept"
    try:
        before = _datablocks()
        assert (REPO / "assets" / "normalnet.safetensors").is_file(), "shipped weights missing"
        capsys.readouterr()
        result = bpy.ops.import_mesh.facenormals3d_photo(
            filepath=str(photo), max_faces=1, detail="network", keep_files=True,
            files_folder=str(kept), landmark_empties=True)
        log = capsys.readouterr().out
    finally:
        addon.command = ""
    assert result == {"FINISHED"}
    timing = next(line for line in log.splitlines() if "timings:" in line)
    timing_log.append("astronaut, 1 face, operator: " + timing.split("timings: ", 1)[1])
    obj = bpy.data.objects["astronaut_face0"]
    assert obj.users_collection[0].name == "astronaut"
    assert set(_datablocks()["objects"]) - set(before["objects"]) == {
        "astronaut_face0", "astronaut_face0_landmarks"} | {
        f"astronaut_face0_{p}" for p in _api().results.NOW_POINTS}
    assert 1000 <= len(obj.data.vertices) <= 2_000_000
    # Facing -Y, upright, not mirrored: read off the NoW landmark empties (a mean normal
    # would depend on how much of the head the tool's mesh covers).
    at = {p: np.array(bpy.data.objects[f"astronaut_face0_{p}"].matrix_world.translation)
          for p in _api().results.NOW_POINTS}
    eyes = (at["eye_outer.R"] + at["eye_outer.L"]) / 2
    mouth = (at["mouth_corner.R"] + at["mouth_corner.L"]) / 2
    assert at["nose_bottom"][1] < eyes[1] - 0.005  # the nose sticks out towards -Y
    assert eyes[2] > at["nose_bottom"][2] > mouth[2]  # eyes above the nose above the mouth
    # The subject's right eye is on the viewer's left in a front view (numpad 1): -X.
    assert at["eye_outer.R"][0] < at["eye_inner.R"][0] < at["eye_inner.L"][0] < at["eye_outer.L"][0]
    assert _world_mean_normal(obj)[1] < 0
    # A face in a metric scene with unit scale 1: about 0.1-0.35 m wide and tall.
    assert 0.08 < obj.dimensions.x < 0.35 and 0.08 < obj.dimensions.z < 0.4
    assert obj.dimensions.y < obj.dimensions.z
    face_dir = kept / "astronaut" / "face_0"
    image = _texture_node(obj.data.materials[0]).image
    assert Path(bpy.path.abspath(image.filepath)).parent == face_dir  # kept, linked
    # The landmark cloud lies on the face: every landmark within 5 mm of the mesh's box.
    cloud = _world_coords(bpy.data.objects["astronaut_face0_landmarks"])
    verts = _world_coords(obj)
    assert cloud.shape == (478, 3)
    assert (cloud > verts.min(0) - 0.005).all() and (cloud < verts.max(0) + 0.005).all()

    # The same folder through the scripting API, packed: the first import keeps its names.
    first = _datablocks()
    timings = {}
    t0 = time.perf_counter()
    (again,) = _api().import_reconstruction(str(kept / "astronaut"), timings=timings)
    timing_log.append(f"astronaut, 1 face, import_reconstruction: {time.perf_counter() - t0:.2f} s"
                      f" (read {timings['read']:.2f} s, build {timings['build']:.2f} s,"
                      f" CPU {timings['cpu']:.2f} s)")
    assert again.name == "astronaut_face0.001"
    assert all(set(first[k]) <= set(v) for k, v in _datablocks().items())
    color = _texture_node(again.data.materials[0]).image
    assert color.packed_file is not None
    # What the fitted-mesh outputs add, checked whenever the tool wrote them.
    if (face_dir / "blendshapes.npz").is_file():
        assert len(again.data.shape_keys.key_blocks) == 54
    if (face_dir / "normal_map.png").is_file():
        assert _normal_map_image(again.data.materials[0]).packed_file is not None
        # The atlas the tool chose for this face (report.json: 512 for the astronaut's
        # ~0.7 photo pixels per mm), packed at full size.
        size = json.loads((face_dir / "report.json").read_text())["texture_size"]
        assert tuple(color.size) == (2 * size, size) and size >= 512
    timing_log.append("astronaut outputs: " + ", ".join(sorted(p.name for p in face_dir.iterdir()))
                      + f"; base colour {tuple(color.size)}")


class _FakeOperator:
    """Borrows the operator's modal methods: Blender without a window (background mode)
    never sends timer events, so the interactive path is driven by hand here."""

    def __init__(self, job, work_dir, filepath):
        cls = _api().IMPORT_MESH_OT_facenormals3d_photo
        for name in ("modal", "_finish", "_set_status", "_stop_timer", "_cleanup"):
            setattr(self, name, getattr(cls, name).__get__(self))
        self._job, self._timer, self._work_dir = job, object(), str(work_dir)
        self._t_start = time.perf_counter()
        self.filepath, self.keep_files, self.reports = str(filepath), False, []
        self.shape_keys, self.landmarks, self.landmark_empties = True, True, False

    def report(self, kind, text):
        self.reports.append((set(kind), text))


class _FakeContext:
    def __init__(self):
        self.status, self.removed_timers = [], []
        self.workspace = type("W", (), {"status_text_set": lambda _, t: self.status.append(t)})()
        self.window_manager = type("M", (), {
            "event_timer_remove": lambda _, t: self.removed_timers.append(t)})()

    def __getattr__(self, name):  # scene, collection, view_layer, window: the real ones
        return getattr(bpy.context, name)


def _start(stand_in, photo, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    runner = _api().runner
    argv = runner.build_argv(str(stand_in / "facenormals3d"), str(photo), str(work))
    return runner.ReconstructJob(argv, str(work), str(photo), str(work)), work


def test_modal_timer_path_shows_progress_then_imports(stand_in, photo, tmp_path):
    job, work = _start(stand_in, photo, tmp_path)
    op, context = _FakeOperator(job, work, photo), _FakeContext()
    timer = type("E", (), {"type": "TIMER"})()
    assert op.modal(context, type("E", (), {"type": "MOUSEMOVE"})()) == {"PASS_THROUGH"}
    for _ in range(400):
        state = op.modal(context, timer)
        if state != {"PASS_THROUGH"}:
            break
        time.sleep(0.05)
    assert state == {"FINISHED"}, op.reports
    assert "photo_face0" in bpy.data.objects
    assert context.status[-1] is None and len(context.removed_timers) == 1  # status bar cleared
    assert not work.exists()
    assert op.reports[-1][0] == {"INFO"} and "imported 1 face" in op.reports[-1][1]


def test_modal_escape_stops_the_tool_and_changes_nothing(stand_in, photo, tmp_path):
    slow = stand_in / "facenormals3d"
    slow.write_text(slow.read_text().replace("import json, os, sys\n",
                                             "import json, os, sys, time; time.sleep(60)\n"))
    job, work = _start(stand_in, photo, tmp_path)
    op, context = _FakeOperator(job, work, photo), _FakeContext()
    before = _datablocks()
    assert op.modal(context, type("E", (), {"type": "TIMER"})()) == {"PASS_THROUGH"}
    assert context.status and context.status[-1].startswith("Face from Photo: ")
    assert op.modal(context, type("E", (), {"type": "ESC"})()) == {"CANCELLED"}
    assert job.process.poll() is not None and not work.exists()
    assert op.reports == [({"WARNING"}, "Face from Photo: cancelled")]
    assert _datablocks() == before
