"""Build the shipped face-model asset from an ICT FaceKit folder (``facenormals3d build-face-model``).

Two steps, both deterministic for a given ICT folder and seed:

1. Geometry (:func:`model_from_ict`): keep the head region (face, scalp, ears, neck stub,
   mouth socket, eye sockets) and the eyeballs; the first ``n_identity`` identity modes
   (fewer than the synthetic engine draws from, so a fit on synthetic faces is not
   trivially exact); all 53 expression blendshapes; atlas UVs (see
   :mod:`facenormals3d.fit.model`); mirror vertices; ICT's iBUG-68 vertices.
2. Landmark correspondence (:func:`mediapipe_correspondence`): render faces with the
   project's synthetic engine (random identities, mild poses and expressions), run the
   project's own front end (mediapipe) on each render and carry every landmark back onto
   the model surface. Inner landmarks (eyes, brows, nose, lips) are back-projected along
   their camera ray; the face-oval landmarks, whose 2D position is a silhouette that moves
   with pose, take the surface point closest to mediapipe's 3D landmark after a
   similarity alignment. Each landmark's points (in the mean face's frame) are reduced by
   a per-coordinate median over the renders and snapped to the surface (triangle +
   barycentric weights).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from facenormals3d.fit import model as fm

log = logging.getLogger("facenormals3d")

#: Identity modes kept in the asset (the synthetic engine uses all of ICT's 100).
N_IDENTITY = 50
#: Eyeball squares in the atlas's head tile: (u0, v0) of each square in tile units, side.
EYEBALL_SQUARES = {"right": (0.005, 0.54), "left": (0.845, 0.54)}
EYEBALL_SIDE = 0.15


def model_from_ict(ict, n_identity: int = N_IDENTITY) -> tuple[fm.FaceModel, np.ndarray]:
    """The asset's geometry from a loaded ICT model (:func:`facenormals3d.data.ict.load_ict`).

    Returns the model (correspondence still empty) and ``keep``: for each asset vertex its
    index in ``ict``'s vertex arrays.
    """
    from facenormals3d.data import ict as I

    part_map = {I.PART_FACE: fm.PART_FACE, I.PART_FACE_OUTER: fm.PART_FACE_OUTER, I.PART_HEAD: fm.PART_HEAD,
                I.PART_MOUTH: fm.PART_MOUTH, I.PART_EYE_SOCKET: fm.PART_EYE_SOCKET,
                I.PART_EYEBALL: fm.PART_EYEBALL}
    sel = np.isin(ict.triangle_parts, list(part_map))
    tris = ict.triangles[sel]
    keep = np.unique(tris)
    remap = np.full(len(ict.neutral), -1, np.int64)
    remap[keep] = np.arange(len(keep))
    if np.any(remap[ict.landmarks] < 0):
        raise ValueError("an iBUG-68 landmark vertex is outside the kept head region")
    parts = np.array([part_map[int(p)] for p in ict.triangle_parts[sel]], np.int8)
    mean = ict.neutral[keep].astype(np.float32)
    triangles = remap[tris].astype(np.int32)
    model = fm.FaceModel(
        mean=mean, identity=ict.identity_basis[:n_identity, keep], expression=ict.expression_basis[:, keep],
        expression_names=tuple(ict.expression_names), triangles=triangles,
        triangle_uvs=atlas_uvs(ict.triangle_uvs[sel], parts, mean[triangles].mean(axis=1)[:, 0]),
        triangle_parts=parts, ibug68=remap[ict.landmarks].astype(np.int32),
        mediapipe_triangles=np.zeros(478, np.int32), mediapipe_barycentric=np.full((478, 3), 1 / 3, np.float32),
        mirror=mirror_vertices(mean),
        info={"source": "ICT FaceKit (ICT-VGL, MIT licence)", "ict_folder": str(ict.folder),
              "n_identity": int(n_identity), "n_identity_available": int(ict.n_identity)})
    return model, keep


def atlas_uvs(uvs: np.ndarray, parts: np.ndarray, centroid_x: np.ndarray) -> np.ndarray:
    """ICT corner UVs (``T x 3 x 2``, UDIM tiles) -> the asset's one-atlas layout.

    ``centroid_x``: ``T`` model-frame x of each triangle (tells the two eyeballs apart).
    """
    out = np.empty_like(uvs, dtype=np.float32)
    tile = np.floor(uvs[..., 0].mean(axis=1)).astype(int)
    eye = parts == fm.PART_EYEBALL
    for t in (0, 1):
        sel = (tile == t) & ~eye
        out[sel, :, 0] = 0.5 * (t + uvs[sel, :, 0] - t)
        out[sel, :, 1] = uvs[sel, :, 1]
    for side, (u0, v0) in EYEBALL_SQUARES.items():
        # Subject's left eye sits at +x in the model frame.
        sel = eye & ((centroid_x > 0) if side == "left" else (centroid_x <= 0))
        out[sel, :, 0] = 0.5 + 0.5 * (u0 + EYEBALL_SIDE * uvs[sel, :, 0])
        out[sel, :, 1] = v0 + EYEBALL_SIDE * uvs[sel, :, 1]
    if np.any(tile[~eye] > 1) or np.any(tile[~eye] < 0):
        raise ValueError("kept triangles outside ICT's face and head UV tiles")
    return out


def mirror_vertices(vertices: np.ndarray) -> np.ndarray:
    """For each vertex (``V x 3``, model frame) the nearest vertex to its mirror image (x -> -x)."""
    from scipy.spatial import cKDTree

    mirrored = vertices * np.array([-1.0, 1.0, 1.0], dtype=vertices.dtype)
    return cKDTree(vertices).query(mirrored)[1].astype(np.int32)


def mediapipe_correspondence(ict, model: fm.FaceModel, keep: np.ndarray, n_renders: int = 48, seed: int = 5,
                             progress: Callable[[Any], Any] = lambda it: it) -> dict[str, Any]:
    """Fill ``model``'s mediapipe correspondence from renders; returns statistics for ``info``."""
    import open3d as o3d

    from facenormals3d.data import geometry
    from facenormals3d.data.synth import SynthEngine, SynthSettings
    from facenormals3d.errors import NoFaceError
    from facenormals3d.face.detect import DetectSettings, FaceFinder
    from facenormals3d.face.topology import FACE_OVAL
    from facenormals3d.raster import barycentric, cast, interpolate, raycasting_scene

    settings = SynthSettings(geometry=geometry.GeometrySettings(yaw_deg=25.0, pitch_deg=12.0, roll_deg=10.0,
                                                                max_expressions=2, neutral_rate=0.5,
                                                                distance_mm=(600.0, 2500.0)),
                             occluder_rate=0.0, camera_effects=False)
    engine = SynthEngine(ict, settings)
    mean = model.mean.astype(np.float64)
    oval = np.zeros(478, bool)
    oval[list(FACE_OVAL)] = True
    points = []
    with FaceFinder(DetectSettings(max_faces=1)) as finder:
        for i in progress(range(n_renders)):
            sample = engine.render_index(seed, i)
            try:
                lm = finder.find(sample.image, f"render {i}")[0].landmarks
            except NoFaceError:
                continue
            c = sample.params["camera"]["crop"]
            vc = np.asarray(sample.vertices_camera, np.float64)[keep]
            scene = raycasting_scene(vc, model.triangles)
            d = np.stack([(lm[:, 0] - c["cx"]) / c["focal"], -(lm[:, 1] - c["cy"]) / c["focal"],
                          -np.ones(len(lm))], axis=1)
            rays = np.concatenate([np.zeros_like(d), d], axis=1).astype(np.float32)
            t_hit, tri, bary = cast(scene, rays)
            ok = np.isfinite(t_hit) & ~oval
            cam_pts = d * t_hit[:, None]
            # mediapipe 3D (x right, y up, z towards the camera, pixels) -> camera frame.
            mp = lm * np.array([1.0, -1.0, 1.0])
            from facenormals3d.similarity import umeyama

            sim = umeyama(mp[ok], cam_pts[ok])
            closest = scene.compute_closest_points(o3d.core.Tensor(sim.apply(mp).astype(np.float32)))
            tri = np.where(ok, tri, closest["primitive_ids"].numpy().astype(np.int64))
            bary = np.where(ok[:, None], bary, barycentric(closest["primitive_uvs"].numpy()))
            points.append(interpolate(mean, model.triangles[tri], bary))
    if len(points) < max(4, n_renders // 4):
        raise RuntimeError(f"the front end found faces in only {len(points)} of {n_renders} renders")
    stack = np.stack(points)  # R x 478 x 3 in the mean face's frame
    target = np.median(stack, axis=0)
    scene = raycasting_scene(mean, model.triangles)
    closest = scene.compute_closest_points(o3d.core.Tensor(target.astype(np.float32)))
    model.mediapipe_triangles = closest["primitive_ids"].numpy().astype(np.int32)
    model.mediapipe_barycentric = barycentric(closest["primitive_uvs"].numpy().astype(np.float64)).astype(np.float32)
    spread = np.median(np.linalg.norm(stack - target, axis=2), axis=0)
    return {"renders": int(n_renders), "renders_with_face": len(points), "seed": int(seed),
            "spread_mm_median": float(np.median(spread)), "spread_mm_p90": float(np.percentile(spread, 90))}


def build_face_model(ict_dir: str, n_identity: int = N_IDENTITY, n_renders: int = 48, seed: int = 5,
                     progress: Callable[[Any], Any] = lambda it: it) -> fm.FaceModel:
    """The complete asset from an ICT FaceKit folder (see the module docstring)."""
    from facenormals3d.data.ict import load_ict

    ict = load_ict(ict_dir)
    model, keep = model_from_ict(ict, n_identity)
    model.info["correspondence"] = mediapipe_correspondence(ict, model, keep, n_renders, seed, progress)
    return model
