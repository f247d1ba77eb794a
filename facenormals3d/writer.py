"""The output layouts: what the ``reconstruct``, ``faces`` and ``normals`` commands write
per face and per photo, and their preview pictures. (Mesh file formats are
:mod:`facenormals3d.mesh.export`'s.)

``reconstruct``: per face, ``OUT/<photo-stem>/face_<k>/`` holds (see ``facenormals3d reconstruct --help``):
``mesh.obj`` + ``mesh.mtl`` + ``texture.png``, ``mesh.ply``, ``normals.png`` (16-bit) and
``normals.npy``, ``depth.npy``, ``mask.png``, ``landmarks7.npy`` (the 7 NoW points),
``landmarks.npy`` (all 478, mesh coordinates), ``landmarks_photo.npy``, ``transform.json``,
``preview.png`` and ``report.json``; for the fitted face model also ``normal_map.png``
(tangent space, 16-bit), ``blendshapes.npz``, ``fit.json`` and, with the light estimate,
``albedo.png`` (the MTL's ``map_Kd``), ``specular.png`` and ``lighting.json``. The folder is assembled under a temporary name and
renamed when complete.

``faces`` (:func:`write_aligned_face`) and ``normals`` (:func:`write_face_normals`,
:func:`write_photo_normals`): see those commands' ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facenormals3d import __version__

#: Side of each panel of preview.png, pixels.
PREVIEW_PANEL = 320
#: Yaw of the two three-quarter views, degrees.
THREE_QUARTER_YAW = 35.0


def write_face(rec, folder: Path, previews: bool = True, renderer=None) -> dict[str, Any]:
    """Write every file of one reconstructed face into ``folder`` (which must exist, empty).

    ``previews=False`` skips ``preview.png``. ``renderer`` (a
    :class:`~facenormals3d.overlap.BackgroundProcess`, see :func:`preview_renderer`), once
    ready, renders and writes the preview in its process while the other files are written
    here; None (or not ready yet) renders it here: the same bytes either way. Returns the
    report dict also written as ``report.json``, whose timings include writing (``write``)
    and the preview (``preview``: rendering and writing it, wherever that ran). Deferred
    pipeline work (:meth:`~facenormals3d.pipeline.Reconstruction.complete`) runs here, after
    the preview is handed to its renderer (the textures before it: the preview shows one).
    The same as :func:`start_write_face` and then its ``finish()``.
    """
    return start_write_face(rec, folder, previews, renderer)()


def start_write_face(rec, folder: Path, previews: bool = True, renderer=None) -> Callable[[], dict[str, Any]]:
    """:func:`write_face` without waiting for a ``renderer``: every file but ``report.json``
    is written, the preview is on its way; returns ``finish()``, which waits for the preview
    (rendering it here if the renderer's process is gone), writes ``report.json`` and
    returns the report. Lets a writer thread go on with the next face meanwhile."""
    import time

    t0 = time.perf_counter()
    from facenormals3d.conventions import write_normal_png, write_png
    from facenormals3d.mesh import write_obj, write_ply
    from facenormals3d.outputs import write_json

    folder = Path(folder)
    t = time.perf_counter()
    rec.complete(texture_only=True)  # the textures the pipeline left for here (the preview shows one)
    preview, not_writing = None, time.perf_counter() - t
    if previews and renderer is not None and renderer.ready:
        # First, so that the renderer's process works on it while the files below are written.
        # (An in-process renderer renders it right here: that time is the preview's, not the
        # other files'.)
        t = time.perf_counter()
        preview = renderer.submit(write_preview, folder / "preview.png", PreviewInputs.of(rec))
        not_writing += time.perf_counter() - t
    t = time.perf_counter()
    rec.complete()  # the rest (the albedo: timed as its own stage)
    not_writing += time.perf_counter() - t
    normal_map = None
    if rec.fit is not None and rec.fit.normal_map is not None:
        normal_map = "normal_map.png"
        write_normal_png(folder / normal_map, rec.fit.normal_map)
    albedo = write_appearance(rec, folder)
    write_obj(rec.mesh, folder / "mesh.obj", texture_name="texture.png", normal_map_name=normal_map,
              diffuse_name=albedo)
    write_ply(rec.mesh, folder / "mesh.ply")
    if rec.fit is not None:
        write_json(folder / "fit.json", rec.fit.report())
        write_blendshapes(folder / "blendshapes.npz", rec.fit.model.expression_names, rec.fit.blendshape_deltas())
    write_normal_png(folder / "normals.png", rec.normals, rec.mask)
    np.save(folder / "normals.npy", rec.normals)
    np.save(folder / "depth.npy", rec.depth)
    write_png(folder / "mask.png", rec.mask.astype(np.uint8) * 255)
    if rec.confidence is not None:  # 255 = the normals fully trusted, 0 = not at all
        write_png(folder / "confidence.png", (np.clip(rec.confidence, 0, 1) * 255 + 0.5).astype(np.uint8))
    np.save(folder / "landmarks7.npy", rec.landmarks7)
    np.save(folder / "landmarks.npy", rec.landmarks_mesh)
    np.save(folder / "landmarks_photo.npy", rec.face.landmarks_photo)
    write_json(folder / "transform.json", rec.face.transform.to_dict())
    rec.timings["write"] = time.perf_counter() - t0 - not_writing

    def finish() -> dict[str, Any]:
        if previews:
            seconds = None
            if preview is not None:
                try:
                    seconds = preview.result()
                except (EOFError, BrokenPipeError, ConnectionResetError):
                    seconds = None  # the renderer's process is gone: render here
            rec.timings["preview"] = seconds if seconds is not None else \
                write_preview(folder / "preview.png", PreviewInputs.of(rec))
        report = face_report(rec)
        write_json(folder / "report.json", report)
        return report

    return finish


def write_appearance(rec, folder: Path) -> str | None:
    """``albedo.png`` (the texture's atlas, de-lit, sRGB), ``specular.png`` (low-resolution
    specular strength, 8-bit = ks / ``specular_map_scale``) and ``lighting.json`` of a fitted face; returns the
    albedo's file name, or None when the reconstruction has none."""
    appearance = rec.fit.appearance if rec.fit is not None else None
    if appearance is None:
        return None
    from facenormals3d.conventions import write_png
    from facenormals3d.outputs import write_json
    from facenormals3d.render.lighting import LightingSettings

    top = LightingSettings.max_specular
    write_png(folder / "albedo.png", appearance.albedo)
    write_png(folder / "specular.png", np.clip(appearance.specular / top * 255 + 0.5, 0, 255).astype(np.uint8))
    write_json(folder / "lighting.json", {**appearance.lighting.to_dict(), "specular_map": "specular.png",
                                          "specular_map_scale": top, "fit": appearance.info})
    return "albedo.png"


def write_blendshapes(path: Path, names, deltas: np.ndarray) -> Path:
    """``blendshapes.npz``: ``names`` (E,) unicode and ``deltas`` (E x V x 3 float32, mesh frame, mm).

    Shape key k of the written mesh is ``mesh vertices + deltas[k]`` (weight 1); the mesh
    already carries the fitted expression (``fit.json``). Uncompressed: fast to write, and
    readable with nothing but a zip reader and an .npy header parser.
    """
    from facenormals3d.outputs import atomic_write

    arrays = {"names": np.array(list(names)), "deltas": np.ascontiguousarray(deltas, np.float32)}
    return atomic_write(path, lambda p: np.savez(p, **arrays))


def face_report(rec) -> dict[str, Any]:
    """What ``report.json`` says about one face: timings, parameters, model, scale, and
    the front end's ``quality`` and ``rotation`` (``skipped_faces`` is added per photo)."""
    from facenormals3d.face.report import face_entry

    return {
        "tool": f"facenormals3d {__version__}",
        "source": rec.source,
        "face_index": rec.index,
        "detection_score": rec.face.score,
        "detection_box": rec.face.box,
        "timings_seconds": {**rec.timings, "total": sum(rec.timings.values())},
        "mesh": {"vertices": int(len(rec.mesh.vertices)), "faces": int(len(rec.mesh.faces)),
                 "units": "mm", "axes": "right-handed, x right, y up, z towards the camera",
                 "bounds_mm": [rec.mesh.vertices.min(0), rec.mesh.vertices.max(0)]},
        "crop": {"size": rec.face.transform.size, "mm_per_pixel": rec.mm_per_pixel},
        "topology": ("face model (the same vertex count and order for every face; see fit.json)"
                     if rec.fit is not None else "depth-map grid of the visible face"),
        "landmarks7_order": "right eye outer, right eye inner, left eye inner, left eye outer, "
                            "nose bottom, right mouth corner, left mouth corner (iBUG 36,39,42,45,33,48,54)",
        **face_entry(rec.face),
        **rec.info,
    }


@dataclass
class PreviewInputs:
    """What :func:`preview_image` draws (small and picklable: it goes to a renderer process)."""

    crop: np.ndarray
    """``S x S x 3`` uint8 face crop."""
    normals: np.ndarray
    """``S x S x 3`` float32 predicted normals (NaN outside ``mask``)."""
    mask: np.ndarray
    """``S x S`` bool."""
    vertices: np.ndarray
    """``V x 3`` mesh vertices (mm, the mesh frame)."""
    faces: np.ndarray
    """``F x 3`` triangles."""
    texture: np.ndarray | None
    """The mesh's ``H x W x 3`` uint8 texture, or None."""
    uvs: np.ndarray | None
    """Its UVs: ``V x 2`` or per corner ``F x 3 x 2``."""

    @classmethod
    def of(cls, rec) -> "PreviewInputs":
        """The preview's inputs of a :class:`~facenormals3d.pipeline.Reconstruction`."""
        mesh = rec.mesh
        return cls(crop=rec.face.crop, normals=rec.normals, mask=rec.mask, vertices=mesh.vertices,
                   faces=mesh.faces, texture=mesh.texture,
                   uvs=mesh.uvs if mesh.corner_uvs is None else mesh.corner_uvs)


def preview_image(inputs: PreviewInputs) -> np.ndarray:
    """One picture to judge a face by: crop | normals | grey front | two 3/4 views | textured.

    PyTorch3D rasterises the three views (binned on CPU), each from the faces that face its
    camera (:func:`~facenormals3d.render.preview.rasterize_front_faces`: about half the
    faces); the grey and the textured front panels are shaded from the same fragments.
    """
    from facenormals3d.conventions import normals_to_preview
    from facenormals3d.raster import frame_mesh
    from facenormals3d.render.preview import contact_sheet, rasterize_front_faces, shade
    from facenormals3d.surface import vertex_normals

    size = PREVIEW_PANEL
    v, f = inputs.vertices, inputs.faces
    views = [frame_mesh(v, size=size), frame_mesh(v, yaw_deg=-THREE_QUARTER_YAW, size=size),
             frame_mesh(v, yaw_deg=THREE_QUARTER_YAW, size=size)]
    fragments = rasterize_front_faces(v, f, views)
    vn = vertex_normals(v, f)
    grey = [shade(v, f, frag, view, vertex_normals_=vn) for frag, view in zip(fragments, views)]
    textured = grey[0] if inputs.texture is None else shade(v, f, fragments[0], views[0],
                                                             texture=inputs.texture, uvs=inputs.uvs)
    panels = [_resize(inputs.crop, size), _resize(normals_to_preview(inputs.normals, inputs.mask), size),
              *grey, textured]
    labels = ["input crop", "normals", "mesh (front)", f"yaw -{THREE_QUARTER_YAW:g}",
              f"yaw +{THREE_QUARTER_YAW:g}", "textured"]
    return contact_sheet(panels, labels, columns=6)


def write_preview(path: Path, inputs: PreviewInputs) -> float:
    """Render :func:`preview_image` and write it to ``path``; returns the seconds taken."""
    import time

    from facenormals3d.conventions import write_png

    t0 = time.perf_counter()
    write_png(path, preview_image(inputs))
    return time.perf_counter() - t0


def preview_renderer(threads: int = 1, processes: int = 1):
    """A :class:`~facenormals3d.overlap.BackgroundProcess` for ``write_face(renderer=...)``:
    it starts importing the preview's libraries at once, and runs torch and OpenBLAS on
    ``threads`` threads (the same pictures whatever the number: every pixel is computed
    on its own). ``processes=0``: render in the caller."""
    from facenormals3d.overlap import BackgroundProcess

    return BackgroundProcess(start_renderer, threads, processes=processes)


def start_renderer(threads: int) -> None:
    """In a renderer process: import what a preview needs, fix the thread counts."""
    import numpy  # noqa: F401 - its OpenBLAS must be loaded to be limited
    import torch
    from pytorch3d import _C  # noqa: F401 - the rasteriser's kernel

    from facenormals3d.device import keep_freed_memory, limit_blas_threads

    keep_freed_memory()
    torch.set_num_threads(threads)
    limit_blas_threads(threads)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


def write_crop_files(folder: Path, face, mask: np.ndarray) -> None:
    """``crop.png``, ``mask.png`` (255 = ``mask``) and ``transform.json`` of an aligned face."""
    from facenormals3d.conventions import write_png
    from facenormals3d.outputs import write_json

    write_png(folder / "crop.png", face.crop)
    write_png(folder / "mask.png", np.asarray(mask).astype(np.uint8) * 255)
    write_json(folder / "transform.json", face.transform.to_dict())


def write_aligned_face(folder: Path, face, source: str, entry: dict[str, Any]) -> None:
    """The ``faces`` command's ``face_<k>/``: crop, mask, landmarks (npy + json with the face's
    report ``entry``), transform, and the landmark face's normals and depth."""
    from facenormals3d.conventions import write_normal_png
    from facenormals3d.face.coarse import coarse_face
    from facenormals3d.outputs import write_json

    write_crop_files(folder, face, face.mask)
    np.save(folder / "landmarks_photo.npy", face.landmarks_photo)
    np.save(folder / "landmarks_crop.npy", face.landmarks_crop)
    write_json(folder / "landmarks.json", {
        "source": source, "score": face.score, "box": face.box, **entry,
        "landmarks_photo": face.landmarks_photo, "landmarks_crop": face.landmarks_crop})
    coarse = coarse_face(face.landmarks_crop, face.transform.size)
    write_normal_png(folder / "coarse_normals.png", coarse.normals)
    np.save(folder / "coarse_depth.npy", coarse.depth)


def write_face_normals(folder: Path, face, normals: np.ndarray, mask: np.ndarray) -> None:
    """The ``normals`` command's ``face_<k>/``: normals (png + npy), mask, crop, transform."""
    from facenormals3d.conventions import write_normal_png

    write_normal_png(folder / "normals.png", normals, mask)
    np.save(folder / "normals.npy", normals)
    write_crop_files(folder, face, mask)


def write_photo_normals(folder: Path, photo: np.ndarray, normals: np.ndarray, mask: np.ndarray,
                        panels: list[np.ndarray], labels: list[str]) -> None:
    """The ``normals`` command's photo files: ``photo_normals.png/.npy``, ``photo_mask.png``
    and ``preview.png`` (:func:`normals_preview` with the crop ``panels``)."""
    from facenormals3d.conventions import normals_to_preview, write_normal_png, write_png

    write_normal_png(folder / "photo_normals.png", normals, mask)
    np.save(folder / "photo_normals.npy", normals)
    write_png(folder / "photo_mask.png", mask.astype(np.uint8) * 255)
    overlay = photo.copy()
    overlay[mask] = normals_to_preview(normals, mask)[mask]
    write_png(folder / "preview.png", normals_preview(photo, overlay, panels, labels))


def normals_preview(photo: np.ndarray, overlay: np.ndarray, panels: list[np.ndarray], labels: list[str]
                    ) -> np.ndarray:
    """Photo and normals-over-photo on top (scaled to 512 px tall), crop panels below."""
    from PIL import Image

    from facenormals3d.render.preview import contact_sheet

    def fit(img, height):
        h, w = img.shape[:2]
        return np.asarray(Image.fromarray(img).resize((max(1, round(w * height / h)), height)))

    top = contact_sheet([fit(photo, 512), fit(overlay, 512)], ["photo", "normals on the photo"])
    bottom = contact_sheet(panels, labels, columns=min(len(panels), 6))
    width = max(top.shape[1], bottom.shape[1])
    pad = lambda im: np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=255)
    return np.concatenate([pad(top), pad(bottom)], axis=0)
