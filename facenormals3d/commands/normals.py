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

Normals are in camera space: x right, y up, z towards the camera. The crop is turned with
the face (its eye line horizontal); crop normals are in the crop's frame and are turned back
by the face's roll when warped onto the photo.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from facenormals3d.console import add_common_options, add_network_options, add_photo_job_options

    p = sub.add_parser("normals", help="predict per-pixel face normals (crop and photo grid)",
                       description="Detect faces and predict camera-space normals with the "
                                   "cross-modal network; write them per crop and warped back "
                                   "into the photo, with a preview.",
                       epilog=LAYOUT, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_photo_job_options(p)
    add_network_options(p)
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facenormals3d.console import emit, run_batch
    from facenormals3d.pipeline import Reconstructor, ReconstructSettings

    settings = ReconstructSettings(normal_source=args.normal_source, weights=args.weights,
                                   max_faces=args.max_faces, device=args.device)
    claimed: set[str] = set()
    with Reconstructor(settings) as rec:
        result = run_batch(args.photos, lambda p: _one_photo(Path(p), Path(args.out), rec, args.overwrite, claimed),
                           args=args, desc="normals")
    emit(args, result.summary(), result.human("photo"))
    return int(result.exit_code())


def _one_photo(path: Path, out: Path, rec, overwrite: bool, claimed: set[str]) -> dict:
    import imageio.v3 as iio
    import numpy as np

    from facenormals3d.conventions import normals_to_preview, write_normal_png
    import logging

    from facenormals3d.face import report as report_faces
    from facenormals3d.face.crop import warp_to_photo
    from facenormals3d.outputs import staged_dir, write_json
    from facenormals3d.console import claim_stem
    from facenormals3d.photo import load_photo
    from facenormals3d.render.preview import contact_sheet

    claim_stem(path, claimed)
    photo = load_photo(path)
    h, w = photo.pixels.shape[:2]
    photo_n = np.zeros((h, w, 3), np.float32)
    photo_m = np.zeros((h, w), bool)
    panels, labels = [], []
    dest = out / photo.stem
    aligned, search = rec.align_search(photo.pixels, str(path))
    faces = [face for face, _ in aligned]
    report_faces.log_warnings(logging.getLogger("facenormals3d"), str(path), faces, search)
    with staged_dir(dest, overwrite=overwrite) as stage:
        # Smallest first so larger (nearer) faces win where faces overlap in the photo.
        for k, face in sorted(enumerate(faces), key=lambda kf: -kf[0]):
            normals, mask, _ = rec.predict_normals(face)
            d = stage / f"face_{k}"
            d.mkdir()
            write_normal_png(d / "normals.png", normals, mask)
            np.save(d / "normals.npy", normals)
            iio.imwrite(d / "mask.png", mask.astype(np.uint8) * 255)
            iio.imwrite(d / "crop.png", face.crop)
            write_json(d / "transform.json", face.transform.to_dict())
            # The crop is turned with the face: turn the normals back with it.
            back = warp_to_photo(np.nan_to_num(face.transform.directions_to_photo(normals)),
                                 face.transform, (h, w), order=1)
            back_m = warp_to_photo(mask.astype(np.uint8), face.transform, (h, w), order=0) > 0
            photo_n[back_m] = back[back_m]
            photo_m |= back_m
            panels = [face.crop, normals_to_preview(normals, mask)] + panels
            labels = [f"face {k}", f"face {k} normals"] + labels
        length = np.linalg.norm(photo_n, axis=-1, keepdims=True)
        photo_n = np.where(photo_m[..., None], photo_n / np.maximum(length, 1e-6), np.nan).astype(np.float32)
        write_normal_png(stage / "photo_normals.png", photo_n, photo_m)
        np.save(stage / "photo_normals.npy", photo_n)
        iio.imwrite(stage / "photo_mask.png", photo_m.astype(np.uint8) * 255)
        overlay = photo.pixels.copy()
        overlay[photo_m] = normals_to_preview(photo_n, photo_m)[photo_m]
        iio.imwrite(stage / "preview.png", _preview(photo.pixels, overlay, panels, labels, contact_sheet))
    return {"input": str(path), "output": str(dest), "faces": len(faces),
            "face_details": [{"face": k, **report_faces.face_entry(f, search)} for k, f in enumerate(faces)],
            "skipped_faces": report_faces.skipped_entries(search)}


def _preview(photo, overlay, panels, labels, contact_sheet):
    """Photo and normals-over-photo on top (scaled to 512 px tall), crop pairs below."""
    import numpy as np
    from PIL import Image

    def fit(img, height):
        h, w = img.shape[:2]
        return np.asarray(Image.fromarray(img).resize((max(1, round(w * height / h)), height)))

    top = contact_sheet([fit(photo, 512), fit(overlay, 512)], ["photo", "normals on the photo"])
    bottom = contact_sheet(panels, labels, columns=min(len(panels), 6))
    width = max(top.shape[1], bottom.shape[1])
    pad = lambda im: np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=255)
    return np.concatenate([pad(top), pad(bottom)], axis=0)
