"""Photo -> one :class:`Reconstruction` per face: the one place that wires the stages.

Per face: detect and align (``face``), predict normals (``model``; or the landmark
face's normals as a baseline), fuse them with the landmark face's depth (``integration``;
the prior fixes global shape and metric scale, the normals add detail), build the mesh
with the crop as texture (``mesh``), optionally refine it against the photo's shading
(``render.refine``). Writing files is :mod:`facenormals3d.writer`'s job.

Frames: everything per face lives in the 256 x 256 crop. Mesh coordinates are
millimetres, x right, y up, z towards the camera, origin at the crop centre; crop pixel
(u, v) sits at x = (u - 128) * s, y = -(v - 128) * s with ``s`` = ``mm_per_pixel`` (:class:`facenormals3d.frame.CropFrame`, ``Reconstruction.frame``).
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facenormals3d.face.align import AlignedFace
from facenormals3d.face.coarse import CoarseFace
from facenormals3d.face.detect import DetectSettings
from facenormals3d.frame import CropFrame

#: Outline relaxation passes of the face mesh (see :class:`facenormals3d.mesh.MeshSettings`).
OUTLINE_SMOOTHING = 4

#: Crop pixels (of the 256 px crop) by which the network's normals reach past the fitted
#: face's face region, on the fitted head: its border is off the true one by a pixel or two.
#: Test renders (seeds 777 / 779, 2026-12-06): coverage of the correctly found faces' face
#: region 0.969 -> 0.979 / 0.955 -> 0.968, mean error 12.63 -> 12.65 / 12.16 -> 12.15 deg.
#: 3 -> 6 px (stage 7, dev renders, seeds 783 / 785, seventh session): coverage 0.974 -> 0.979 /
#: 0.974 -> 0.980, mean error 10.25 -> 10.24 / 10.93 -> 10.92 deg, meshes unchanged (10 px:
#: 785 0.985, 10.91 deg, but more of the band lies past the true face, on the neck and ears).
#: Kept off the mouth's inside (it bridged open mouths): 785 0.979, 10.91 deg.
REGION_GROW_PX = 6

#: Weights' training priors (``train_config.prior``, :data:`facenormals3d.training.prior.PRIORS`)
#: that are the fitted face's normals. Either way the network here reads this pipeline's
#: landmark fit; ``fit`` was trained on a fit with weaker priors (identity 6, expression 10
#: against 64 and 20): on the test renders that costs its normals -0.01 to +0.05 deg.
FIT_PRIORS = ("fit", "fit-v2")

#: Weights used when none are given: the checkpoint shipped in ``assets/``.
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "normalnet.safetensors"
#: SHA-256 of the shipped weights, pinned in code: a swapped weights+sidecar pair is refused.
DEFAULT_WEIGHTS_SHA256 = "17364eb150af22c8f97076df0d10ddc2e4d81d669aa9ac1f9c141b06ad2ece88"


@dataclass(frozen=True)
class ReconstructSettings:
    """Choices for :func:`reconstruct`; defaults are what ``facenormals3d reconstruct`` uses."""

    mesh: Literal["fit", "depth"] = "fit"
    """``fit``: the face model fitted to the landmarks and the normals, with detail from the
    normals (full head, one topology for every face, expression blendshapes). ``depth``: the
    visible surface as a depth-map mesh (the earlier output)."""
    face_model: str | None = None
    """Face-model asset (.npz from ``build-face-model``); None = the shipped one."""
    texture_size: int | None = None
    """Fitted mesh: texture and normal-map height in pixels (the atlas is twice as wide).
    None (default): per face, 512 or 1024 by the face's resolution in the photo
    (:func:`facenormals3d.mesh.atlas.auto_texture_size`: about two texels per photo pixel)."""
    textures: bool = True
    """Fitted mesh: bake texture.png and normal_map.png (False: geometry only, e.g. for benchmarks)."""
    dense_fit: bool = True
    """Fitted mesh: refine the landmark fit against the depth integrated from the normals."""
    detail: bool = True
    """Fitted mesh: displace vertices by the normals' detail and bake a normal map."""
    normal_source: Literal["network", "landmarks"] = "network"
    """``network``: the cross-modal network. ``landmarks``: the coarse landmark face's
    normals (the baseline; no network needed)."""
    weights: str | None = None
    """Network weights (.safetensors with its .json sidecar); None = the shipped ones."""
    flip_average: bool = True
    """Network: also predict the mirrored crop, mirror those normals back and average the
    two (a second pass: 28 -> 60 ms a face on one thread; with the weights shipped on
    2026-11-29, validation faces 13.15 -> 12.69 deg, held-out test faces 13.79 -> 13.62 deg)."""
    integration: Literal["fusion", "poisson", "bilateral"] = "fusion"
    """How normals become depth. ``fusion`` uses the prior face's depth (the fitted face's,
    or with ``mesh="depth"`` and a landmark-prior network the landmark face's); ``poisson``
    and ``bilateral`` integrate the normals alone and then match the prior's mean depth."""
    prior_weight: float = 3e-3
    """Fusion: weight of each prior-depth equation relative to a gradient equation; the
    prior wins at wavelengths above ~2*pi/sqrt(w) pixels (115 px at the default)."""
    refine_iterations: int = 0
    """Shading-consistency refinement iterations (0 = off)."""
    albedo: bool = True
    """Fitted mesh: estimate the photo's light and write a de-lit albedo (``albedo.png``,
    ``lighting.json``; see :mod:`facenormals3d.render.appearance`)."""
    max_faces: int = DetectSettings.max_faces
    """At most this many faces per photo, largest first."""
    device: str = "auto"
    """Torch device for the network and refinement: auto, cpu or cuda."""
    threads: int = 1
    """CPU threads the network runs on, and numpy's and scipy's OpenBLAS inside a ``with
    Reconstructor(...)`` block (:func:`facenormals3d.device.blas_threads`). 1: the network
    is small (both passes of the flip average: 60 ms on one thread, 36 ms on two when the
    other core is free, 2-core machine), two OpenMP threads took
    up to 1 s a call when the other core was busy, and two spinning OpenBLAS threads made
    the fit's small solves ~4x slower; the result is then also the same bit for bit on every
    machine."""


