"""``facenormals3d normals``: per-pixel face normals for photos, in the crop and in the photo."""

from __future__ import annotations

import argparse
from pathlib import Path

LAYOUT = """output layout, per photo OUT/<photo-stem>/:
  face_<k>/normals.png, normals.npy   normals in the 256x256 crop (16-bit RGB = (n+1)/2; float32, NaN outside)
  face_<k>/mask.png                   face mask in the crop
  face_<k>/crop.png                   the crop itself
  face_<k>/transform.json             crop <-> photo 2x3 matrices
  photo_normals.png, photo_normals.npy   all faces' normals warped back onto the photo's pixel grid
  photo_mask.png                      where photo_normals is defined
  preview.png                         photo | normals over the photo, and each crop | its normals

Normals are in camera space: x right, y up, z towards the camera, the camera looking at the
face (for a face far from the centre of a wide-angle photo, the photo's optical axis differs
by the face's angle off it; not applied: it needs the focal length). The crop is turned with
the face (its eye line horizontal); crop normals are in the crop's frame and are turned back
by the face's roll when warped onto the photo.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from facenormals3d.console import add_common_options, add_photo_command

    p = add_photo_command(sub, "normals", help="predict per-pixel face normals (crop and photo grid)",
                          description="Detect faces and predict camera-space normals with the "
                                      "cross-modal network; write them per crop and warped back "
                                      "into the photo, with a preview.",
                          layout=LAYOUT, network=True)
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facenormals3d.console import emit, network_settings, run_batch
    from facenormals3d.pipeline import Reconstructor, ReconstructSettings

    settings = ReconstructSettings(**network_settings(args), max_faces=args.max_faces)
    claimed: set[str] = set()
    with Reconstructor(settings) as rec:
        result = run_batch(args.photos, lambda p: _one_photo(Path(p), Path(args.out), rec, args.overwrite, claimed),
                           args=args, desc="normals")
    emit(args, result.summary(), result.human("photo"))
    return int(result.exit_code())


def _one_photo(path: Path, out: Path, rec, overwrite: bool, claimed: set[str]) -> dict:
    from facenormals3d.commands.photojob import open_photo
    from facenormals3d.conventions import normals_to_preview
    from facenormals3d.face.crop import normals_on_photo
    from facenormals3d.outputs import staged_dir
    from facenormals3d.writer import write_face_normals, write_photo_normals

    job = open_photo(path, out, claimed, rec.align_search)
    faces = job.faces
    on_photo, panels, labels = [], [], []
    with staged_dir(job.dest, overwrite=overwrite) as stage:
        # Smallest first so larger (nearer) faces win where faces overlap in the photo.
        for k, face in sorted(enumerate(faces), key=lambda kf: -kf[0]):
            normals, mask, _ = rec.predict_normals(face)
            d = stage / f"face_{k}"
            d.mkdir()
            write_face_normals(d, face, normals, mask)
            on_photo.append((normals, mask, face.transform))
            panels = [face.crop, normals_to_preview(normals, mask)] + panels
            labels = [f"face {k}", f"face {k} normals"] + labels
        photo_n, photo_m = normals_on_photo(on_photo, job.photo.pixels.shape[:2])
        write_photo_normals(stage, job.photo.pixels, photo_n, photo_m, panels, labels)
    return job.summary(faces=len(faces), face_details=job.face_details())
