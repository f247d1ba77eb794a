"""Albedo and relighting against the synthetic engine's ground truth (held-out identities).

Per test-split sample (camera effects and occluders off, so photo A and photo B differ only
in their light): the engine renders photo A with its drawn light and photo B, the same face
and pose under a second drawn light. ``reconstruct`` runs on both. Inside the face mask
(the engine's, the pipeline's and the render's coverage together) we score:

* ``albedo_error``: the albedo atlas of A, rendered unlit onto A's pixels, against the
  engine's albedo: mean absolute error after a per-channel least-squares gain (albedo and
  light share an unknown scale), relative to the mean true albedo. Baseline: the photo
  texture (``texture.png``) as albedo.
* ``relit_psnr`` / ``relit_ssim``: A's mesh with A's albedo (and specular map) rendered
  under B's light (the engine's light converted exactly: its SH environment and its
  directional lights; wrap-around, ambient occlusion and its GGX lobe are not in our
  model), per-channel gain fitted in linear RGB, against photo B, in sRGB [0, 1].
  Baseline: the same render with ``texture.png`` as albedo and no specular map.
* ``consistency``: A's and B's atlases compared on the face part seen squarely in both
  (n_z > 0.3): mean absolute difference of the linear values after dividing each by its
  per-channel mean; for the albedo and for ``texture.png``, and their ratio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from facenormals3d.errors import InputError


@dataclass(frozen=True)
class RelightEvalSettings:
    """What :func:`evaluate_relight` renders and runs."""

    n: int = 8
    """Number of held-out samples."""
    seed: int = 777
    """Dataset seed of the samples (photo A)."""
    split: str = "test"
    """Identity split (``test`` or ``val``)."""
    light_seed: int = 4242
    """Seed of the second lights (photo B)."""
    weights: str | None = None
    """Network weights (None = shipped)."""
    texture_size: int = 512
    """Atlas height of the reconstructions."""


@dataclass
class RelightEvalResult:
    rows: list[dict[str, Any]]
    """One row per albedo source (``albedo``, ``texture``): means over the samples."""
    samples: list[dict[str, Any]] = field(default_factory=list)
    """Per sample: every score, or the failure."""


def engine_lighting(lighting: dict):
    """The engine's light (:func:`facenormals3d.data.render.sample_lighting`) as our
    :class:`~facenormals3d.render.lighting.Lighting` (exact for the SH environment)."""
    from facenormals3d.render.lighting import DirectionalLight, Lighting
    from facenormals3d.render.sh import C0 as _C0, C1 as _C1, C2 as _C2, C20 as _C20, C22 as _C22

    env = lighting["env"]
    a, b, m = (np.asarray(env[k], np.float64) for k in ("a", "b", "m"))
    sh = np.zeros((9, 3))
    for c in range(3):
        mc = m[c]
        sh[0, c] = (a[c] + np.trace(mc) / 3) / _C0
        sh[1, c], sh[2, c], sh[3, c] = b[c, 1] / _C1, b[c, 2] / _C1, b[c, 0] / _C1
        sh[4, c] = 2 * mc[0, 1] / _C2
        sh[5, c] = 2 * mc[1, 2] / _C2
        sh[6, c] = (mc[2, 2] - 0.5 * (mc[0, 0] + mc[1, 1])) / (3 * _C20)
        sh[7, c] = 2 * mc[0, 2] / _C2
        sh[8, c] = 0.5 * (mc[0, 0] - mc[1, 1]) / _C22
    lights = [DirectionalLight(np.asarray(l["direction"], float) / np.linalg.norm(l["direction"]),
                               float(l["intensity"]) * np.asarray(l["color"], float)) for l in lighting["lights"]]
    return Lighting(sh=sh, lights=lights)


def gain_fit(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-channel least-squares gain ``g`` (``3``) so ``g * pred ~ target`` (``N x 3`` each)."""
    return (pred * target).sum(0) / np.maximum((pred * pred).sum(0), 1e-12)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of values in [0, 1]."""
    mse = float(np.mean((np.asarray(a, np.float64) - b) ** 2))
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM (``H x W x 3`` in [0, 1]) over ``mask``; ``a`` takes ``b``'s values outside it."""
    from skimage.metrics import structural_similarity

    a = np.where(mask[..., None], a, b)
    _, full = structural_similarity(a, b, channel_axis=2, data_range=1.0, full=True)
    return float(full[mask].mean())