@dataclass
class Reconstruction:
    """Everything the pipeline knows about one face."""

    source: str
    """Photo path or label."""
    index: int
    """Face number in the photo (0 = largest)."""
    face: AlignedFace
    """Crop, transform, landmarks and mask."""
    coarse: CoarseFace
    """Landmark face: prior depth, baseline normals, metric scale."""
    normals: np.ndarray
    """S x S x 3 float32 predicted unit normals (camera space), NaN outside ``mask``."""
    mask: np.ndarray
    """S x S bool: the normals' pixels. The depth-map mesh: the pixels that became mesh
    vertices. The fitted face: the face region the fitted face shows (forehead to chin,
    the eyes; ``FACE_REGION_PARTS`` of :mod:`facenormals3d.fit.model`), grown by
    :data:`REGION_GROW_PX` on the fitted head."""
    depth: np.ndarray
    """S x S float32 height in mm towards the camera, NaN outside ``mask`` (the fitted face:
    also outside the landmarks' face oval, the pixels whose normals shape the mesh)."""
    mesh: Any
    """:class:`facenormals3d.mesh.FaceMesh` in mm, textured with the crop."""
    landmarks_mesh: np.ndarray
    """478 x 3 float64 landmarks on the mesh surface, mesh coordinates (mm)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage."""
    info: dict[str, Any] = field(default_factory=dict)
    """Model version, integration and refinement diagnostics, scale assumption."""
    fit: Any = None
    """:class:`FittedFace` for the fitted-model mesh (None for ``mesh="depth"``)."""
    confidence: np.ndarray | None = None
    """S x S float32 in [0, 1]: the network's trust in each pixel's normals (its confidence
    output, :func:`~facenormals3d.model.infer.confidence_weight`; 0 outside the normals'
    mask); None when the network has no confidence output or the normals are the landmark
    face's."""
    deferred_texture: Any = None
    """Work left by ``finish_face(defer_appearance=True)``: baking the texture and normal map
    (``mesh.texture`` and colours, ``fit.normal_map``, ``info["texture_size"]``,
    ``timings["texture"]``); :meth:`complete` runs it. None: nothing left."""
    deferred_appearance: Any = None
    """Work left by ``finish_face(defer_appearance=True)`` after the texture: the albedo and
    light estimate (``fit.appearance``, ``timings["albedo"]``). None: nothing left."""

    def complete(self, texture_only: bool = False) -> "Reconstruction":
        """Run the deferred work: the texture, then (unless ``texture_only``) the
        appearance; returns self."""
        for name in ("deferred_texture",) if texture_only else ("deferred_texture", "deferred_appearance"):
            work = getattr(self, name)
            setattr(self, name, None)
            if work is not None:
                work()
        return self

    @property
    def landmarks7(self) -> np.ndarray:
        """The 7 NoW landmarks (7 x 3, mm) on the mesh surface."""
        if self.fit is not None:
            from facenormals3d.conventions import NOW_IBUG68

            return self.mesh.vertices[self.fit.model.ibug68[list(NOW_IBUG68)]].astype(np.float64)
        from facenormals3d.face.topology import NOW_MEDIAPIPE

        return self.landmarks_mesh[list(NOW_MEDIAPIPE)]

    @property
    def frame(self) -> CropFrame:
        """The crop frame (side, mm per crop pixel) the maps and the mesh are in."""
        return self.coarse.frame

    @property
    def mm_per_pixel(self) -> float:
        return self.frame.mm_per_pixel

    def to_trimesh(self):
        from facenormals3d.mesh import to_trimesh

        return to_trimesh(self.mesh)

    def to_open3d(self):
        from facenormals3d.mesh import to_open3d

        return to_open3d(self.mesh)


