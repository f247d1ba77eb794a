"""One synthetic training sample from a seed: a rendered face crop and its ground truth.

Determinism and splits
    Every sample is a pure function of ``(model, settings, seed, identity_id)``; nothing
    is shared between samples, so any worker can render any index. For a dataset seed
    ``S`` and sample index ``i``:

    * ``sample_seed(S, i)`` seeds pose, expression, appearance, lights and effects;
    * the identity id comes from ``(S, i // images_per_identity, k)`` through a hash, with
      ``k = 0, 1, ...`` the first value whose split is the one asked for;
    * a face's identity coefficients are a function of its identity id only;
    * ``split = identity_split(id)``: id mod 20 == 0 -> "test", == 1 -> "val", else
      "train" (5 / 5 / 90 %), so validation and test faces never appear in training.

Ground truth (all ``S x S``, aligned pixel for pixel with the image)
    normals  unit shading normals (x right, y up, z toward the camera) in the crop's own
             camera frame (:func:`facenormals3d.data.geometry.image_camera_rotation`: the
             render camera turned to look through the crop's centre; before 2026-12-06 they
             were in the render camera's frame, off by up to ~17 deg that the crop cannot
             show), smooth across triangles (interpolated vertex normals) plus the
             mesoscale detail layer; zero outside the mask.
    mask     the face region a face mask covers at inference: the ICT "narrow face
             area" (forehead to chin, cheek to cheek, lips) plus the eyeballs and the
             eye-socket rims (inner eye corners) where they show; not the mouth interior
             (socket, teeth, tongue), ears, neck, scalp, background, or pixels hidden by
             an occluder. Eyelashes and the other real-time eye shells are not rendered.
    hair     how much of each pixel hair hides (0-1). Under hair the normals and the
             mask stay the skin's (see :mod:`facenormals3d.data.hair`), and so they do
             under glasses frames and clear lenses (:mod:`facenormals3d.data.glasses`;
             before 2026-12-07 frames left the mask); the dark lenses of sunglasses and
             hands are opaque and leave the mask.
    depth    positive distance along the render camera's optical axis (-z_camera) in mm
             wherever the head is hit, 0 on the background.
    albedo   linear RGB reflectance; shading: linear diffuse shading, so that
             ``albedo * shading`` is the diffuse part of the linear image before specular
             highlights, occluders and camera effects (0 on the background).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np

from facenormals3d.data import albedo as alb
from facenormals3d.data import effects, geometry, render
from facenormals3d.data import glasses as gl
from facenormals3d.data import hair as hr
from facenormals3d.data import scene as sc
from facenormals3d.data import textures as tx
from facenormals3d.data.ict import (PART_EYE_SOCKET, PART_EYEBALL, PART_FACE, PART_FACE_OUTER, PART_HEAD,
                                    PART_TEETH, PART_TONGUE, ICTModel)
from facenormals3d.raster import interpolate, raycasting_scene

SPLITS = ("train", "val", "test")
#: Inner-lip gap (mm, neutral-frame landmarks 61-63 vs 67-65) above which the mouth counts as open.
MOUTH_OPEN_MM = 2.5
_SKIN = (PART_FACE, PART_FACE_OUTER, PART_HEAD)


@dataclass(frozen=True)
class SynthSettings:
    """What the engine renders and which effects are on."""

    size: int = 256
    """Crop side in pixels."""
    margin: float = 1.0
    """The render shows ``margin`` times the crop rule's square around the same centre, at
    the same pixels per mm (side :attr:`render_side`): room for cropping it again as
    ``reconstruct`` does (training's front-end framing, :mod:`facenormals3d.training.prior`).
    1 = the render is the crop."""
    geometry: geometry.GeometrySettings = field(default_factory=geometry.GeometrySettings)
    """Shape, pose and camera ranges."""
    images_per_identity: int = 1
    """Consecutive indices that share one identity (different pose, expression, look)."""
    detail: bool = True
    """Mesoscale detail layer (skin texture, wrinkles) in the normals and the image."""
    detail_strength: float = 1.0
    """Scale of the detail heights."""
    shadows: bool = True
    """Cast shadow rays for the lights."""
    background: bool = True
    """Clutter behind the head (off: mid grey)."""
    occluder_rate: float = 0.08
    """Fraction of samples with a hand over the face."""
    glasses_rate: float = 0.15
    """Fraction of samples wearing glasses (20 % of them sunglasses; :mod:`facenormals3d.data.glasses`)."""
    hair: bool = True
    """Scalp hair, fringes, beards, moustaches and eyebrow strands (:mod:`facenormals3d.data.hair`)."""
    shoulders: bool = True
    """Shoulders and clothes below the head (:mod:`facenormals3d.data.scene`)."""
    subsurface: bool = True
    """Subsurface-like softening of the skin's diffuse shading (:func:`render.subsurface`)."""
    camera_effects: bool = True
    """Colour cast, blur, defocus / motion blur / low resolution, vignetting, noise, gamma,
    sharpening and JPEG."""

    @property
    def render_side(self) -> int:
        """Side of the rendered image in pixels: ``size`` times :attr:`margin`, rounded."""
        return int(round(self.size * self.margin))

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "SynthSettings":
        d = dict(d)
        g = d.pop("geometry", {})
        g = {k: tuple(v) if isinstance(v, list) else v for k, v in g.items()}
        return SynthSettings(geometry=geometry.GeometrySettings(**g), **d)


@dataclass
class Sample:
    """One rendered crop with its ground truth (see the module docstring)."""

    image: np.ndarray
    """``S x S x 3`` uint8 sRGB photo."""
    normals: np.ndarray
    """``S x S x 3`` float32 unit normals in the crop's own camera frame (see the module
    docstring); 0 outside the mask."""
    mask: np.ndarray
    """``S x S`` bool face mask."""
    depth: np.ndarray
    """``S x S`` float32 depth in mm along the optical axis; 0 on the background."""
    albedo: np.ndarray
    """``S x S x 3`` float32 linear reflectance; 0 on the background."""
    shading: np.ndarray
    """``S x S x 3`` float32 linear diffuse shading; 0 on the background."""
    landmarks68: np.ndarray
    """``68 x 2`` float32 crop pixel coordinates of the iBUG-68 landmarks."""
    identity: int
    """Identity id (its coefficients are a function of it)."""
    seed: int
    """The sample seed."""
    split: str
    """``identity_split(identity)``."""
    params: dict
    """Everything drawn: coefficients, pose, camera, lights, appearance, effects."""
    hair: np.ndarray | None = None
    """``S x S`` float32 in [0, 1]: how much of each pixel hair hides (the normals and the
    mask there stay the skin's; see :mod:`facenormals3d.data.hair`)."""
    vertices_camera: np.ndarray | None = None
    """``V x 3`` float32 posed model vertices in the render camera's frame (mm, OpenGL: z < 0
    in front of the camera; ``params["camera"]["crop"]`` projects them): the exact
    ground-truth surface for evaluation. Not written to shards."""


def _hash63(*values: int) -> int:
    state = np.random.SeedSequence([int(v) & 0xFFFFFFFFFFFFFFFF for v in values]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFFFFFFFFFFFFFF


def identity_split(identity_id: int) -> str:
    """The split an identity belongs to: id mod 20 == 0 -> test, == 1 -> val, else train."""
    r = int(identity_id) % 20
    return "test" if r == 0 else "val" if r == 1 else "train"


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` of a dataset with seed ``seed`` (63-bit)."""
    return _hash63(seed, index, 0x5A)


def identity_id(seed: int, index: int, split: str | None = None, images_per_identity: int = 1) -> int:
    """Identity id of sample ``index``; with ``split`` only ids of that split are drawn."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    group = int(index) // max(1, int(images_per_identity))
    k = 0
    while True:
        ident = _hash63(seed, group, k, 0x1D)
        if split is None or identity_split(ident) == split:
            return ident
        k += 1


class SynthEngine:
    """Renders samples of one ICT model; holds only read-only precomputed data."""

    def __init__(self, model: ICTModel, settings: SynthSettings = SynthSettings()):
        self.model = model
        self.settings = settings
        self.pivot = geometry.head_pivot(model.neutral, model.landmarks)
        self.rest_landmarks = model.neutral[model.landmarks].astype(np.float64)
        self.bank = tx.noise_bank()
        self.uv_mm = _uv_scale(model)
        face_tris = model.triangles[np.isin(model.triangle_parts, (PART_FACE, PART_FACE_OUTER))]
        vertex_front = np.zeros(len(model.neutral), dtype=bool)
        vertex_front[face_tris.ravel()] = True
        regions = alb.vertex_regions(model.neutral, model.landmarks, vertex_front)
        #: Per triangle: (u, v, neutral x, neutral y) at corners 1, 2 minus corner 0 (T x 2 x 4),
        #: the parametrisations the detail layer's height is defined over.
        params = np.concatenate([model.triangle_uvs, model.neutral[model.triangles][:, :, :2]], axis=2)
        self.param_deltas = (params[:, 1:] - params[:, :1]).astype(np.float32)
        self.incidence = geometry.vertex_incidence(len(model.neutral), model.triangles)
        #: ``3T x 2`` float32 UVs of the triangle corners (row ``3 t + k`` = corner k of triangle t).
        self.corner_uvs = model.triangle_uvs.reshape(-1, 2).astype(np.float32)
        # Part label -> is skin / is in the face mask (lookups are much cheaper than np.isin per pixel).
        labels = np.arange(max(int(model.triangle_parts.max()), PART_TONGUE) + 1)
        self.skin_part = np.isin(labels, _SKIN)
        self.face_part = np.isin(labels, (PART_FACE, PART_EYEBALL, PART_EYE_SOCKET))
        #: Triangles a closed mouth hides: teeth and tongue.
        self.hidden_when_closed = np.isin(model.triangle_parts, (PART_TEETH, PART_TONGUE))
        iris = np.where(np.isfinite(model.iris), model.iris, 99.0)
        #: Per-vertex attributes interpolated for every hit pixel: neutral position (3),
        #: ambient occlusion (1), iris coordinate (1), albedo regions.
        self.vertex_attributes = np.concatenate(
            [model.neutral, model.vertex_ao[:, None], iris[:, None], regions], axis=1).astype(np.float32)

    def render_index(self, seed: int, index: int, split: str | None = None) -> Sample:
        """Sample ``index`` of the dataset with seed ``seed`` (optionally from one split only)."""
        ident = identity_id(seed, index, split, self.settings.images_per_identity)
        return self.render(sample_seed(seed, index), ident)

    def render(self, seed: int, identity: int, lighting: dict | None = None) -> Sample:
        """Render the sample with this seed and identity id.

        ``lighting`` (a :func:`facenormals3d.data.render.sample_lighting` dict) replaces the
        drawn light: the same face, pose, skin, hair, glasses, background, occluders and
        camera effects under another light (exposure is re-metered, and the shading's
        soft-shadow rays start from the same point of the random stream). Before 2026-12-07
        everything drawn after the shading differed."""
        s = self.settings
        rng = np.random.default_rng(int(seed))
        scene, cam, hits, vc, params = self._geometry(rng, identity)
        # Random skin texture: a random affine map of UV into the noise bank (90-150 mm
        # of skin per tile, any rotation and offset).
        tile_mm, ang = float(rng.uniform(90, 150)), float(rng.uniform(0, 2 * np.pi))
        rot = (self.uv_mm / tile_mm) * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        bank_map = np.concatenate([rot, rng.random((2, 1))], axis=1)
        px = self._surface(hits, vc, bank_map)
        smooth_normals = px["normals"]
        params["texture"] = {"tile_mm": tile_mm, "angle": ang}
        if s.detail:
            px["normals"], params["detail"] = self._detail(rng, vc, hits, px, bank_map)
        app = alb.sample_appearance(rng)
        albedo, spec_w = alb.albedo(app, px["parts"], px["rest"], px["regions"], px["iris"], px["noise"],
                                    self.rest_landmarks)
        drawn = render.sample_lighting(rng)  # drawn even when replaced: the same stream up to here
        lighting = drawn if lighting is None else lighting
        skin = self.skin_part[px["parts"]]
        # Skin reflectance: an oily T-zone is shinier and smoother; eyes and lips are wet.
        oil = float(rng.uniform(0.0, 1.0))
        t_zone = px["regions"][:, alb.REGIONS.index("t_zone")] * skin
        lips = px["regions"][:, alb.REGIONS.index("lips")]
        spec_w = spec_w * (1.0 + 1.2 * oil * t_zone)
        eye = px["parts"] == PART_EYEBALL

        def shade(light: dict, stream: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            rough = light["roughness"] * (1.0 - 0.45 * oil * t_zone) * (1.0 - 0.35 * lips)
            return render.shade(stream, scene, hits, px["normals"], spec_w, px["ao"], light, shadows=s.shadows,
                                roughness=np.where(eye, 0.08, rough).astype(np.float32))

        if lighting is drawn:
            shading, spec = shade(lighting, rng)
        else:
            # The replacement light shades from a copy of the stream, and the drawn light's
            # shading (discarded) advances the stream as it would have, so everything drawn
            # after it (hair, background, glasses, occluders, camera) is the same as under the
            # drawn light.
            replaced = copy.deepcopy(rng)
            shade(drawn, rng)
            shading, spec = shade(lighting, replaced)
        # Subsurface-like softening of the diffuse shading (per channel, red furthest).
        mm_per_px = float(np.median(hits.depth[hits.hit])) / cam.focal if hits.hit.any() else 1.0
        sss = float(rng.uniform(0.5, 1.0)) if s.subsurface else 0.0
        shading = render.subsurface(shading, skin, hits, mm_per_px, sss)
        face = self.face_part[px["parts"]]
        linear_face = albedo * shading + spec
        # Auto exposure: the face's 60th luminance percentile lands on a random grey.
        lum = linear_face @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
        ref = lum[face] if face.any() else lum
        target = float(np.exp(rng.uniform(np.log(0.08), np.log(0.3)))) * (0.5 if lighting["low_key"] else 1.0)
        exposure = target / max(float(np.percentile(ref, 60)) if len(ref) else 1.0, 1e-4)
        shading *= exposure
        linear_face *= exposure

        size = s.render_side
        landmarks = cam.project(vc[self.model.landmarks].astype(np.float64)).astype(np.float32)
        if s.background:
            img, params["background"] = effects.background(rng, size)
        else:
            img, params["background"] = np.full((size, size, 3), 0.2, dtype=np.float32), {"kind": "grey"}
        if s.shoulders:
            params["clothes"] = sc.sample_clothes(rng)
            sc.draw_shoulders(params["clothes"], img, landmarks, np.asarray(app["skin"], np.float32),
                              _scaled_lighting(lighting, exposure))
        img.reshape(-1, 3)[hits.index] = linear_face
        hair = np.zeros((size, size), dtype=np.float32)
        if s.hair:
            params["hair"] = hr.sample_hair(rng, app)
            layer = hr.render_hair(rng, params["hair"], app, size, hits.hit, hits.index, px["parts"], px["rest"],
                                   smooth_normals, px["regions"], self.rest_landmarks, landmarks, mm_per_px,
                                   _scaled_lighting(lighting, exposure))
            hair = layer.alpha
            img += hair[..., None] * (layer.radiance - img)
        # Drawn in the random stream's old order (a sample without glasses renders as before
        # 2026-12-07), composited hands over glasses.
        cover, cover_col, params["occluders"] = effects.occluders(rng, size, landmarks, np.asarray(app["skin"]),
                                                                  s.occluder_rate)
        if rng.random() < s.glasses_rate:
            params["glasses"] = gl.sample_glasses(rng)
            shape = gl.build_glasses(params["glasses"], cam.to_model(vc), self.model.landmarks)
            hides = gl.draw_glasses(params["glasses"], shape, cam, hits.depth, scene,
                                    _scaled_lighting(lighting, exposure), img).hides
        if params["occluders"]:
            img += cover[..., None] * (cover_col - img)
        if "glasses" in params:
            cover = np.maximum(cover, hides)
        face = face & (np.take(cover.ravel(), hits.index) < 0.5)
        image, params["sensor"] = effects.camera(rng, img, s.camera_effects)

        def to_map(values: np.ndarray) -> np.ndarray:
            out = np.zeros((size * size,) + values.shape[1:], dtype=values.dtype)
            out[hits.index] = values
            return out.reshape((size, size) + values.shape[1:])

        mask = to_map(face)
        # Shaded in the render camera's frame; the truth is in the crop's own camera's.
        own = (px["normals"] @ cam.image_rotation()).astype(np.float32)
        normal_map = to_map(own * face[:, None])
        params.update(lighting=lighting, appearance=app, exposure=exposure,
                      skin={"oil": oil, "subsurface": sss, "mm_per_px": mm_per_px})
        return Sample(image=image, normals=normal_map, mask=mask, depth=hits.depth,
                      albedo=to_map(albedo), shading=to_map(shading), landmarks68=landmarks,
                      identity=int(identity), seed=int(seed), split=identity_split(identity), params=params,
                      hair=hair, vertices_camera=vc)

    def _geometry(self, rng: np.random.Generator, identity: int):
        """Shape, pose, camera, the culled scene and the primary hits."""
        from facenormals3d.face.crop import CropSettings

        m, s = self.model, self.settings
        id_coef = geometry.sample_identity(identity, m.n_identity, s.geometry.identity_scale)
        expr = geometry.sample_expression(rng, m.expression_names, s.geometry)
        verts = geometry.deform(m.neutral, m.identity_basis, m.expression_basis, id_coef, expr)
        pose = geometry.sample_pose(rng, s.geometry)
        cam, cam_params = geometry.make_camera(rng, s.geometry, verts[m.landmarks], self.pivot, pose,
                                               CropSettings(size=s.render_side), s.margin)
        vc = cam.to_camera(verts).astype(np.float32)
        face_normals = geometry.triangle_normals(vc, m.triangles)
        keep = geometry.visible_triangles(vc, m.triangles, face_normals, cam)
        lips = verts[m.landmarks[[61, 62, 63]]] - verts[m.landmarks[[67, 66, 65]]]
        mouth_open = bool(np.sqrt(np.sum(lips ** 2, axis=1)).max() > MOUTH_OPEN_MM)
        if not mouth_open:
            # Teeth and tongue hide behind closed lips: leave them out of the scene (the
            # socket stays: rays through the lips' seam must land on something).
            keep = keep[~self.hidden_when_closed[keep]]
        scene = raycasting_scene(vc, m.triangles[keep], nthreads=1)
        hits = render.cast(scene, cam.ray_directions())
        hits.triangle = keep[hits.triangle]
        hits.vertex_normals = geometry.vertex_normals(vc, m.triangles, face_normals, self.incidence)
        hits.corners = np.take(m.triangles, hits.triangle, axis=0)
        params = {"identity_coefficients": id_coef.tolist(),
                  "expression": {m.expression_names[i]: float(expr[i]) for i in np.flatnonzero(expr)},
                  "mouth_open": mouth_open, "camera": {**cam_params, "crop": cam.to_dict()}}
        return scene, cam, hits, vc, params

    def _surface(self, hits: render.Hits, vc: np.ndarray, bank_map: np.ndarray) -> dict[str, np.ndarray]:
        """Per-hit-pixel attributes, interpolated over the hit triangles' corners."""
        m = self.model
        normals = interpolate(hits.vertex_normals, hits.corners, hits.bary)
        normals /= np.sqrt(np.einsum("ij,ij->i", normals, normals))[:, None] + 1e-12
        values = interpolate(self.vertex_attributes, hits.corners, hits.bary)
        parts = m.triangle_parts[hits.triangle]
        iris = np.where(parts == PART_EYEBALL, values[:, 4], np.inf).astype(np.float32)
        # UVs are per triangle corner (seams), so they interpolate over corner rows, not vertices.
        uv = interpolate(self.corner_uvs, 3 * hits.triangle[:, None] + np.arange(3), hits.bary)
        tile = uv @ bank_map[:, :2].T.astype(np.float32)
        tile += bank_map[:, 2].astype(np.float32)
        return {"normals": normals, "rest": values[:, 0:3], "ao": values[:, 3], "iris": iris,
                "regions": values[:, 5:], "parts": parts, "noise": tx.lookup(self.bank, tile)}

    def _detail(self, rng: np.random.Generator, vc: np.ndarray, hits: render.Hits, px: dict,
                bank_map: np.ndarray):
        """The smooth normals bent by the detail height field (skin parts only)."""
        s = self.settings
        skin = self.skin_part[px["parts"]]
        age = float(rng.uniform(0, 1))
        amp = s.detail_strength * np.array([rng.uniform(0.002, 0.015), rng.uniform(0.005, 0.05),
                                            rng.uniform(0.0, 0.02) * (0.3 + age)])
        wr = tx.sample_wrinkles(rng, age * s.detail_strength)
        info = {"amplitudes_mm": amp.tolist(), "age": age, "wrinkles": wr}
        if not skin.any():
            return px["normals"], info
        # Computed for every hit pixel (most are skin) and masked at the end: cheaper
        # than gathering the skin subset of every array.
        p0 = np.take(vc, hits.corners[:, 0], axis=0)
        e1 = np.take(vc, hits.corners[:, 1], axis=0) - p0
        e2 = np.take(vc, hits.corners[:, 2], axis=0) - p0
        nz = px["noise"]
        # d h / d tile coords, then the chain rule through tile = bank_map @ [uv, 1].
        # One product: the amplitude-weighted sum of the three layers' derivatives, mapped
        # from tile to UV coordinates (bank channels FINE_DU..LINES_DV, the value channels
        # in between get weight 0).
        weights = np.zeros((tx.LINES_DV - tx.FINE_DU + 1, 2))
        for a, du in zip(amp, (tx.FINE_DU, tx.MID_DU, tx.LINES_DU)):
            weights[du - tx.FINE_DU:du - tx.FINE_DU + 2] = a * bank_map[:, :2]
        dh = np.empty((len(nz), 4), dtype=np.float32)
        dh[:, :2] = nz[:, tx.FINE_DU:tx.LINES_DV + 1] @ weights.astype(np.float32)
        dh[:, 2:] = tx.wrinkle_gradient(px["rest"][:, :2], self.rest_landmarks, wr)
        dh[~skin] = 0.0
        grad = tx.surface_gradient(e1, e2, np.take(self.param_deltas, hits.triangle, axis=0), dh)
        out = tx.perturb_normals(px["normals"], grad)
        return out, info


def _scaled_lighting(lighting: dict, factor: float) -> dict:
    """``lighting`` with the environment and every light scaled by ``factor`` (an exposure)."""
    env = {k: (np.asarray(v) * factor).tolist() for k, v in lighting["env"].items()}
    lights = [{**light, "intensity": light["intensity"] * factor} for light in lighting["lights"]]
    return {**lighting, "env": env, "lights": lights}


def _uv_scale(model: ICTModel) -> float:
    """Millimetres per UV unit on the face (median over face triangles)."""
    t = model.triangles[model.triangle_parts == PART_FACE]
    if len(t) == 0:
        t = model.triangles
    p = model.neutral[t]
    area3 = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
    q = model.triangle_uvs[model.triangle_parts == PART_FACE] if len(t) != len(model.triangles) else model.triangle_uvs
    e1, e2 = q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]
    area2 = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    ok = area2 > 1e-12
    if not ok.any():
        return 100.0
    return float(np.median(np.sqrt(area3[ok] / area2[ok])))