def evaluate_relight(ict_dir: str, settings: RelightEvalSettings = RelightEvalSettings(),
                     progress: Callable[[Any], Any] = lambda it: it) -> RelightEvalResult:
    """Render ``settings.n`` held-out faces under two lights and score albedo and relighting."""
    from facenormals3d.data import render as engine_render
    from facenormals3d.data.ict import load_ict
    from facenormals3d.data.synth import SynthEngine, SynthSettings, sample_seed, identity_id
    from facenormals3d.pipeline import Reconstructor, ReconstructSettings

    model = load_ict(ict_dir)
    engine = SynthEngine(model, SynthSettings(camera_effects=False, occluder_rate=0.0))
    runner = Reconstructor(ReconstructSettings(weights=settings.weights, max_faces=1, device="cpu",
                                               texture_size=settings.texture_size))
    samples = []
    try:
        for i in progress(range(settings.n)):
            ident = identity_id(settings.seed, i, settings.split)
            seed = sample_seed(settings.seed, i)
            light_b = _second_light(settings.light_seed, i)
            record: dict[str, Any] = {"index": i, "identity": ident}
            try:
                a = engine.render(seed, ident)
                b = engine.render(seed, ident, lighting=light_b)
                rec_a = runner.run(a.image, f"sample {i} light A")[0]
                rec_b = runner.run(b.image, f"sample {i} light B")[0]
                record.update(score_pair(rec_a, rec_b, a, b, engine_lighting(light_b)))
            except InputError as err:
                record["error"] = f"{type(err).__name__}: {err}"
            samples.append(record)
    finally:
        runner.finder.close()
    return RelightEvalResult(rows=_rows(samples), samples=samples)


def _second_light(light_seed: int, index: int) -> dict:
    """A drawn engine light with at least one directional light and not low-key (a relight
    worth scoring, on a photo the face detector can still read)."""
    from facenormals3d.data.render import sample_lighting

    rng = np.random.default_rng([light_seed, index])
    while True:
        light = sample_lighting(rng)
        if light["lights"] and not light["low_key"]:
            return light