@dataclass
class FittedFace:
    """What the face-model fit adds to a :class:`Reconstruction`."""

    model: Any
    """The :class:`facenormals3d.fit.model.FaceModel` (shared, read-only)."""
    landmark_fit: Any
    """:class:`facenormals3d.fit.landmarks.LandmarkFit` (landmarks only)."""
    final_fit: Any
    """The fit the mesh uses (after the dense stage when it ran and was accepted)."""
    base_vertices: np.ndarray
    """``V x 3`` float32 fitted surface before the detail displacement (crop frame, mm)."""
    normal_map: np.ndarray | None
    """``H x W x 3`` float32 tangent-space normal map in the model's atlas, or None."""
    dense: dict
    """Dense-stage diagnostics."""
    appearance: Any = None
    """:class:`facenormals3d.render.appearance.Appearance` (light, albedo and specular
    maps), or None when ``ReconstructSettings.albedo`` is off."""
    person: np.ndarray | None = None
    """``S x S`` float32 in [0, 1] on the crop grid: the person (not background) mask the
    textures were baked with (:meth:`facenormals3d.face.detect.FaceFinder.person_mask`);
    None without textures."""

    def blendshape_deltas(self) -> np.ndarray:
        """``E x V x 3`` float32 expression offsets in the mesh frame (posed and scaled)."""
        pose = self.final_fit.pose
        e = self.model.expression
        # One (E*V x 3) @ (3 x 3) product in float32: measured here on the model's 53 x 15602
        # x 3 offsets, 3 ms against 16 ms through float64 (and 46 ms on a loaded writer
        # thread); the offsets differ by < 1e-6 mm.
        m = (pose.scale * np.asarray(pose.rotation, np.float64).T).astype(np.float32)
        return np.matmul(np.asarray(e, np.float32), m)

    def report(self) -> dict[str, Any]:
        """``fit.json``: coefficients, pose, camera, residuals."""
        from facenormals3d.fit.landmarks import rotation_angles_deg

        f = self.final_fit
        return {"model": {"vertices": self.model.n_vertices, "identity_modes": self.model.n_identity,
                          "expressions": self.model.n_expression, **self.model.info},
                "identity": f.alpha.tolist(),
                "expression": {n: float(w) for n, w in zip(self.model.expression_names, f.beta)},
                "pose": {**f.pose.to_dict(), **rotation_angles_deg(f.pose.rotation),
                         "maps": "model frame (mm) -> mesh frame: scale * rotation @ x + translation"},
                "camera": {"projection": "orthographic", "view_direction": "-z"},
                "landmarks": {"landmark_only": self.landmark_fit.summary(), "final": f.summary()},
                "dense": self.dense}


@dataclass
class _Baked:
    """What atlas baking made, and the views later stages (albedo) reuse."""

    texture: np.ndarray
    """``H x W x 3`` uint8 photo texture in the model's atlas."""
    normal_map: np.ndarray | None
    """``H x W x 3`` float32 tangent-space normal map, or None."""
    raster: Any
    """:class:`facenormals3d.mesh.atlas.AtlasRaster` of the atlas."""
    own: Any
    """:class:`facenormals3d.mesh.atlas.TexelView` of the texels themselves."""
    mirror: Any
    """The same for their mirror images."""
    hits: tuple
    """:func:`facenormals3d.raster.orthographic_hits` of the final mesh in the crop."""
    mirror_texel: np.ndarray | None = None
    """``N`` flat atlas index of each covered texel's mirror texel
    (:func:`facenormals3d.mesh.atlas.mirror_texels`; -1: none)."""
    person: np.ndarray | None = None
    """``S x S`` person mask of the crop the texel views were weighted by."""


@dataclass
class StartedFace:
    """A face between :meth:`Reconstructor.start_face` and :meth:`Reconstructor.finish_face`."""

    face: AlignedFace
    source: str
    index: int
    timings: dict[str, float]
    coarse: CoarseFace
    """The landmark face (depth, normals, coverage) on the crop grid."""
    landmark_fit: tuple | None = None
    """Fitted mesh or fitted-face prior: :func:`~facenormals3d.fit.landmarks.fit_crop`'s ``(fit, target, frame)``."""
    normals: Future | None = None
    """The network's ``(normals, confidence)`` on its way; None: the landmark face's normals."""
    landmark_base: np.ndarray | None = None
    """With ``landmark_fit``: ``V x 3`` vertices of the landmark fit (mm, crop frame)."""
    landmark_hits: tuple | None = None
    """With ``landmark_fit``: :func:`~facenormals3d.raster.orthographic_hits` of ``landmark_base``."""
    person: np.ndarray | None = None
    """Fitted mesh with textures: the crop's person mask (``FaceFinder.person_mask``)."""


