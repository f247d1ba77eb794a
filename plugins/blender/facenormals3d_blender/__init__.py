"""Blender add-on: File > Import > Face from Photo (.jpg/.png).

Runs ``facenormals3d reconstruct`` on the chosen photo in a child process (Blender stays
responsive; progress in the status bar; Esc cancels), then imports every reconstructed
face as a mesh object ``<photo-stem>_face<k>`` textured with the photo (Principled BSDF
base colour from an Image Texture node on the mesh's UVs), turned from the tool's y-up
frame to Blender's z-up (the face looks along -Y, towards a front view) and scaled from
millimetres to the scene's units.

Nothing is added to the scene unless every face was read successfully; failures are
Blender error reports with one line from the tool. Stdlib + bpy only; the file reading
and conversions live in :mod:`.objread` and :mod:`.runner`, which do not need bpy.
"""

bl_info = {
    "name": "facenormals3d: Face from Photo",
    "author": "facenormals3d contributors",
    "version": (0, 1, 0),
    "blender": (3, 6, 0),
    "location": "File > Import > Face from Photo (.jpg/.png)",
    "description": "Reconstruct a textured 3D face mesh from a photo with the facenormals3d tool",
    "doc_url": "",
    "category": "Import-Export",
}

import os
import shutil
import tempfile
import traceback

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import objread, runner

#: Seconds between two polls of the child process.
POLL_SECONDS = 0.25
#: Longest a blocking run may take when Blender has no window (background mode), seconds.
BACKGROUND_TIMEOUT = 3600.0


class FACENORMALS3D_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__ or __name__

    command: StringProperty(
        name="facenormals3d command",
        description="The facenormals3d executable, or a folder holding a checkout with "
                    ".venv / a virtual environment. Empty: 'facenormals3d' on PATH, else "
                    "$FACENORMALS3D_HOME/.venv/bin/facenormals3d",
        subtype="FILE_PATH", default="")

    def draw(self, context):
        self.layout.prop(self, "command")
        try:
            self.layout.label(text="Using: " + runner.resolve_command(bpy.path.abspath(self.command)))
        except runner.CommandError as err:
            self.layout.label(text=str(err), icon="ERROR")


def _preferences(context):
    addon = context.preferences.addons.get(FACENORMALS3D_AddonPreferences.bl_idname)
    return addon.preferences if addon else None


