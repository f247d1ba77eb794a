"""Blender add-on: File > Import > Face from Photo (.jpg/.png), and a scripting API.

The operator runs ``facenormals3d reconstruct`` on the chosen photo in a child process
(Blender stays responsive; progress in the status bar; Esc cancels), then imports the
photo's output folder with :func:`import_reconstruction` (see :mod:`.importer`): one object
per face in a new collection named after the photo, with full-resolution base colour and
normal map, expression shape keys and landmark helpers, side by side at the 3D cursor.

Scripts call the API directly on a folder the tool wrote::

    import facenormals3d_blender
    faces = facenormals3d_blender.import_reconstruction("/path/out/astronaut")

Nothing is added to the scene unless every file was read successfully; failures are
Blender error reports with one line from the tool. Stdlib + bpy only; the file reading
and conversions live in :mod:`.objread`, :mod:`.npyread`, :mod:`.results` and
:mod:`.runner`, which do not need bpy.
"""

bl_info = {
    "name": "facenormals3d: Face from Photo",
    "author": "facenormals3d contributors",
    "version": (0, 2, 0),
    "blender": (4, 2, 0),
    "location": "File > Import > Face from Photo (.jpg/.png)",
    "description": "Reconstruct a textured 3D face mesh from a photo with the facenormals3d tool",
    "doc_url": "",
    "category": "Import-Export",
}

import os
import shutil
import tempfile
import time
import traceback

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import importer, objread, results, runner
from .importer import import_reconstruction

__all__ = ["import_reconstruction", "register", "unregister"]

