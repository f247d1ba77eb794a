"""The Blender add-on inside real Blender (the ``bpy`` module), headless.

Run by ``make test-blender`` with ``.venv-blender/bin/python -m pytest tests/plugins/blender``.
The add-on is installed from its zip the way a user does (Preferences > Add-ons > Install),
then the import operator runs:

* against a stand-in ``facenormals3d`` script written here, which writes the documented
  output layout (a textured paraboloid "face" as OBJ + MTL + PNG, in mm, y up, looking
  along +z) and the ``--json`` summary, or fails like the tool does;
* against the real ``facenormals3d reconstruct`` from the main .venv on the astronaut
  photo (skipped, saying why, while that command is not available).
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
import pytest

REPO = Path(__file__).resolve().parents[3]
ADDON = "facenormals3d_blender"
GRID = (21, 26)  # stand-in mesh: columns x rows of vertices
STAND_IN_WIDTH_MM = 160.0

STAND_IN = r'''
"""Stand-in for `facenormals3d reconstruct PHOTO -o OUT --json`: same layout, fake face."""
import json, math, os, struct, sys, zlib

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

def png(path, w, h):
    raw = b"".join(b"\x00" + b"".join(bytes((x * 255 // (w - 1), y * 255 // (h - 1), 128))
                                      for x in range(w)) for y in range(h))
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                 + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

nx, ny = %(nx)d, %(ny)d
half_w, half_h = %(half_w)f, 100.0
face = os.path.join(out, stem, "face_0")
os.makedirs(face)
lines = ["mtllib mesh.mtl", "usemtl photo"]
for i in range(ny):
    for j in range(nx):
        x = -half_w + 2 * half_w * j / (nx - 1)
        y = -half_h + 2 * half_h * i / (ny - 1)
        z = 40.0 * (1 - (x / half_w) ** 2 - (y / half_h) ** 2) - 500.0  # 0.5 m from the camera
        n = (80.0 * x / half_w ** 2, 80.0 * y / half_h ** 2, 1.0)
        length = math.sqrt(sum(c * c for c in n))
        lines += ["v %%.4f %%.4f %%.4f" %% (x, y, z),
                  "vt %%.5f %%.5f" %% ((x + half_w) / (2 * half_w), (y + half_h) / (2 * half_h)),
                  "vn %%.5f %%.5f %%.5f" %% tuple(c / length for c in n)]
for i in range(ny - 1):
    for j in range(nx - 1):
        a, b, c, d = i * nx + j + 1, i * nx + j + 2, (i + 1) * nx + j + 2, (i + 1) * nx + j + 1
        for tri in ((a, b, c), (a, c, d)):  # counter-clockwise seen from +z (the camera)
            lines.append("f " + " ".join("%%d/%%d/%%d" %% (k, k, k) for k in tri))
with open(os.path.join(face, "mesh.obj"), "w") as fh:
    fh.write("\n".join(lines) + "\n")
with open(os.path.join(face, "mesh.mtl"), "w") as fh:
    fh.write("newmtl photo\nKd 1 1 1\nmap_Kd texture.png\n")
png(os.path.join(face, "texture.png"), 8, 4)
print(json.dumps({"succeeded": [{"input": photo, "output": os.path.join(out, stem), "faces": 1}],
                  "failed": [], "n_succeeded": 1, "n_failed": 0, "exit_code": 0}))
''' % {"nx": GRID[0], "ny": GRID[1], "half_w": STAND_IN_WIDTH_MM / 2}


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


def _datablocks():
    return {kind: sorted(b.name for b in getattr(bpy.data, kind))
            for kind in ("objects", "meshes", "materials", "images")}


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


def _texture_node(material):
    nodes = material.node_tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    links = bsdf.inputs["Base Color"].links
    assert links, "Base Color is not driven by a node"
    node = links[0].from_node
    assert node.type == "TEX_IMAGE"
    return node


def test_imports_stand_in_face_textured_and_facing_minus_y(stand_in, photo):
    before = _datablocks()
    result = bpy.ops.import_mesh.facenormals3d_photo(filepath=str(photo), max_faces=2, refine=3)
    assert result == {"FINISHED"}
    obj = bpy.data.objects["photo_face0"]
    assert obj.name in bpy.context.scene.collection.all_objects
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
    # The dialog options reached the command line.
    argv = json.loads((stand_in / "argv.json").read_text())
    assert argv[argv.index("--max-faces") + 1] == "2" and argv[argv.index("--refine") + 1] == "3"
    out_dir = Path(argv[argv.index("-o") + 1])
    assert not out_dir.exists()  # keep_files off: the work folder was deleted
    after = _datablocks()
    assert set(after["objects"]) - set(before["objects"]) == {"photo_face0"}


def test_millimetre_scene_keeps_millimetres_and_keep_files(stand_in, photo):
    units = bpy.context.scene.unit_settings
    units.system, units.scale_length, units.length_unit = "METRIC", 0.001, "MILLIMETERS"
    assert bpy.ops.import_mesh.facenormals3d_photo(filepath=str(photo), keep_files=True) == {"FINISHED"}
    obj = bpy.data.objects["photo_face0"]
    assert obj.dimensions.x == pytest.approx(STAND_IN_WIDTH_MM, rel=1e-3)
    image = _texture_node(obj.data.materials[0]).image
    assert image.packed_file is None and Path(image.filepath).is_file()
    argv = json.loads((stand_in / "argv.json").read_text())
    assert "--refine" not in argv  # -1 = the tool's default
    shutil.rmtree(argv[argv.index("-o") + 1])


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


def test_real_reconstruct_on_astronaut(addon, tmp_path):
    command = _real_command()
    photo = tmp_path / "astronaut.png"
    # skimage is only in the main .venv: let its Python write the public-domain photo.
    subprocess.run([str(command.parent / "python"), "-c",
                    "import sys, imageio.v3 as iio, skimage.data; "
                    "iio.imwrite(sys.argv[1], skimage.data.astronaut())", str(photo)], check=True)
    addon.command = str(command)
    try:
        before = _datablocks()
        assert (REPO / "assets" / "normalnet.safetensors").is_file(), "shipped weights missing"
        result = bpy.ops.import_mesh.facenormals3d_photo(filepath=str(photo), max_faces=1,
                                                         detail="network")
        assert result == {"FINISHED"}
        obj = bpy.data.objects["astronaut_face0"]
        assert set(_datablocks()["objects"]) - set(before["objects"]) == {"astronaut_face0"}
        assert 1000 <= len(obj.data.vertices) <= 2_000_000
        image = _texture_node(obj.data.materials[0]).image
        assert image.size[0] > 0 and image.packed_file is not None
        nx, ny, nz = _world_mean_normal(obj)
        assert ny < -0.7, (nx, ny, nz)
        # A face in a metric scene with unit scale 1: about 0.1-0.35 m wide and tall.
        assert 0.08 < obj.dimensions.x < 0.35 and 0.08 < obj.dimensions.z < 0.4
        assert obj.dimensions.y < obj.dimensions.z
    finally:
        addon.command = ""


class _FakeOperator:
    """Borrows the operator's modal methods: Blender without a window (background mode)
    never sends timer events, so the interactive path is driven by hand here."""

    def __init__(self, job, work_dir, filepath):
        import facenormals3d_blender as addon_module

        cls = addon_module.IMPORT_MESH_OT_facenormals3d_photo
        for name in ("modal", "_finish", "_set_status", "_stop_timer", "_cleanup"):
            setattr(self, name, getattr(cls, name).__get__(self))
        self._job, self._timer, self._work_dir = job, object(), str(work_dir)
        self.filepath, self.keep_files, self.reports = str(filepath), False, []

    def report(self, kind, text):
        self.reports.append((set(kind), text))


class _FakeContext:
    def __init__(self):
        self.status, self.removed_timers = [], []
        self.workspace = type("W", (), {"status_text_set": lambda _, t: self.status.append(t)})()
        self.window_manager = type("M", (), {
            "event_timer_remove": lambda _, t: self.removed_timers.append(t)})()

    def __getattr__(self, name):  # scene, collection, view_layer: the real ones
        return getattr(bpy.context, name)


def _start(stand_in, photo, tmp_path):
    import facenormals3d_blender as addon_module

    work = tmp_path / "work"
    work.mkdir()
    runner = addon_module.runner
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
    slow.write_text(slow.read_text().replace("import json,", "import time; time.sleep(60)\nimport json,"))
    job, work = _start(stand_in, photo, tmp_path)
    op, context = _FakeOperator(job, work, photo), _FakeContext()
    before = _datablocks()
    assert op.modal(context, type("E", (), {"type": "TIMER"})()) == {"PASS_THROUGH"}
    assert context.status and context.status[-1].startswith("Face from Photo: ")
    assert op.modal(context, type("E", (), {"type": "ESC"})()) == {"CANCELLED"}
    assert job.process.poll() is not None and not work.exists()
    assert op.reports == [({"WARNING"}, "Face from Photo: cancelled")]
    assert _datablocks() == before
