"""What every per-photo command (``faces``, ``normals``, ``reconstruct``) does around its own
work on one photo: claim the output folder's name, read the photo, find and align its
faces, log their warnings, and describe the photo in the run's summary."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("facenormals3d")


@dataclass
class PhotoJob:
    """One photo of a run, its faces found."""

    path: Path
    """The input file."""
    photo: Any
    """:class:`facenormals3d.photo.Photo` (pixels, stem)."""
    aligned: list
    """``(AlignedFace, timings)`` per face, largest first."""
    search: Any
    """:class:`facenormals3d.face.detect.FaceSearch`: skipped faces, turns searched."""
    dest: Path
    """The photo's output folder ``OUT/<photo-stem>``."""

    @property
    def faces(self) -> list:
        return [face for face, _ in self.aligned]

    def skipped_faces(self) -> list[dict]:
        from facenormals3d.face.report import skipped_entries

        return skipped_entries(self.search)

    def face_details(self) -> list[dict]:
        """Per face: its number and :func:`facenormals3d.face.report.face_entry`."""
        from facenormals3d.face.report import face_entry

        return [{"face": k, **face_entry(face, self.search)} for k, face in enumerate(self.faces)]

    def summary(self, **fields) -> dict[str, Any]:
        """The photo's entry in the run's summary: input, output, ``fields``, skipped faces."""
        return {"input": str(self.path), "output": str(self.dest), **fields,
                "skipped_faces": self.skipped_faces()}


def open_photo(item: str | Path, out: Path, claimed: set[str], align: Callable, photos=None) -> PhotoJob:
    """Start the job of one photo: refuse a second input with the same stem in this run
    (``claimed``), read the photo (from ``photos``, a :class:`~facenormals3d.overlap.ReadAhead`,
    when given), ``align(pixels, source) -> (aligned, search)`` it (e.g.
    :meth:`facenormals3d.pipeline.Reconstructor.align_search`) and log its faces' warnings."""
    from facenormals3d.console import claim_stem
    from facenormals3d.face.report import log_warnings
    from facenormals3d.photo import load_photo

    path = Path(item)
    claim_stem(path, claimed)
    photo = photos.get(item) if photos is not None else load_photo(path)
    aligned, search = align(photo.pixels, str(path))
    log_warnings(log, str(path), [face for face, _ in aligned], search)
    return PhotoJob(path=path, photo=photo, aligned=aligned, search=search, dest=out / photo.stem)