#: Seconds between two polls of the child process.
POLL_SECONDS = 0.1
#: Longest a blocking run may take when Blender has no window (background mode), seconds.
BACKGROUND_TIMEOUT = 3600.0
#: Folder next to the saved .blend file that "Keep files" writes into by default.
KEEP_FOLDER = "facenormals3d"


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
    shape_keys: BoolProperty(
        name="Expression shape keys",
        description="Shape keys Basis + one per expression blendshape the tool wrote "
                    "(ARKit-style names such as jawOpen, eyeBlink_L)",
        default=True)
    landmarks: BoolProperty(
        name="Landmark points",
        description="A child object whose 478 vertices are the face landmarks "
                    "(vertex i = mediapipe landmark i), for snapping a rig to",
        default=True)
    landmark_empties: BoolProperty(
        name="Landmark empties",
        description="Seven child empties at the eye corners, nose bottom and mouth corners "
                    "(named eye_outer.R, ..., mouth_corner.L)",
        default=False)
    keep_files: BoolProperty(
        name="Keep files",
        description="Keep the tool's output (meshes, maps, landmarks, reports) in the files "
                    "folder and link the images from there with relative paths; otherwise "
                    "the images are packed into the .blend file and the output is deleted",
        default=False)
    files_folder: StringProperty(
        name="Files folder",
        description="Where Keep files puts the output (a folder per photo). Empty: a "
                    "'facenormals3d' folder next to the saved .blend file",
        subtype="DIR_PATH", default="")

    def draw(self, context):
        for name in ("max_faces", "detail", "refine", "shape_keys", "landmarks",
                     "landmark_empties", "keep_files"):
            self.layout.prop(self, name)
        row = self.layout.row()
        row.enabled = self.keep_files
        row.prop(self, "files_folder")

    # -- starting -----------------------------------------------------------------------

    def execute(self, context):
        self._job, self._timer, self._work_dir = None, None, ""
        self._t_start = time.perf_counter()
        photo = bpy.path.abspath(self.filepath)
        if not os.path.isfile(photo):
            self.report({"ERROR"}, f"Face from Photo: no such file: {photo}")
            return {"CANCELLED"}
        prefs = _preferences(context)
        try:
            command = runner.resolve_command(bpy.path.abspath(prefs.command) if prefs else "")
            keep_root = self._keep_root() if self.keep_files else ""
            self._work_dir = _make_work_dir(keep_root)
            argv = runner.build_argv(command, photo, self._work_dir, self.max_faces, self.refine,
                                     "" if self.detail == "network" else self.detail,
                                     no_previews=True)
            self._job = runner.ReconstructJob(argv, self._work_dir, photo, self._work_dir)
        except runner.CommandError as err:
            self._cleanup()
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

    def _keep_root(self):
        """The folder Keep files writes into; CommandError when there is none yet."""
        if self.files_folder.strip():
            return bpy.path.abspath(self.files_folder.strip())
        if bpy.data.filepath:
            return os.path.join(os.path.dirname(bpy.data.filepath), KEEP_FOLDER)
        raise runner.CommandError("Keep files: save the .blend file first (the files go next "
                                  "to it) or choose a Files folder")

    def modal(self, context, event):
        if event.type == "ESC":
            self._job.cancel()
            self._stop_timer(context)
            self._cleanup()
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
        timings = {}
        try:
            if result.error:
                self.report({"ERROR"}, f"Face from Photo: {result.error}")
                return {"CANCELLED"}
            folder = result.folder
            if self.keep_files:
                folder = _move_out(folder, os.path.dirname(self._work_dir))
            objects = import_reconstruction(
                folder, context=context, pack=not self.keep_files, shape_keys=self.shape_keys,
                landmarks=self.landmarks, landmark_empties=self.landmark_empties,
                name=os.path.splitext(os.path.basename(self.filepath))[0], timings=timings)
            importer.frame_objects(context, objects)
        except (objread.ObjError, results.ResultError, OSError) as err:
            self.report({"ERROR"}, f"Face from Photo: {err}")
            return {"CANCELLED"}
        except Exception as err:  # noqa: BLE001 - must end as a report, not a lost traceback
            traceback.print_exc()
            self.report({"ERROR"}, f"Face from Photo: {type(err).__name__}: {err}")
            return {"CANCELLED"}
        finally:
            self._cleanup()
        command = self._job.command_seconds()
        total = time.perf_counter() - self._t_start
        # The add-on's own cost per import: everything but the tool's run (process start,
        # result polling, reading the files, making the Blender data).
        print(f"facenormals3d: timings: command {command:.2f} s, add-on overhead "
              f"{total - command:.2f} s (read {timings.get('read', 0):.2f} s, build "
              f"{timings.get('build', 0):.2f} s, CPU {timings.get('cpu', 0):.2f} s) "
              f"for {len(objects)} face(s)"
              + (f"; the tool rejected {', '.join(self._job.dropped_flags)}"
                 if self._job.dropped_flags else ""))
        where = f"; files in {folder}" if self.keep_files else ""
        self.report({"INFO"}, f"Face from Photo: imported {len(objects)} face(s) in "
                              f"{total:.0f} s{where}")
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

    def _cleanup(self):
        """Remove the work folder (with Keep files, the results were moved out of it)."""
        if self._work_dir:
            shutil.rmtree(self._work_dir, ignore_errors=True)


def _make_work_dir(keep_root):
    """A fresh folder for the tool's output: inside ``keep_root`` when files are kept (so
    the results move out of it by a rename), else in the system's temporary folder."""
    try:
        if keep_root:
            os.makedirs(keep_root, exist_ok=True)
            return tempfile.mkdtemp(prefix=".facenormals3d-", dir=keep_root)
        return tempfile.mkdtemp(prefix="facenormals3d_")
    except OSError as err:
        raise runner.CommandError(f"cannot make a folder in {keep_root or tempfile.gettempdir()}: "
                                  f"{err.strerror or err}") from None


def _move_out(folder, root):
    """Move a photo's output folder to ``root/<name>`` (``<name>.001``, ... when taken)."""
    name = os.path.basename(folder.rstrip(os.sep))
    for n in range(100000):
        dest = os.path.join(root, name + (f".{n:03d}" if n else ""))
        if not os.path.exists(dest):
            os.rename(folder, dest)
            return dest
    raise OSError(f"no free folder name for {name} in {root}")


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
