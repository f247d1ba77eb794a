"""``facenormals3d relight``: photos -> the same photos with every face under a new light."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("facenormals3d")

#: Largest side (pixels) of a face render before it is pasted into the photo.
MAX_RENDER = 768
#: Soft edge of the pasted face, as a fraction of the render side.
FEATHER = 0.05
#: Turntable: frames per turn, picture side, milliseconds per frame.
TURNTABLE_FRAMES, TURNTABLE_SIZE, TURNTABLE_MS = 24, 320, 90


def _epilog() -> str:
    from facenormals3d.render.relight import PRESETS

    lines = ["light presets (--light NAME; directions in the photo's camera frame: x right, y up, z towards",
             "the camera):"]
    lines += [f"  {name:<10} {text}" for name, (text, _) in PRESETS.items()]
    lines += ["", "--light FILE.json takes a lighting.json written by `reconstruct` (or the same layout:",
              "  sh 9x3 irradiance, lights [{direction, color}], shininess), read in the photo's frame",
              "  (reconstruct writes it in its face's levelled crop frame, turned by transform.json's roll_deg).",
              "--direction X,Y,Z: one white light from that direction plus a soft ambient.",
              "", "--blend quotient (default): the photo times (render under the new light) / (render under",
              "  the photo's fitted light), so hair, eyes and skin detail stay the photo's; --blend paste:",
              "  the render itself (de-lit albedo, normal map, specular map) pasted in. Both cover the",
              "  whole rendered head with a soft edge.",
              "", "output layout, per photo OUT/<photo-stem>/:",
              "  relit_<light>.png            the photo with every face relit (soft-edged, over the head)",
              "  face_<k>/turntable_<light>.gif  with --turntable: the textured mesh turning under the light",
              "  summary in --json: files written per photo"]
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from facenormals3d.console import add_common_options, add_network_options, add_photo_job_options

    p = sub.add_parser("relight", help="photos -> the faces in them under new light",
                       description="Reconstruct each face (mesh, normal map, de-lit albedo, the photo's "
                                   "light), render it under new light with PyTorch3D and paste it back "
                                   "into the photo over the face with a soft edge.",
                       epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_photo_job_options(p)
    add_network_options(p)
    p.add_argument("--light", action="append", default=None, metavar="PRESET|FILE.json",
                   help="a preset name or a lighting JSON file; repeat for several (default: left, right, studio)")
    p.add_argument("--direction", action="append", default=None, metavar="X,Y,Z",
                   help="a light from this direction (camera frame); repeatable")
    p.add_argument("--turntable", action="store_true", help="also write a turning-head GIF per face and light")
    p.add_argument("--no-shadows", action="store_true", help="skip cast shadows (faster)")
    p.add_argument("--blend", choices=["quotient", "paste"], default="quotient",
                   help="how the relit face goes back into the photo (default quotient; see below)")
    add_common_options(p)
    p.set_defaults(func=run)


def parse_lights(lights: list[str] | None, directions: list[str] | None) -> dict[str, object]:
    """``{label: Lighting}`` from the --light and --direction values (InputError naming a bad one)."""
    import json

    import numpy as np

    from facenormals3d.errors import InputError
    from facenormals3d.render.lighting import Lighting
    from facenormals3d.render.relight import PRESETS, direction_lighting, preset_lighting

    out: dict[str, object] = {}
    for value in lights or ([] if directions else ["left", "right", "studio"]):
        if value in PRESETS:
            out[value] = preset_lighting(value)
            continue
        path = Path(value)
        if not path.is_file():
            raise InputError(value, f"neither a light preset ({', '.join(PRESETS)}) nor a file")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise InputError(value, f"unreadable lighting JSON ({err})") from None
        out[path.stem] = Lighting.from_dict(data, value)
    for value in directions or []:
        try:
            d = np.array([float(x) for x in value.split(",")])
        except ValueError:
            raise InputError("--direction", f"expected X,Y,Z numbers, got {value!r}") from None
        out["dir_" + "_".join(f"{x:g}" for x in d)] = direction_lighting(d)
    return out


def run(args: argparse.Namespace) -> int:
    from facenormals3d.console import emit, network_settings, run_batch
    from facenormals3d.pipeline import Reconstructor, ReconstructSettings

    lights = parse_lights(args.light, args.direction)
    settings = ReconstructSettings(**network_settings(args), max_faces=args.max_faces)
    out = Path(args.out)
    claimed: set[str] = set()
    with Reconstructor(settings) as rec:
        result = run_batch(args.photos, lambda p: _one_photo(Path(p), out, rec, lights, args, claimed),
                           args=args, desc="relight")
    emit(args, result.summary(), result.human("photo") + "".join(f"\n  {r['output']}" for r in result.succeeded))
    return int(result.exit_code())


def _one_photo(path: Path, out: Path, rec, lights: dict, args, claimed: set[str]) -> dict:
    import imageio.v3 as iio  # the turntable GIFs

    from facenormals3d.console import claim_stem
    from facenormals3d.conventions import write_png
    from facenormals3d.outputs import staged_dir
    from facenormals3d.photo import load_photo

    claim_stem(path, claimed)
    photo = load_photo(path)
    faces = [rec.reconstruct_face(face, str(path), k, t)
             for k, (face, t) in enumerate(rec.align(photo.pixels, str(path)))]
    faces = [f for f in faces if f.fit is not None and f.fit.appearance is not None]
    written = []
    with staged_dir(out / photo.stem, overwrite=args.overwrite) as stage:
        for label, lighting in lights.items():
            image = photo.pixels
            for face in faces:
                image = relight_face(image, face, lighting, shadows=not args.no_shadows, blend=args.blend)
            write_png(stage / f"relit_{label}.png", image)
            written.append(f"relit_{label}.png")
            if args.turntable:
                for face in faces:
                    (stage / f"face_{face.index}").mkdir(exist_ok=True)
                    name = f"face_{face.index}/turntable_{label}.gif"
                    frames = turntable(face, lighting, shadows=not args.no_shadows)
                    iio.imwrite(stage / name, frames, extension=".gif", duration=TURNTABLE_MS, loop=0)
                    written.append(name)
    return {"input": str(path), "output": str(out / photo.stem), "faces": len(faces), "files": written}


def relight_face(photo, rec, lighting, shadows: bool = True, blend: str = "quotient"):
    """``photo`` (uint8) with face ``rec`` under ``lighting``, blended in over the rendered head
    with a soft edge: ``quotient`` scales the photo by the new over the fitted light's render,
    ``paste`` pastes the render (see :mod:`facenormals3d.render.relight`)."""
    import dataclasses

    import numpy as np

    from facenormals3d.errors import InputError
    from facenormals3d.render.appearance import linear_to_srgb8
    from facenormals3d.raster import crop_view
    from facenormals3d.render.relight import (composite, composite_quotient, render_lit, shading_quotient,
                                              soft_alpha)

    if blend not in ("quotient", "paste"):
        raise InputError("--blend", f"must be quotient or paste, got {blend!r}")
    t = rec.face.transform
    lighting = lighting.rotated(t.rotation_to_crop())  # from the photo's camera frame into the levelled crop's
    size = int(np.clip(round(t.size / t.scale), t.size, MAX_RENDER))
    view = crop_view(rec.frame.resized(size))
    fit, mesh = rec.fit, rec.mesh

    def render(light):
        return render_lit(mesh.vertices, mesh.faces, mesh.corner_uvs, fit.appearance.albedo, light, view,
                          normal_map=fit.normal_map, specular_map=fit.appearance.specular, shadows=shadows)

    lit = render(lighting)
    alpha = soft_alpha(lit.coverage, FEATHER * size)
    if fit.person is not None:  # never over the photo's background (ears, neck beyond the silhouette)
        import cv2

        alpha = alpha * cv2.resize(fit.person, (size, size), interpolation=cv2.INTER_LINEAR)
    scaled = dataclasses.replace(t, matrix=t.matrix * (size / t.size), size=size)
    if blend == "paste":
        return composite(photo, linear_to_srgb8(lit.rgb), alpha, scaled)
    ratio, confidence = shading_quotient(lit, render(fit.appearance.lighting))
    return composite_quotient(photo, ratio, alpha * confidence, scaled)


def turntable(rec, lighting, shadows: bool = True) -> list:
    """Frames (uint8) of the textured mesh turning once under ``lighting`` (fixed to the camera)."""
    import numpy as np

    from facenormals3d.render.appearance import linear_to_srgb8
    from facenormals3d.raster import frame_mesh
    from facenormals3d.render.relight import render_lit

    mesh, fit = rec.mesh, rec.fit
    frames = []
    for yaw in np.linspace(-180.0, 180.0, TURNTABLE_FRAMES, endpoint=False):
        view = frame_mesh(mesh.vertices, yaw_deg=float(yaw), size=TURNTABLE_SIZE)
        lit = render_lit(mesh.vertices, mesh.faces, mesh.corner_uvs, fit.appearance.albedo, lighting, view,
                         normal_map=fit.normal_map, specular_map=fit.appearance.specular, shadows=shadows)
        frame = linear_to_srgb8(lit.rgb)
        frame[~lit.coverage] = 40
        frames.append(frame)
    return frames
