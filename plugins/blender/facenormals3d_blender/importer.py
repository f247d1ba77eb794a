"""Turning a ``facenormals3d reconstruct`` output folder into Blender objects.

:func:`import_reconstruction` is the add-on's scripting API (the import operator calls it
too)::

    import facenormals3d_blender
    faces = facenormals3d_blender.import_reconstruction("/renders/out/astronaut")

Per face ``k`` of the photo ``<stem>`` it makes, all named ``<stem>_face<k>`` unless noted:

* a mesh object with the tool's mesh (smooth, its vertex normals as custom normals, UV
  map ``UVMap``) turned to Blender's frame (the face looks along -Y, up = +Z) and scaled
  from millimetres to the scene's units, its origin at the mesh's bounding-box centre;
* shape keys ``Basis`` + one per expression of ``blendshapes.npz`` (when present), in the
  shape-key datablock ``<stem>_face<k>``;
* a material with a Principled BSDF: Base Color from the image ``<stem>_face<k>_basecolor``
  (albedo.png when present, else the photo texture; full resolution, sRGB), Normal from a
  tangent-space Normal Map node on ``<stem>_face<k>_normal`` (normal_map.png, Non-Color);
* a child object ``<stem>_face<k>_landmarks``: the 478 landmarks as a mesh of loose
  vertices (vertex i = mediapipe landmark i; snap to them in Edit Mode), hidden in renders;
* optionally seven child empties ``<stem>_face<k>_<point>`` at the NoW landmarks
  (``eye_outer.R``, ``eye_inner.R``, ``eye_inner.L``, ``eye_outer.L``, ``nose_bottom``,
  ``mouth_corner.R``, ``mouth_corner.L``; R/L = the subject's right/left).

Names. When any of those names is taken (an earlier import of the same photo), the whole
import gets one common suffix ``.001``, ``.002``, ... on every datablock it creates, so an
earlier import's datablocks are never renamed and a face's parts keep matching names.

Placement. Faces sit side by side along +X, ``gap`` apart (a quarter of the widest face),
the first one's centre at ``location`` (default: the 3D cursor). If that row would overlap
an earlier facenormals3d import, it moves along +X until it does not.

Atomicity. Every file is read and checked before any datablock is made; if making them
fails, what was made is removed again, so a failed import leaves the file as it was.
"""

from __future__ import annotations

import os
import time

import bpy
from mathutils import Matrix, Vector

from . import objread, results

#: Custom property marking a face object made by this add-on (value: the face index).
FACE_PROPERTY = "facenormals3d_face"
#: Custom property holding the output folder a face object was imported from.
FOLDER_PROPERTY = "facenormals3d_folder"
#: Longest photo stem used in names (bytes): Blender names hold 63 bytes, and the longest
#: name made here adds ``_face<k>_mouth_corner.R.<nnn>``.
MAX_STEM_BYTES = 32
#: Display size of the landmark empties, millimetres.
EMPTY_SIZE_MM = 4.0