def score_pair(rec_a, rec_b, a, b, new_light) -> dict[str, float]:
    """Every score of one sample (see the module docstring)."""
    from facenormals3d.data.albedo import linear_to_srgb, srgb_to_linear
    from facenormals3d.face.crop import warp_to_photo
    from facenormals3d.raster import crop_view
    from facenormals3d.render.relight import render_lit

    fit = rec_a.fit
    app = fit.appearance
    if app is None:
        raise InputError("reconstruction", "has no albedo (ReconstructSettings.albedo is off)")
    size, shape = rec_a.face.transform.size, a.mask.shape
    # The engine's light is in its render camera's frame: turned into the rendered crop's own
    # camera's (what the crop shows), then into the levelled crop's (the mesh's frame).
    from facenormals3d.data.geometry import image_camera_rotation

    cam = a.params["camera"]["crop"]
    own = image_camera_rotation(cam["focal"], cam["cx"], cam["cy"], cam["size"]).T
    new_light = new_light.rotated(rec_a.face.transform.rotation_to_crop() @ own)
    view = crop_view(rec_a.frame)
    mesh = rec_a.mesh
    common = dict(view=view, normal_map=fit.normal_map, rasterizer="auto")

    def to_image(img: np.ndarray) -> np.ndarray:
        return warp_to_photo(img, rec_a.face.transform, shape, order=1)

    ours = render_lit(mesh.vertices, mesh.faces, mesh.corner_uvs, app.albedo, new_light,
                      specular_map=app.specular, **common)
    base = render_lit(mesh.vertices, mesh.faces, mesh.corner_uvs, mesh.texture, new_light, **common)
    inside = to_image((ours.coverage & rec_a.mask).astype(np.float32)) > 0.99
    mask = inside & a.mask & b.mask
    if mask.sum() < 100:
        raise InputError("evaluation mask", f"only {int(mask.sum())} pixels")
    target_lin = srgb_to_linear(b.image / 255.0)[mask]
    target = b.image[mask] / 255.0
    out: dict[str, float] = {"pixels": int(mask.sum())}
    for name, render in (("albedo", ours), ("texture", base)):
        pred = to_image(render.rgb)[mask]
        g = gain_fit(pred, target_lin)
        pred_srgb = linear_to_srgb(pred * g)
        out[f"{name}_relit_psnr"] = psnr(pred_srgb, target)
        full = np.zeros(shape + (3,), np.float32)
        full[mask] = pred_srgb
        out[f"{name}_relit_ssim"] = masked_ssim(full, (b.image / 255.0).astype(np.float32), mask)
        alb = to_image(render.albedo)[mask]
        ga = gain_fit(alb, a.albedo[mask])
        out[f"{name}_albedo_error"] = float(np.abs(alb * ga - a.albedo[mask]).mean() / a.albedo[mask].mean())
    diff = atlas_consistency(rec_a, rec_b)
    out.update({f"{k}_consistency": v for k, v in diff.items()})
    return out


def atlas_consistency(rec_a, rec_b, per_triangle: int = 6) -> dict[str, float]:
    """Gain-normalised mean absolute difference of A's and B's atlases (albedo, texture) on
    the face triangles both see squarely; see the module docstring."""
    from facenormals3d.fit.model import PART_FACE
    from facenormals3d.mesh.atlas import sample_points
    from facenormals3d.render.appearance import srgb8_to_linear

    model = rec_a.fit.model

    def facing(rec) -> np.ndarray:
        v = np.asarray(rec.mesh.vertices, np.float64)
        f = model.triangles
        n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        return n[:, 2] / np.maximum(np.linalg.norm(n, axis=1), 1e-12) > 0.3

    keep = np.flatnonzero((model.triangle_parts == PART_FACE) & facing(rec_a) & facing(rec_b))
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(3), size=(len(keep), per_triangle))  # T x k x 3
    uv = np.einsum("tkc,tcd->tkd", w, model.triangle_uvs[keep].astype(np.float64)).reshape(-1, 2)
    out = {}
    for name, get in (("albedo", lambda r: r.fit.appearance.albedo), ("texture", lambda r: r.mesh.texture)):
        vals = []
        for rec in (rec_a, rec_b):
            atlas = srgb8_to_linear(get(rec))
            h, wd = atlas.shape[:2]
            x = sample_points(atlas, np.stack([uv[:, 0] * wd, (1 - uv[:, 1]) * h], 1).astype(np.float32))
            vals.append(x / np.maximum(x.mean(0), 1e-6))
        out[name] = float(np.abs(vals[0] - vals[1]).mean())
    return out


def _rows(samples: list[dict]) -> list[dict[str, Any]]:
    ok = [s for s in samples if "error" not in s]
    rows = []
    for name in ("albedo", "texture"):
        row: dict[str, Any] = {"albedo_source": name if name == "albedo" else "texture.png (baseline)",
                               "samples": len(samples), "failed": len(samples) - len(ok)}
        for key in ("relit_psnr", "relit_ssim", "albedo_error", "consistency"):
            vals = [s[f"{name}_{key}"] for s in ok]
            row[key] = float(np.mean(vals)) if vals else float("nan")
        rows.append(row)
    if ok:
        rows[0]["psnr_gain_db"] = rows[0]["relit_psnr"] - rows[1]["relit_psnr"]
        rows[0]["consistency_ratio"] = rows[0]["consistency"] / max(rows[1]["consistency"], 1e-12)
    return rows
