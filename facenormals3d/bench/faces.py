"""``facenormals3d bench faces``: face finding on a 48-megapixel photo, time and memory.

The photo is built here (nothing big is committed): an 8000 x 6000 canvas holding the
astronaut portrait (scikit-image, public domain) at 6x, 2x and 1x. A child process reads it
from JPEG, warms the face finder on the 512 x 512 original, then times the search on the
original (the in-run reference) and on the 48 MP photo, and reports its peak resident
memory. Targets (issue 14): face finding <= 3 s, peak memory <= 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from facenormals3d.bench import BenchReport, target

DESCRIPTION = ("find faces in a 48 MP photo built from the astronaut portrait (decode, search, "
               "align; peak memory of a fresh process), against the 512 px original in the same run")

#: Canvas size and the astronaut's scale factors placed on it.
CANVAS = (6000, 8000)
SCALES = (6.0, 2.0, 1.0)

_CHILD = r"""
import json, resource, sys, time
import numpy as np
import skimage.data
from facenormals3d.face.align import align_face
from facenormals3d.face.detect import FaceFinder
from facenormals3d.photo import load_photo

small = skimage.data.astronaut()
out = {}
with FaceFinder() as finder:
    finder.search(small)
    ts = []
    for _ in range(3):
        t = time.perf_counter(); finder.search(small); ts.append(time.perf_counter() - t)
    out["reference_s"] = min(ts)
    t = time.perf_counter(); photo = load_photo(sys.argv[1]).pixels; out["decode_s"] = time.perf_counter() - t
    t = time.perf_counter(); search = finder.search(photo); out["search_s"] = time.perf_counter() - t
    t = time.perf_counter(); faces = [align_face(photo, f) for f in search.faces]
    out["align_s"] = time.perf_counter() - t
    out["faces"] = len(search.faces)
    out["megapixels"] = photo.shape[0] * photo.shape[1] / 1e6
out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
print(json.dumps(out))
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quality", type=int, default=90, help="JPEG quality of the built photo")


def build_photo(path: Path, quality: int = 90) -> int:
    """Write the 48 MP test photo to ``path`` (JPEG); returns how many faces it holds."""
    import numpy as np
    import skimage.data
    from PIL import Image

    head = Image.fromarray(skimage.data.astronaut())
    canvas = np.empty((*CANVAS, 3), np.uint8)
    canvas[:] = np.linspace(90, 200, CANVAS[1])[None, :, None].astype(np.uint8)
    x = 200
    for s in SCALES:
        side = int(512 * s)
        img = np.asarray(head.resize((side, side), Image.BICUBIC))
        y = (CANVAS[0] - side) // 2
        canvas[y:y + side, x:x + side] = img
        x += side + 300
    Image.fromarray(canvas).save(path, quality=quality)
    return len(SCALES)


def run(args: argparse.Namespace) -> BenchReport:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "48mp.jpg"
        expected = build_photo(path, args.quality)
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                              check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench faces: child process failed: {proc.stderr.strip()[-500:]}")
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = [{"photo": "astronaut 512x512 (reference)", "search_s": round(m["reference_s"], 3)},
            {"photo": f"built {m['megapixels']:.0f} MP", "decode_s": round(m["decode_s"], 3),
             "search_s": round(m["search_s"], 3), "align_s": round(m["align_s"], 3),
             "faces": f"{m['faces']}/{expected}", "peak_rss_gb": round(m["peak_rss_gb"], 3)}]
    notes = [f"48 MP search / 512 px search: {m['search_s'] / m['reference_s']:.1f}x",
             "face finding = FaceFinder.search on the decoded photo (detection pyramid, landmarks, "
             "checks); align = crops, quality and blur per face; peak_rss_gb is the child "
             "process's whole peak (Python, mediapipe, the decoded photo)"]
    targets = [target("48 MP face finding, seconds", m["search_s"], 3.0),
               target("48 MP peak memory, GB", m["peak_rss_gb"], 1.5),
               target("faces missed on the 48 MP photo", expected - m["faces"], 0)]
    return BenchReport(name="faces", rows=rows, targets=targets, notes=notes)