class IMPORT_MESH_OT_facenormals3d_photo(bpy.types.Operator, ImportHelper):
    """Reconstruct textured 3D face meshes from a photo with facenormals3d"""

    bl_idname = "import_mesh.facenormals3d_photo"
    bl_label = "Face from Photo"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.jpg;*.jpeg;*.png", options={"HIDDEN"})
    max_faces: IntProperty(
        name="Max faces", description="Reconstruct at most this many faces (largest first)",
        default=1, min=1, max=64)
    refine: IntProperty(
        name="Refinement iterations",
        description="Shading-consistency refinement iterations (more: finer detail, slower); "
                    "-1 uses the tool's default",
        default=-1, min=-1, max=1000)
    detail: EnumProperty(
        name="Detail",
        description="Where the fine surface detail comes from",
        items=(("network", "Network", "Normals predicted by the network from the photo "
                                      "(needs the tool's weights)"),
               ("landmarks", "Landmarks only", "The coarse landmark face: smooth, fast, "
                                               "no network weights needed")),
        default="network")
    keep_files: BoolProperty(
        name="Keep files",
        description="Keep the tool's output folder (OBJ, PLY, texture, reports) and link the "
                    "texture from there; otherwise the folder is deleted and the texture "
                    "is packed into the .blend file",
        default=False)

    def draw(self, context):
        for name in ("max_faces", "detail", "refine", "keep_files"):
            self.layout.prop(self, name)

    # -- starting -----------------------------------------------------------------------

    def execute(self, context):
        self._job, self._timer, self._work_dir = None, None, ""
        photo = bpy.path.abspath(self.filepath)
        if not os.path.isfile(photo):
            self.report({"ERROR"}, f"Face from Photo: no such file: {photo}")
            return {"CANCELLED"}
        prefs = _preferences(context)
        try:
            command = runner.resolve_command(bpy.path.abspath(prefs.command) if prefs else "")
            self._work_dir = tempfile.mkdtemp(prefix="facenormals3d_")
            argv = runner.build_argv(command, photo, self._work_dir, self.max_faces, self.refine,
                                     "" if self.detail == "network" else self.detail)
            self._job = runner.ReconstructJob(argv, self._work_dir, photo, self._work_dir)
        except runner.CommandError as err:
            self._cleanup(remove=True)
            self.report({"ERROR"}, f"Face from Photo: {err}")
            return {"CANCELLED"}
        print("facenormals3d:", " ".join(argv))
        if bpy.app.background or context.window is None:
            # No event loop to run a timer in (background mode, scripts): block instead.
            return self._finish(context, self._job.wait(BACKGROUND_TIMEOUT))
        wm = context.window_manager
        self._timer = wm.event_timer_add(POLL_SECONDS, window=context.window)
        wm.modal_handler_add(self)
        self._set_status(context, "starting")
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            self._job.cancel()
            self._stop_timer(context)
            self._cleanup(remove=True)
            self.report({"WARNING"}, "Face from Photo: cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        result = self._job.poll()
        if result is None:
            self._set_status(context, self._job.status())
            return {"PASS_THROUGH"}
        return self._finish(context, result)

    # -- finishing ----------------------------------------------------------------------

    def _finish(self, context, result):
        self._stop_timer(context)
        try:
            if result.error:
                self.report({"ERROR"}, f"Face from Photo: {result.error}")
                return {"CANCELLED"}
            stem = os.path.splitext(os.path.basename(self.filepath))[0]
            objects = import_faces(context, result.meshes, stem, pack=not self.keep_files)
        except objread.ObjError as err:
            self.report({"ERROR"}, f"Face from Photo: {err}")
            return {"CANCELLED"}
        except Exception as err:  # noqa: BLE001 - must end as a report, not a lost traceback
            traceback.print_exc()
            self.report({"ERROR"}, f"Face from Photo: {type(err).__name__}: {err}")
            return {"CANCELLED"}
        finally:
            self._cleanup(remove=not self.keep_files)
        where = f"; files kept in {self._work_dir}" if self.keep_files else ""
        self.report({"INFO"}, f"Face from Photo: imported {len(objects)} face(s) in "
                              f"{self._job.elapsed():.0f} s{where}")
        return {"FINISHED"}

    def _set_status(self, context, text):
        if context.workspace is not None:
            context.workspace.status_text_set(f"Face from Photo: {text}  (Esc to cancel)")

    def _stop_timer(self, context):
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if context.workspace is not None:
            context.workspace.status_text_set(None)

    def _cleanup(self, remove):
        if remove and self._work_dir:
            shutil.rmtree(self._work_dir, ignore_errors=True)


def import_faces(context, obj_paths, stem, pack):
    """Read every ``mesh.obj`` first, then create one textured object per face.

    Returns the new objects. Raises :class:`objread.ObjError` (before anything is
    created) for unreadable files; if creating the Blender data fails halfway, what was
    created is removed again before the error propagates, so the scene is unchanged.
    """
    units = context.scene.unit_settings
    factor = objread.mm_to_scene_factor(units.system, units.scale_length)
    faces = []
    for path in obj_paths:
        mesh, texture = objread.read_obj_with_texture(path)
        faces.append((objread.to_blender_mesh(mesh, factor), texture))
    created = []
    try:
        objects = _create_objects(context, faces, stem, pack, created)
    except Exception:
        _remove_datablocks(created)
        raise
    for obj in context.view_layer.objects:
        obj.select_set(False)
    for obj in objects:
        obj.select_set(True)
    context.view_layer.objects.active = objects[0]
    return objects


def _create_objects(context, faces, stem, pack, created):
    collection = context.collection or context.scene.collection
    cursor = context.scene.cursor.location
    spacing = 1.25 * max(_width(data.vertices) for data, _ in faces)
    objects = []
    for k, (data, texture) in enumerate(faces):
        name = f"{stem}_face{k}"
        mesh = _build_mesh(name, data, created)
        if texture:
            image = bpy.data.images.load(texture, check_existing=False)
            created.append(image)
            image.name = f"{name}_texture"
            if pack:
                image.pack()
            mesh.materials.append(_photo_material(name, image, created))
        obj = bpy.data.objects.new(name, mesh)
        created.append(obj)
        obj.location = (cursor.x + k * spacing, cursor.y, cursor.z)
        objects.append(obj)
    for obj in objects:  # linked last: until here nothing is visible in the scene
        collection.objects.link(obj)
    return objects


def _width(vertices):
    xs = [v[0] for v in vertices]
    return (max(xs) - min(xs)) if xs else 0.0


def _build_mesh(name, data, created):
    mesh = bpy.data.meshes.new(name)
    created.append(mesh)
    mesh.from_pydata(data.vertices, [], data.polygons)
    if data.loop_uvs:
        layer = mesh.uv_layers.new(name="UVMap")
        layer.data.foreach_set("uv", data.loop_uvs)
    mesh.polygons.foreach_set("use_smooth", [True] * len(mesh.polygons))
    if data.loop_normals:
        # The tool's normals, not Blender's recomputed ones: they are what it exported.
        if hasattr(mesh, "use_auto_smooth"):  # Blender < 4.1 ignores custom normals without it
            mesh.use_auto_smooth = True
        mesh.normals_split_custom_set(data.loop_normals)
    mesh.update()
    return mesh


def _photo_material(name, image, created):
    material = bpy.data.materials.new(name)
    created.append(material)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        bsdf = nodes.new("ShaderNodeBsdfPrincipled")
        output = next(n for n in nodes if n.type == "OUTPUT_MATERIAL")
        links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    bsdf.inputs["Roughness"].default_value = 0.6  # skin is neither matte nor glossy
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    texture.location = (bsdf.location.x - 320, bsdf.location.y)
    uv = nodes.new("ShaderNodeUVMap")
    uv.uv_map = "UVMap"
    uv.location = (texture.location.x - 220, texture.location.y)
    links.new(uv.outputs["UV"], texture.inputs["Vector"])
    links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    return material


def _remove_datablocks(created):
    for block in reversed(created):  # objects before the meshes and materials they use
        _remove_one(block)


def _remove_one(block):
    for coll in (bpy.data.objects, bpy.data.meshes, bpy.data.materials, bpy.data.images):
        try:
            if block.name in coll and coll[block.name] == block:
                coll.remove(block)
                return
        except ReferenceError:  # already freed together with its owner
            return


def menu_import(self, context):
    self.layout.operator(IMPORT_MESH_OT_facenormals3d_photo.bl_idname,
                         text="Face from Photo (.jpg/.png)")


CLASSES = (FACENORMALS3D_AddonPreferences, IMPORT_MESH_OT_facenormals3d_photo)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_import.append(menu_import)


def unregister():
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