class Reconstructor:
    """Holds the face finder and the network across photos (use as a context manager)."""

    def __init__(self, settings: ReconstructSettings = ReconstructSettings(), helper=None):
        """``helper``: a :class:`~facenormals3d.overlap.BackgroundProcess` to run the network
        in (:class:`~facenormals3d.model.runner.RemoteNetwork`: this process then needs no
        torch; not with refinement, which runs here); None: the network runs here."""
        from facenormals3d.face.detect import DetectSettings, FaceFinder

        self.settings = settings
        self._limits = None  # the thread limits of a ``with`` block (__enter__)
        self.network = None  # LocalNetwork or RemoteNetwork (facenormals3d.model.runner)
        self.model_info: dict[str, Any] = {"normal_source": settings.normal_source}
        self.device = "cpu"  # this process's torch device (network here, refinement)
        if helper is not None and settings.refine_iterations > 0:
            raise ValueError("the network runs in a helper process only without refinement")
        if (settings.normal_source == "network" and helper is None) or settings.refine_iterations > 0:
            from facenormals3d.device import resolve_device

            self.device = resolve_device(settings.device)
        if settings.normal_source == "network":
            self._load_model(helper)
        elif settings.normal_source != "landmarks":
            raise ValueError(f"normal_source must be 'network' or 'landmarks', got {settings.normal_source!r}")
        self.finder = FaceFinder(DetectSettings(max_faces=settings.max_faces))
        if settings.mesh not in ("fit", "depth"):
            raise ValueError(f"mesh must be 'fit' or 'depth', got {settings.mesh!r}")
        # The face model: the fitted mesh, and the prior of a network trained on the fitted
        # face's normals (``prior: fit``), whatever the mesh.
        self.fitter = None
        self._atlas: dict[int, tuple] = {}  # per atlas height: raster, corners, mirror corners and texels
        if settings.mesh == "fit" or self._prior_is_fit():
            from facenormals3d.fit.landmarks import LandmarkFitter
            from facenormals3d.fit.model import load_face_model

            self.fitter = LandmarkFitter(load_face_model(settings.face_model))

    def _load_model(self, helper) -> None:
        from facenormals3d.errors import FaceNormalsError
        from facenormals3d.model.config import ModelConfig
        from facenormals3d.model.runner import LocalNetwork, RemoteNetwork, load_in_helper
        from facenormals3d.model.weights import verified_sidecar

        path = Path(self.settings.weights) if self.settings.weights else DEFAULT_WEIGHTS
        if not path.is_file() and not self.settings.weights:
            # Not the user's input: the installation lacks its weights (exit code INTERNAL).
            raise FaceNormalsError(f"{path}: the shipped network weights are missing; pass "
                                   "--weights FILE, or --normals landmarks for the landmark baseline")
        info = verified_sidecar(path)  # here, so a bad file fails here with its own message
        if path == DEFAULT_WEIGHTS and info["sha256"] != DEFAULT_WEIGHTS_SHA256:
            raise FaceNormalsError(f"{path}: SHA-256 {info['sha256']} is not the pinned "
                                   f"{DEFAULT_WEIGHTS_SHA256}; reinstall the shipped weights")
        if helper is None:
            self.network = LocalNetwork(path, self.device, self.settings.threads)
        else:
            # Urgent, as the predictions: they go ahead of queued previews, never ahead of the load.
            helper.submit(load_in_helper, path, self.settings.device, self.settings.threads, urgent=True)
            self.network = RemoteNetwork(helper, ModelConfig.from_dict(info["config"]))
        cfg = self.network.cfg
        meta = info.get("metadata", {})
        # A prior-conditioned network reads the prior it was trained with (training/prior.py).
        prior = meta.get("train_config", {}).get("prior", "landmarks") if cfg.coarse_normals else None
        if prior not in (None, "landmarks", *FIT_PRIORS):
            raise FaceNormalsError(f"{path}: trained with prior {prior!r}, which reconstruct cannot compute")
        self.model_info.update({"weights": str(path), "sha256": info["sha256"],
                                "config": info["config"], "version": meta.get("version"), "prior": prior})

    def __enter__(self) -> "Reconstructor":
        import contextlib

        import scipy.linalg  # noqa: F401 - loads scipy's own OpenBLAS, so it is limited too

        from facenormals3d.device import blas_threads

        self._limits = contextlib.ExitStack()
        self._limits.enter_context(blas_threads(self.settings.threads))
        return self

    def __exit__(self, *exc) -> None:
        self.finder.close()
        if self._limits is not None:
            self._limits.close()
            self._limits = None

    def run(self, image: np.ndarray, source: str = "<array>") -> list[Reconstruction]:
        """All faces of ``image`` (``H x W x 3`` uint8 RGB). Raises NoFaceError when none."""
        return [self.reconstruct_face(face, source, k, timings)
                for k, (face, timings) in enumerate(self.align(image, source))]

    def align(self, image: np.ndarray, source: str = "<array>") -> list[tuple[AlignedFace, dict[str, float]]]:
        """Detect and align every face: ``(face, timings)`` pairs, largest face first.

        ``timings`` holds ``detect`` (the photo's detection time shared equally among its
        faces) and ``align``. Raises NoFaceError naming ``source`` when there is no face.
        """
        return self.align_search(image, source)[0]

    def align_search(self, image: np.ndarray, source: str = "<array>"):
        """:meth:`align`, plus the :class:`~facenormals3d.face.detect.FaceSearch` (skipped
        faces, turns searched) for reports (:func:`facenormals3d.face.align.align_all`)."""
        from facenormals3d.face.align import align_all

        return align_all(self.finder, image, source)

    def reconstruct_face(self, face: AlignedFace, source: str = "<array>", index: int = 0,
                         timings: dict[str, float] | None = None) -> Reconstruction:
        """Normals -> fitted face model (or depth mesh) -> detail (-> refinement) for one aligned face.

        Textures are sampled from ``face.photo`` (the full-resolution photo) when it is set,
        else from the 256 crop. Stage times are added to a copy of ``timings`` (e.g. from
        :meth:`align`). The same as :meth:`finish_face` of :meth:`start_face`.
        """
        return self.finish_face(self.start_face(face, source, index, timings))

    def start_face(self, face: AlignedFace, source: str = "<array>", index: int = 0,
                   timings: dict[str, float] | None = None) -> "StartedFace":
        """The stages of :meth:`reconstruct_face` up to the network's input (landmark face,
        landmark fit, prior), and the network asked for the normals. With the network in a
        helper process (:class:`~facenormals3d.model.runner.RemoteNetwork`) this returns
        without waiting: start every face of a photo first, so the helper computes their
        normals before it takes on slower work such as previews."""
        started = self._start_normals(face, source, index, dict(timings or {}), self.settings.mesh == "fit")
        timings = started.timings
        if started.landmark_fit is not None:
            lfit, _, frame = started.landmark_fit
            if started.landmark_hits is None:
                # What does not need the normals, done while a helper may still compute them.
                t = time.perf_counter()
                self._landmark_hits(started)
                timings["fit_landmarks"] += time.perf_counter() - t
            if self.settings.mesh == "fit" and self.settings.textures:
                t = time.perf_counter()
                started.person = self.finder.person_mask(face.crop)
                # The atlas the face will most likely need (its size from the landmark fit).
                self._atlas_of(self._texture_size(face, started.landmark_base, frame))
                timings["texture"] = time.perf_counter() - t
        return started

    def finish_face(self, started: "StartedFace", defer_appearance: bool = False) -> Reconstruction:
        """The rest of :meth:`reconstruct_face` for a face from :meth:`start_face`.
        ``defer_appearance``: leave the fitted mesh's textures, albedo and light estimate to
        :meth:`Reconstruction.complete` (e.g. on a writer thread; not with refinement, which
        needs them)."""
        face, source, index, timings = started.face, started.source, started.index, started.timings
        if self.settings.mesh == "fit":
            return self._fitted_face(started, defer_appearance)
        coarse = started.coarse
        normals, mask, learnt = self._normals(face, coarse, timings, started.normals)
        t = time.perf_counter()
        # The depth prior is the face the network's prior came from: the fitted face for a
        # ``prior: fit`` network (the landmark face where it leaves a pixel open), else the
        # landmark face. (Held-out renders, `evaluate synthetic -n 30 --seed 777`, 29 faces:
        # mesh median 4.33 mm, visible 4.93 mm this way; 4.41 / 4.70 mm with the landmark
        # face's depth. Both are dominated by two or three faces off by 20-37 mm.)
        prior_depth = coarse.depth
        if started.landmark_hits is not None:
            prior_depth = np.where(np.isfinite(started.landmark_hits[0]), started.landmark_hits[0], coarse.depth)
        depth, integ = self._integrate(normals, mask, prior_depth, coarse.mm_per_pixel)
        timings["integration"] = time.perf_counter() - t

        t = time.perf_counter()
        mesh = self._mesh(depth, mask, coarse.mm_per_pixel, _texture(face))
        timings["mesh"] = time.perf_counter() - t

        info: dict[str, Any] = {"model": self.model_info, "integration": integ,
                                "scale": scale_assumption(coarse.mm_per_pixel)}
        if self.settings.refine_iterations > 0:
            t = time.perf_counter()
            mesh, info["refine"] = self._refine(mesh, face, mask, coarse.mm_per_pixel)
            timings["refine"] = time.perf_counter() - t

        t = time.perf_counter()
        landmarks_mesh = landmarks_on_mesh(face.landmarks_crop, coarse.frame, mesh.vertices, mesh.faces)
        timings["landmarks"] = time.perf_counter() - t
        return Reconstruction(source=source, index=index, face=face, coarse=coarse, normals=normals,
                              mask=mask, depth=np.where(mask, depth, np.nan).astype(np.float32),
                              mesh=mesh, landmarks_mesh=landmarks_mesh, timings=timings, info=info,
                              confidence=learnt)

    def _fitted_face(self, started: "StartedFace", defer_appearance: bool = False) -> Reconstruction:
        """The fitted face model + detail for one started face (see :meth:`reconstruct_face`)."""
        from facenormals3d.fit.dense import fit_dense
        from facenormals3d.fit.landmarks import fitted_view
        from facenormals3d.mesh.fitted import detail_displacement, fitted_mesh, textured
        from facenormals3d.surface import vertex_normals

        face, source, index, timings = started.face, started.source, started.index, started.timings
        model = self.fitter.model
        size = face.transform.size
        coarse = started.coarse
        lfit, target, frame = started.landmark_fit
        s = frame.mm_per_pixel
        depth_fit, tri, bary = started.landmark_hits
        # Normals wherever the fitted face's face region shows (forehead to chin, the eyes),
        # not only inside the landmarks' face oval.
        normals, mask, learnt = self._normals(face, coarse, timings, started.normals, tri)

        t = time.perf_counter()
        fit, dense = lfit, {"ran": False}
        base = started.landmark_base
        visible = mask & np.isfinite(depth_fit)
        # The mesh is shaped by the normals inside the landmarks' face oval only: shaped by the
        # whole face region, the meshes of the seed-777 test renders were worse (median 1.233
        # -> 1.249 mm, visible 1.262 -> 1.292 mm; 2026-12-06).
        shaping = visible & face.mask & coarse.coverage
        # How much the fusion, the dense fit, the detail, the normal map and the light
        # estimate trust each pixel's normals.
        confidence = np.where(shaping, 1.0 if learnt is None else learnt, 0).astype(np.float32)
        integ: dict[str, Any] = {}
        detail_depth = np.full((size, size), np.nan, np.float32)
        if (self.settings.dense_fit or self.settings.detail) and shaping.sum() > 50:
            detail_depth, integ = self._integrate(normals, shaping, depth_fit, s, confidence)
            detail_depth = np.where(shaping, detail_depth, np.nan).astype(np.float32)
        timings["integration"] = time.perf_counter() - t
        if self.settings.dense_fit and np.isfinite(detail_depth).any():
            t = time.perf_counter()
            res = fit_dense(self.fitter, lfit, target, tri, bary, detail_depth, confidence, frame)
            fit, dense = res.fit, {"ran": True, **res.summary(), **res.info}
            base, (depth_fit, _, _) = fitted_view(model, fit, frame)
            timings["fit_dense"] = time.perf_counter() - t

        t = time.perf_counter()
        vn = vertex_normals(base, model.triangles)
        vertices = base
        if self.settings.detail and np.isfinite(detail_depth).any():
            vertices = base + detail_displacement(base, model.triangles, vn, detail_depth, depth_fit,
                                                  confidence, frame)
            vn = vertex_normals(vertices, model.triangles)
        timings["detail"] = time.perf_counter() - t

        info: dict[str, Any] = {"model": self.model_info, "mesh_kind": "fit", "integration": integ,
                                "scale": scale_assumption(s)}
        fitted = FittedFace(model=model, landmark_fit=lfit, final_fit=fit, base_vertices=base.astype(np.float32),
                            normal_map=None, dense=dense)
        mesh = fitted_mesh(vertices, model.triangles, model.triangle_uvs)
        rec = Reconstruction(source=source, index=index, face=face, coarse=coarse, normals=normals,
                             mask=visible, depth=detail_depth, mesh=mesh,
                             landmarks_mesh=model.landmark_points(mesh.vertices), timings=timings, info=info,
                             fit=fitted, confidence=learnt)
        baked = []  # the texture's _Baked, for the appearance

        def bake() -> None:
            t = time.perf_counter()
            baked.append(self._bake(face, vertices, vn, normals, confidence, frame, started.person))
            rec.mesh = textured(mesh, baked[0].texture)
            fitted.normal_map, fitted.person = baked[0].normal_map, baked[0].person
            info["texture_size"] = int(baked[0].texture.shape[0])
            timings["texture"] = timings.get("texture", 0.0) + time.perf_counter() - t

        def estimate() -> None:
            from facenormals3d.render.appearance import estimate_appearance

            t = time.perf_counter()
            b = baked[0]
            fitted.appearance = estimate_appearance(face.crop, normals, shaping, vertices, model.triangles, vn,
                                                    b.hits, frame, b.raster, b.own, b.mirror, b.texture,
                                                    mirror_texel=b.mirror_texel)
            timings["albedo"] = time.perf_counter() - t

        if self.settings.textures:
            rec.deferred_texture = bake
            if self.settings.albedo:
                rec.deferred_appearance = estimate
        if not defer_appearance or self.settings.refine_iterations > 0:
            rec.complete()
        if self.settings.refine_iterations > 0:
            t = time.perf_counter()
            rec.mesh, info["refine"] = self._refine(rec.mesh, face, shaping, s, fitted.appearance)
            rec.landmarks_mesh = model.landmark_points(rec.mesh.vertices)
            timings["refine"] = time.perf_counter() - t
        return rec

    def _atlas_of(self, size: int) -> tuple:
        """The model's atlas at height ``size``: ``(raster, corners N x 3, mirrored corners N x 3,
        mirror texel N)`` (:func:`~facenormals3d.mesh.atlas.cached_atlas`), kept per size."""
        if size not in self._atlas:
            from facenormals3d.data.ict import cache_dir
            from facenormals3d.mesh import atlas
            from facenormals3d.raster import columns

            model = self.fitter.model
            raster, mirror_texel = atlas.cached_atlas(model.triangles, model.triangle_uvs, model.mirror,
                                                      2 * size, size, cache_dir())
            # Column by column: view_texels' interpolation runs faster on that layout.
            corners = columns(model.triangles, raster.triangle)
            self._atlas[size] = (raster, corners, columns(model.mirror[corners]), mirror_texel)
        return self._atlas[size]

    def _bake(self, face: AlignedFace, vertices: np.ndarray, vn: np.ndarray, normals: np.ndarray,
              confidence: np.ndarray, frame: CropFrame, person: np.ndarray) -> "_Baked":
        """Photo texture and (with ``detail``) tangent normal map of the fitted mesh, in the
        model's atlas; ``person``: the crop's person mask (``FaceFinder.person_mask``)."""
        from facenormals3d.mesh import atlas
        from facenormals3d.raster import orthographic_hits

        model = self.fitter.model
        raster, corners, mirror_corners, mirror_texel = self._atlas_of(self._texture_size(face, vertices, frame))
        hits = orthographic_hits(vertices, model.triangles, frame)
        zbuffer = hits[0]
        facing = atlas.facing_texels(raster, vertices, model.triangles)
        own = atlas.on_person(atlas.view_texels(raster, corners, vertices, vn, zbuffer, frame, candidates=facing),
                              person)
        # A texel's mirror image can fill it only where the mirrored triangle faces the camera
        # (the test the texel's own view uses): at the 1024 atlas that skips ~55 % of the
        # texels not fully seen (astronaut: 1.02 M -> 0.45 M).
        mirror_facing = atlas.facing_texels(raster, vertices, model.mirror[model.triangles], mirrored=True)
        mirror = atlas.on_person(atlas.view_texels(raster, mirror_corners, vertices, vn, zbuffer, frame,
                                                   candidates=(own.weight < 0.999) & mirror_facing), person)
        if face.photo is not None:
            texture = atlas.bake_texture(raster, own, mirror, face.photo, face.transform.inverse)
        else:
            texture = atlas.bake_texture(raster, own, mirror, face.crop, np.eye(3)[:2])
        normal_map = None
        if self.settings.detail:
            normal_map = atlas.bake_normal_map(raster, own, vertices, model.triangles, model.triangle_uvs,
                                               vn, normals, confidence)
        return _Baked(texture=texture, normal_map=normal_map, raster=raster, own=own, mirror=mirror, hits=hits,
                      mirror_texel=mirror_texel, person=person)

    def _texture_size(self, face: AlignedFace, vertices: np.ndarray, frame: CropFrame) -> int:
        """Atlas height for one face: :attr:`ReconstructSettings.texture_size` when set, else
        :func:`~facenormals3d.mesh.atlas.auto_texture_size` of the fitted face part's texel
        density and the photo's pixels per mm on the face."""
        from facenormals3d.fit.model import PART_FACE
        from facenormals3d.mesh import atlas

        if self.settings.texture_size:
            return self.settings.texture_size

        model = self.fitter.model
        part = model.triangle_parts == PART_FACE
        per_mm = atlas.texel_density(vertices, model.triangles[part], model.triangle_uvs[part])
        crop_per_photo = face.transform.scale if face.photo is not None else 1.0
        return atlas.auto_texture_size(per_mm, 1.0 / (crop_per_photo * frame.mm_per_pixel))

    def predict_normals(self, face: AlignedFace, timings: dict[str, float] | None = None
                        ) -> tuple[np.ndarray, np.ndarray, CoarseFace]:
        """Normals of one aligned face: ``(normals S x S x 3, mask S x S, coarse face)``.

        ``mask`` is the face mask where the landmark face and the normals are defined, and
        with a network that reads the fitted face (``prior: fit``) also the fitted face's face
        region, as in :meth:`reconstruct_face`; ``normals`` is NaN outside it. Stage times are
        added to ``timings``.
        """
        timings = {} if timings is None else timings
        started = self._start_normals(face, "<array>", 0, timings, fit=False)
        hits = started.landmark_hits
        normals, mask, _ = self._normals(face, started.coarse, timings, started.normals,
                                         None if hits is None else hits[1])
        return normals, mask, started.coarse

    def _start_normals(self, face: AlignedFace, source: str, index: int, timings: dict[str, float],
                       fit: bool) -> "StartedFace":
        """Landmark face, landmark fit (``fit``, or when the prior needs it) and the network
        asked for the normals with the prior it was trained on: the landmark face's normals,
        or the fitted face's (``prior: fit``). Stage times go into ``timings`` (kept by the
        result)."""
        from facenormals3d.face.coarse import coarse_face
        from facenormals3d.fit.landmarks import check_fit_landmarks, fit_crop, fitted_normals

        name = f"{source} face {index}"
        size = face.transform.size
        fit = fit or self._prior_is_fit()
        if fit:
            check_fit_landmarks(face.landmarks_crop, name)
        t = time.perf_counter()
        coarse = coarse_face(face.landmarks_crop, size)
        timings["coarse_face"] = time.perf_counter() - t
        started = StartedFace(face=face, source=source, index=index, timings=timings, coarse=coarse)
        prior = coarse.normals
        if fit:
            t = time.perf_counter()
            started.landmark_fit = fit_crop(self.fitter, face.landmarks_crop, size, name)
            if self._prior_is_fit():
                lfit, _, frame = started.landmark_fit
                self._landmark_hits(started)
                prior = fitted_normals(self.fitter.model, lfit, frame, (started.landmark_base, started.landmark_hits))
            timings["fit_landmarks"] = time.perf_counter() - t
        if self.network is not None:
            t = time.perf_counter()
            started.normals = self.network.submit(face.crop, prior, self.settings.flip_average)
            timings["normals"] = time.perf_counter() - t
        return started

    def _prior_is_fit(self) -> bool:
        """Whether the network reads the fitted face's normals (its weights' prior is one of
        :data:`FIT_PRIORS`)."""
        return self.model_info.get("prior") in FIT_PRIORS

    def _landmark_hits(self, started: "StartedFace") -> None:
        """Set ``started.landmark_base`` and ``landmark_hits`` from its landmark fit
        (:func:`~facenormals3d.fit.landmarks.fitted_view`)."""
        from facenormals3d.fit.landmarks import fitted_view

        lfit, _, frame = started.landmark_fit
        started.landmark_base, started.landmark_hits = fitted_view(self.fitter.model, lfit, frame)

    def _normals(self, face: AlignedFace, coarse: CoarseFace, timings: dict[str, float],
                 pending: Future | None, triangle: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(normals, mask, confidence)``: :meth:`predict_normals`'s normals and mask, and
        the network's trust in its normals, ``S x S`` float32 in [0, 1] (its
        :func:`~facenormals3d.model.infer.confidence_weight`, 0 outside ``mask``; None when it
        has no confidence output). ``pending``: the network's answer (``submit`` of
        :mod:`facenormals3d.model.runner`); None: the landmark face's normals. ``triangle``
        (``S x S``, -1 = none): the fitted face's triangle each pixel sees; its face region
        (:meth:`~facenormals3d.fit.model.FaceModel.face_region`, grown by
        :data:`REGION_GROW_PX`) is kept besides the landmarks' face mask. The time spent
        waiting for it is added to ``timings["normals"]``."""
        t = time.perf_counter()
        confidence = None
        if pending is not None:
            normals, confidence = pending.result()
        else:
            normals = coarse.normals.copy()
        timings["normals"] = timings.get("normals", 0.0) + time.perf_counter() - t
        mask = face.mask & coarse.coverage
        if triangle is not None:
            mask = mask | self.fitter.model.face_region(triangle, REGION_GROW_PX)
        mask &= np.all(np.isfinite(normals), axis=-1)
        if confidence is not None:
            confidence = np.where(mask, confidence, 0).astype(np.float32)
        return np.where(mask[..., None], normals, np.nan).astype(np.float32), mask, confidence

    def _integrate(self, normals: np.ndarray, mask: np.ndarray, prior_depth: np.ndarray,
                   mm_per_pixel: float, confidence: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
        """Normals -> depth (mm) inside ``mask``, tied to ``prior_depth`` (``S x S`` z, mm);
        ``confidence`` (``S x S`` in [0, 1]) weighs each pixel's normals (None = all 1)."""
        import integration

        s = self.settings
        method = s.integration
        settings = integration.IntegrationSettings(method=method, pixel_size=mm_per_pixel,
                                                   prior_weight=s.prior_weight)
        prior = np.where(mask, prior_depth, np.nan)
        if method == "fusion":
            res = integration.integrate(normals, mask, prior_depth=prior, confidence=confidence, settings=settings)
            depth = res.depth
        else:
            res = integration.integrate(normals, mask, confidence=confidence, settings=settings)
            # Without a prior the constant is free: put the surface at the prior's mean depth.
            depth = res.depth - np.nanmean(res.depth[mask]) + np.nanmean(prior[mask])
        diag = {"method": res.method, "solver": res.solver, "iterations": res.iterations,
                "residual": res.residual, "seconds": res.seconds, "converged": res.converged,
                "prior_weight": s.prior_weight if method == "fusion" else None}
        return depth, diag

    def _mesh(self, depth: np.ndarray, mask: np.ndarray, mm_per_pixel: float, crop: np.ndarray):
        from facenormals3d.mesh import MeshSettings, depth_to_mesh

        # A relaxed outline: the mask's pixel staircase shows in side views otherwise.
        return depth_to_mesh(depth, mask, pixel_size_mm=mm_per_pixel, texture=crop,
                             settings=MeshSettings(smooth_outline=OUTLINE_SMOOTHING))

    def _refine(self, mesh, face: AlignedFace, mask: np.ndarray, mm_per_pixel: float, appearance=None):
        from facenormals3d.render.refine import RefineSettings, refine_mesh

        albedo = None if appearance is None else appearance.filled_albedo_crop()
        res = refine_mesh(mesh.vertices, mesh.faces, face.crop, mask, mm_per_pixel,
                          RefineSettings(iterations=self.settings.refine_iterations, device=self.device,
                                         rasterizer="pytorch3d", albedo="smoothed" if albedo is None else "given"),
                          albedo_image=albedo)
        from facenormals3d.mesh import with_vertices

        diag = {"iterations": res.iterations, "photometric_error_before": res.photometric_error_before,
                "photometric_error_after": res.photometric_error_after, "seconds": res.seconds,
                "seconds_per_iteration": res.seconds_per_iteration,
                "max_displacement_mm": float(np.abs(res.displacement).max()) if res.displacement.size else 0.0}
        return with_vertices(mesh, res.vertices), diag