def import_reconstruction(folder, collection=None, *, context=None, pack=True, shape_keys=True,
                          landmarks=True, landmark_empties=False, location=None, name=None,
                          timings=None):
    """Import one photo's ``facenormals3d reconstruct`` output folder; return the face objects.

    Args:
        folder: ``OUT/<photo-stem>`` as written by ``facenormals3d reconstruct PHOTO -o OUT``
            (all its ``face_<k>`` folders are imported), or a single ``face_<k>`` folder.
        collection: the ``bpy.types.Collection`` to put the new objects in. None (default)
            makes a new collection named after the photo, linked to the scene's collection.
        context: the ``bpy.context`` to use (scene units, 3D cursor, view layer); default
            ``bpy.context``.
        pack: pack the images into the .blend file (default). False links them from
            ``folder``, with paths relative to the .blend file when it is saved.
        shape_keys: make shape keys from ``blendshapes.npz`` when the folder has one.
        landmarks: make the 478-landmark child object when ``landmarks.npy`` exists.
        landmark_empties: make the 7 NoW-landmark child empties when ``landmarks7.npy`` exists.
        location: (x, y, z) for the first face's centre, scene units; default the 3D cursor.
        name: the photo name the datablocks are named after; default the photo folder's
            name (``<photo-stem>``).
        timings: a dict to fill with seconds spent reading files (``read``) and making
            Blender data (``build``), and the CPU seconds of both (``cpu``), or None.

    Returns:
        The new face objects (``bpy.types.Object``, face 0 first); their landmark children
        are reachable through ``obj.children``. The face objects are selected and the first
        one is active when they are in the view layer.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        results.ResultError: no face in ``folder``, or a file in it is malformed (nothing
            was added to the file).
    """
    context = context or bpy.context
    folder = os.path.abspath(bpy.path.abspath(str(folder)))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no such folder: {folder}")
    t0, cpu0 = time.perf_counter(), time.process_time()
    units = context.scene.unit_settings
    factor = objread.mm_to_scene_factor(units.system, units.scale_length)
    faces = results.read_photo_folder(folder, shape_keys, landmarks or landmark_empties)
    prepared = [_Prepared(face, factor, landmarks, landmark_empties) for face in faces]
    t1 = time.perf_counter()
    stem = _clip(name or results.photo_name(folder))
    suffix = _free_suffix(stem, prepared, collection is None)
    created = []
    try:
        objects = _build(context, prepared, stem, suffix, collection, pack, factor, location,
                         folder, created)
    except BaseException:
        _remove_datablocks(created)
        raise
    if timings is not None:
        timings["read"] = t1 - t0
        timings["build"] = time.perf_counter() - t1
        timings["cpu"] = time.process_time() - cpu0
    return objects


class _Prepared:
    """One face converted to Blender's frame and units (pure Python, before any bpy data)."""

    def __init__(self, face, factor, landmarks, landmark_empties):
        self.face, self.factor = face, factor
        self.data = objread.to_blender_mesh(face.mesh, factor)
        self.matrix = objread.blender_matrix(factor, self.data.offset)
        self.basis = objread.flat_coords(face.mesh.positions) if face.shape_key_names else None
        off = self.data.offset
        self.landmarks = objread.points_to_blender(face.landmarks, factor, off) if landmarks else []
        self.now_points = (objread.points_to_blender(face.landmarks7, factor, off)
                           if landmark_empties else [])
        xs = self.data.vertices and [v[0] for v in self.data.vertices]
        self.width = (max(xs) - min(xs)) if xs else 0.0

    def names(self, stem):
        """Every datablock name this face needs (before the common suffix), by kind."""
        base = f"{stem}_face{self.face.index}"
        meshes = [base] + ([f"{base}_landmarks"] if self.landmarks else [])
        objects = meshes + ([f"{base}_{point}" for point in results.NOW_POINTS]
                            if self.now_points else [])
        images = ([f"{base}_basecolor"] if self.face.base_color else []) + (
            [f"{base}_normal"] if self.face.normal_map else [])
        return {"objects": objects, "meshes": meshes, "materials": [base],
                "images": images, "shape_keys": [base] if self.face.shape_key_names else []}


def _clip(stem):
    raw = stem.encode("utf-8")[:MAX_STEM_BYTES]
    return raw.decode("utf-8", errors="ignore") or "face"


def _free_suffix(stem, prepared, new_collection):
    """'' or the first '.NNN' for which no name of this import is taken."""
    wanted = {"collections": [stem] if new_collection else []}
    for face in prepared:
        for kind, names in face.names(stem).items():
            wanted.setdefault(kind, []).extend(names)
    for n in range(0, 100000):
        suffix = f".{n:03d}" if n else ""
        if not any(name + suffix in getattr(bpy.data, kind)
                   for kind, names in wanted.items() for name in names):
            return suffix
    raise RuntimeError(f"no free name for {stem}")  # 100000 imports of one photo


def _build(context, prepared, stem, suffix, collection, pack, factor, location, folder, created):
    if collection is None:
        collection = bpy.data.collections.new(stem + suffix)
        created.append(collection)
        new_collection = collection
    else:
        new_collection = None
    faces, extras = [], []
    for item in prepared:
        base = f"{stem}_face{item.face.index}"
        obj = _face_object(base, suffix, item, pack, created)
        obj[FACE_PROPERTY] = item.face.index
        obj[FOLDER_PROPERTY] = folder
        faces.append(obj)
        extras += _landmark_objects(base, suffix, item, obj, factor, created)
    _place(context, faces, [p.width for p in prepared], location)
    # Linked last: until here nothing is in the scene.
    for obj in faces + extras:
        collection.objects.link(obj)
    if new_collection is not None:
        context.scene.collection.children.link(new_collection)
    _select(context, faces)
    # World matrices (parenting, placement) are valid for the caller straight away.
    context.view_layer.update()
    return faces


