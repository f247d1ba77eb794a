"""``facenormals3d faces``: detect faces, write aligned crops, masks, landmarks and overlays."""

from __future__ import annotations

import argparse
from pathlib import Path

LAYOUT = """output layout, per photo OUT/<photo-stem>/:
  overlay.png                 the photo with every face's box, number, landmarks, yaw and
                              warnings; faces left out in red
  faces.json                  per face: quality (detection score, landmark confidence,
                              yaw/pitch/roll, blur, size, warnings) and rotation; skipped_faces
  face_<k>/crop.png           256x256 aligned crop, face upright (k = 0 is the largest face)
  face_<k>/mask.png           face mask in the crop (255 = face; mouth opening removed)
  face_<k>/landmarks_photo.npy  478x3 float: x, y photo pixels (y down), z px towards the camera
  face_<k>/landmarks_crop.npy   478x3 float, same in crop pixels
  face_<k>/landmarks.json     both sets, plus detection score, box, quality and rotation
  face_<k>/transform.json     2x3 photo->crop and crop->photo matrices (a similarity; the
                              crop turns with the face's roll)
  face_<k>/coarse_normals.png 16-bit normal map of the landmark face (RGB = (n+1)/2, camera space)
  face_<k>/coarse_depth.npy   256x256 float32 depth of the landmark face in mm (NaN off the mesh)

Faces left out (beyond --max-faces, or confident detections whose landmarks failed the
checks) and faces that are likely guesses (near-profile, small, blurred, low landmark
confidence) get one warning line each on stderr; guesses are still written.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from facenormals3d.console import add_common_options, add_photo_command

    p = add_photo_command(sub, "faces", help="detect faces; write crops, masks, 478 landmarks, overlays",
                          description="Detect every face in each photo (mediapipe, offline), "
                                      "align a 256x256 crop per face and write it with its mask, "
                                      "landmarks, transform and coarse landmark-face maps.",
                          layout=LAYOUT)
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facenormals3d.console import emit, run_batch
    from facenormals3d.face.detect import DetectSettings, FaceFinder

    out = Path(args.out)
    claimed: set[str] = set()
    with FaceFinder(DetectSettings(max_faces=args.max_faces)) as finder:
        result = run_batch(args.photos, lambda p: _one_photo(Path(p), out, finder, args.overwrite, claimed),
                           args=args, desc="faces")
    emit(args, result.summary(), result.human("photo"))
    return int(result.exit_code())


def _one_photo(path: Path, out: Path, finder, overwrite: bool, claimed: set[str]) -> dict:
    from facenormals3d.commands.photojob import open_photo
    from facenormals3d.conventions import write_png
    from facenormals3d.face import report
    from facenormals3d.face.align import align_all
    from facenormals3d.outputs import staged_dir, write_json
    from facenormals3d.writer import write_aligned_face

    job = open_photo(path, out, claimed, lambda pixels, source: align_all(finder, pixels, source))
    faces, entries = job.faces, job.face_details()
    with staged_dir(job.dest, overwrite=overwrite) as stage:
        write_png(stage / "overlay.png", report.overlay(job.photo.pixels, faces, job.search))
        write_json(stage / "faces.json", {"source": str(path), "faces": entries,
                                          "skipped_faces": job.skipped_faces()})
        for k, face in enumerate(faces):
            d = stage / f"face_{k}"
            d.mkdir()
            write_aligned_face(d, face, str(path), entries[k])
    return job.summary(faces=len(faces), face_details=entries)