def _texture(face: AlignedFace) -> np.ndarray:
    """The mesh's texture: the crop's square from the full-resolution photo (up to
    1024^2, outside-photo texels filled), or the crop when the photo is not kept."""
    from facenormals3d.face.texture import face_texture

    return face.crop if face.photo is None else face_texture(face.photo, face.transform).pixels


def scale_assumption(mm_per_pixel: float) -> dict[str, Any]:
    """How metric scale was fixed, for reports."""
    from facenormals3d.conventions import MEAN_OUTER_EYE_DISTANCE_MM

    return {"rule": "outer eye corners (mediapipe 33, 263) are "
                    f"{MEAN_OUTER_EYE_DISTANCE_MM:g} mm apart (adult mean)",
            "mm_per_crop_pixel": mm_per_pixel, "projection": "orthographic"}


def landmarks_on_mesh(landmarks_crop: np.ndarray, frame: CropFrame, vertices: np.ndarray,
                      faces: np.ndarray) -> np.ndarray:
    """Put crop landmarks (478 x 3 px) onto the mesh surface, in mesh coordinates (mm).

    Each landmark's (x, y) is kept and z taken where a ray along -z hits the mesh; a
    landmark off the mesh (e.g. in the open mouth) goes to the closest surface point.
    """
    import open3d as o3d

    from facenormals3d.raster import cast_down, raycasting_scene

    pts = frame.to_mm(landmarks_crop)
    scene = raycasting_scene(vertices, faces)
    top = float(np.max(vertices[:, 2])) + 10.0
    t_hit = cast_down(scene, pts[:, 0], pts[:, 1], top)[0]
    out = pts.copy()
    hit = np.isfinite(t_hit)
    out[hit, 2] = top - t_hit[hit]
    if not hit.all():
        # Off the mesh: start from the landmark model's own depth, snap to the surface.
        query = o3d.core.Tensor(pts[~hit].astype(np.float32))
        out[~hit] = scene.compute_closest_points(query)["points"].numpy()
    return out


def reconstruct(image, settings: ReconstructSettings | None = None, **overrides) -> list[Reconstruction]:
    """Reconstruct every face in ``image`` (a path or an ``H x W x 3`` array).

    ``overrides`` set fields of :class:`ReconstructSettings`, e.g.
    ``reconstruct("me.jpg", refine_iterations=10)``.
    """
    from facenormals3d.photo import from_array, load_photo

    settings = settings or ReconstructSettings()
    if overrides:
        import dataclasses

        settings = dataclasses.replace(settings, **overrides)
    photo = load_photo(image) if isinstance(image, (str, Path)) else from_array(image)
    with Reconstructor(settings) as rec:
        return rec.run(photo.pixels, photo.path)