def _face_object(base, suffix, item, pack, created):
    mesh = bpy.data.meshes.new(base + suffix)
    created.append(mesh)
    face, data = item.face, item.data
    # Built in the tool's frame and millimetres, then turned and scaled in one C call
    # together with the shape keys (the per-key sums are the only Python arithmetic).
    mesh.from_pydata(face.mesh.positions, [], data.polygons)
    obj = bpy.data.objects.new(base + suffix, mesh)
    created.append(obj)
    if face.shape_key_names:
        obj.shape_key_add(name="Basis", from_mix=False)
        mesh.shape_keys.name = base + suffix
        deltas = face.shape_key_deltas
        for k, name in enumerate(face.shape_key_names):
            key = obj.shape_key_add(name=name, from_mix=False)
            key.data.foreach_set("co", objread.shape_key_coords(item.basis, deltas, k))
    mesh.transform(Matrix(item.matrix), shape_keys=True)
    _finish_mesh(mesh, data)
    if face.base_color or face.normal_map:
        color = _image(f"{base}_basecolor{suffix}", face.base_color, pack, False, created)
        normal = _image(f"{base}_normal{suffix}", face.normal_map, pack, True, created)
        mesh.materials.append(_material(base + suffix, color, normal, created))
    return obj


def _finish_mesh(mesh, data):
    """UVs, smooth shading and the tool's normals on a mesh already in Blender's frame."""
    if data.loop_uvs:
        layer = mesh.uv_layers.new(name="UVMap")
        layer.data.foreach_set("uv", data.loop_uvs)
    mesh.polygons.foreach_set("use_smooth", [True] * len(mesh.polygons))
    if data.loop_normals:
        # The tool's normals, not Blender's recomputed ones: they are what it exported, and
        # what its normal map was baked against.
        if hasattr(mesh, "use_auto_smooth"):  # Blender < 4.1 ignores custom normals without it
            mesh.use_auto_smooth = True
        mesh.normals_split_custom_set(data.loop_normals)
    mesh.update()


def _image(name, path, pack, non_color, created):
    if not path:
        return None
    image = bpy.data.images.load(path, check_existing=False)
    created.append(image)
    image.name = name
    if non_color:
        image.colorspace_settings.name = "Non-Color"
    if pack:
        image.pack()
    else:
        image.filepath = _relative(path)
    return image


def _relative(path):
    """``//``-relative to the saved .blend file when possible, else absolute."""
    if not bpy.data.filepath:
        return path
    try:
        return bpy.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path


def _material(name, color, normal, created):
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
    x, y = bsdf.location.x, bsdf.location.y
    uv = nodes.new("ShaderNodeUVMap")
    uv.uv_map = "UVMap"
    uv.location = (x - 820, y - 150)
    if color is not None:
        tex = nodes.new("ShaderNodeTexImage")
        tex.name = tex.label = "Base Color"
        tex.image = color
        tex.location = (x - 560, y)
        links.new(uv.outputs["UV"], tex.inputs["Vector"])
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    if normal is not None:
        tex = nodes.new("ShaderNodeTexImage")
        tex.name = tex.label = "Normal Map Image"
        tex.image = normal
        tex.location = (x - 560, y - 300)
        node = nodes.new("ShaderNodeNormalMap")
        node.space = "TANGENT"
        node.uv_map = "UVMap"
        node.location = (x - 260, y - 300)
        links.new(uv.outputs["UV"], tex.inputs["Vector"])
        links.new(tex.outputs["Color"], node.inputs["Color"])
        links.new(node.outputs["Normal"], bsdf.inputs["Normal"])
    return material


def _landmark_objects(base, suffix, item, parent, factor, created):
    objects = []
    if item.landmarks:
        mesh = bpy.data.meshes.new(f"{base}_landmarks{suffix}")
        created.append(mesh)
        mesh.vertices.add(len(item.landmarks))
        mesh.vertices.foreach_set("co", objread.flat_coords(item.landmarks))
        mesh.update()
        cloud = bpy.data.objects.new(f"{base}_landmarks{suffix}", mesh)
        created.append(cloud)
        cloud.parent = parent
        cloud.hide_render = True
        objects.append(cloud)
    for point, position in zip(results.NOW_POINTS, item.now_points):
        empty = bpy.data.objects.new(f"{base}_{point}{suffix}", None)
        created.append(empty)
        empty.empty_display_type = "SPHERE"
        empty.empty_display_size = EMPTY_SIZE_MM * factor
        empty.location = position
        empty.parent = parent
        empty.hide_render = True
        objects.append(empty)
    return objects


def _place(context, faces, widths, location):
    """Faces side by side along +X from ``location`` (default the 3D cursor), shifted
    further along +X while the row overlaps an earlier facenormals3d import."""
    start = tuple(location) if location is not None else tuple(context.scene.cursor.location)
    gap = 0.25 * max(widths)
    xs, x = [], start[0]
    for k, width in enumerate(widths):
        if k:
            x += (widths[k - 1] + width) / 2 + gap
        xs.append(x)
    boxes = [_box(obj, (xk, start[1], start[2])) for obj, xk in zip(faces, xs)]
    occupied = [_box(obj) for obj in context.scene.objects if FACE_PROPERTY in obj]
    step = (xs[-1] - xs[0]) + (widths[0] + widths[-1]) / 2 + gap
    shift = 0.0
    for _ in range(1000):
        if not any(_overlap(_moved(b, shift), o) for b in boxes for o in occupied):
            break
        shift += step
    for obj, xk in zip(faces, xs):
        obj.location = (xk + shift, start[1], start[2])


def _box(obj, location=None):
    """World-space axis-aligned bounding box (lo, hi) of ``obj`` (at ``location``)."""
    if location is None:
        corners = [obj.matrix_world @ Vector(c) for c in obj.bound_box]
    else:
        corners = [(c[0] + location[0], c[1] + location[1], c[2] + location[2])
                   for c in obj.bound_box]
    lo = tuple(min(c[i] for c in corners) for i in range(3))
    hi = tuple(max(c[i] for c in corners) for i in range(3))
    return lo, hi


def _moved(box, dx):
    (lx, ly, lz), (hx, hy, hz) = box
    return (lx + dx, ly, lz), (hx + dx, hy, hz)


def _overlap(a, b):
    return all(a[0][i] < b[1][i] and b[0][i] < a[1][i] for i in range(3))


def _select(context, faces):
    """Select the new faces (only they), the first one active; faces outside the view
    layer (a collection the caller has not linked) are left alone."""
    layer_objects = context.view_layer.objects
    for obj in layer_objects:
        if obj.select_get():
            obj.select_set(False)
    selected = []
    for obj in faces:
        try:
            obj.select_set(True)
        except RuntimeError:  # not in this view layer
            continue
        selected.append(obj)
    if selected:
        layer_objects.active = selected[0]


def frame_objects(context, objects):
    """Frame ``objects`` (already selected) in every 3D view of the current window, so a
    new face is never left hidden inside a bigger object. Does nothing without a window
    (background mode, scripts run with ``--background``)."""
    window = getattr(context, "window", None)
    if bpy.app.background or window is None or not objects:
        return
    for area in window.screen.areas:
        if area.type != "VIEW_3D":
            continue
        region = next((r for r in area.regions if r.type == "WINDOW"), None)
        if region is None:
            continue
        try:
            with context.temp_override(window=window, area=area, region=region):
                bpy.ops.view3d.view_selected(use_all_regions=False)
        except RuntimeError as err:  # a view that cannot frame now; the import stands
            print(f"facenormals3d: could not frame the new objects: {err}")


def _remove_datablocks(created):
    """Remove what a failed import made (objects first, then their data)."""
    alive = []
    for block in created:
        try:
            block.name  # noqa: B018 - raises ReferenceError once freed
            alive.append(block)
        except ReferenceError:
            pass
    if alive:
        bpy.data.batch_remove(alive)
