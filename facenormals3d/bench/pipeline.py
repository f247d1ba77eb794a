"""``facenormals3d bench pipeline``: reconstruct as users meet it, and per stage.

Measured here, each against a reference timed in the same run (seconds swing on a shared
machine; ratios hold):

* **import floor** (the reference): a fresh Python that only imports what ``reconstruct``
  cannot do without (torch, open3d, mediapipe, PyTorch3D's rasteriser, scipy, pyamg);
* **cold, one photo**: ``facenormals3d reconstruct`` on the astronaut as a new process,
  every file written (median of ``--cold-repeats``);
* **batch of 12 faces**: one ``reconstruct`` process over six single-face 512^2 photos and a
  six-face group photo (all built here from the astronaut portrait), every file written,
  wall clock per face including start-up;
* **48 MP photo**: ``reconstruct`` processes on the 48 MP photo of ``bench faces`` (three
  faces; as many as ``--cold-repeats``), the median wall clock and the largest peak resident
  memory;
* **warm, per stage**: one face in a warm process (network and, as the in-process
  reference, the landmark baseline), with writing and the preview timed apart.

Targets (issue 15, 2 cores): <= 1.0 s per face in the batch, <= 3.0 s cold for one photo,
48 MP <= 4 s and <= 2 GB. ``--device cuda`` runs all of it on CUDA (untested: no GPU here).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from facenormals3d.bench import BenchReport, target

DESCRIPTION = ("reconstruct as users meet it: cold start on one photo, a 12-face batch and a 48 MP "
               "photo as fresh processes with every file written, against an import-only process "
               "timed in the same run; and each stage of one face, warm")

#: What a fresh ``reconstruct`` process has to import whatever it does (the reference).
#: ``import facenormals3d`` first: it defers the plotting stacks open3d and mediapipe would
#: otherwise import (:mod:`facenormals3d.deferred`), as in ``reconstruct`` itself.
IMPORT_FLOOR = ("import facenormals3d, numpy, scipy.ndimage, scipy.sparse, pyamg, cv2, PIL.Image, torch, open3d; "
                "from mediapipe.python.solutions import face_detection, face_mesh; "
                "from pytorch3d import _C")

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeats", type=int, default=3, help="warm timed runs per configuration (median kept)")
    p.add_argument("--cold-repeats", type=int, default=3, help="fresh processes for the cold, floor and 48 MP timings")
    p.add_argument("--refine-iterations", type=int, default=0,
                   help="also time the refinement with this many iterations (default 0: skip)")
    p.add_argument("--no-48mp", action="store_true", help="skip the 48 MP photo")
    p.add_argument("--weights", default=None, help="network weights (default: shipped)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of the network (reconstruct's default: 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where torch runs (cuda: untested, no GPU was available when this was written)")


def batch_photos(folder: Path) -> tuple[list[Path], int]:
    """Six single-face 512^2 photos and one six-face group photo from the astronaut portrait
    (mirrored, turned a little, zoomed); returns the paths and the number of faces."""
    import numpy as np
    import skimage.data
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    base = Image.fromarray(skimage.data.astronaut())
    variants = [base, base.transpose(Image.FLIP_LEFT_RIGHT),
                base.rotate(8, resample=Image.BICUBIC, fillcolor=(128, 128, 128)),
                base.rotate(-8, resample=Image.BICUBIC, fillcolor=(128, 128, 128)),
                base.crop((40, 0, 472, 432)).resize((512, 512), Image.BICUBIC),
                base.transpose(Image.FLIP_LEFT_RIGHT).crop((0, 20, 460, 480)).resize((512, 512), Image.BICUBIC)]
    paths = []
    for k, img in enumerate(variants):
        paths.append(folder / f"single_{k}.png")
        img.save(paths[-1])
    head = skimage.data.astronaut()[20:230, 130:320]
    canvas = np.empty((1000, 1800, 3), np.uint8)
    canvas[:] = np.linspace(120, 220, 1800)[None, :, None].astype(np.uint8)
    for k, s in enumerate([1.0, 1.2, 1.4, 1.1, 1.3, 1.5]):
        h = np.asarray(Image.fromarray(head).resize((round(190 * s), round(210 * s)), Image.BICUBIC))
        if k % 2:
            h = h[:, ::-1]
        r, c = divmod(k, 3)
        y, x = 60 + r * 470, 80 + c * 580
        canvas[y:y + h.shape[0], x:x + h.shape[1]] = h
    paths.append(folder / "group.png")
    Image.fromarray(canvas).save(paths[-1])
    return paths, len(variants) + 6


def _fresh_process(argv: list[str]) -> dict:
    """``python -m facenormals3d argv`` as users run it: wall clock (interpreter start and
    exit included), the largest peak resident memory of the process and its waited-for
    children (``wait4``), and the peak of the whole process tree's memory summed
    (:class:`_TreeMemory`: with its helper or worker processes)."""
    import os

    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "facenormals3d", *argv], stdout=subprocess.DEVNULL,
                                stderr=err)
        with _TreeMemory(proc.pid) as tree:
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            raise RuntimeError(f"bench pipeline: reconstruct exited {code}: "
                               f"{err.read().decode(errors='replace').strip()[-800:]}")
    return {"wall_s": wall, "peak_rss_gb": usage.ru_maxrss / 1024 ** 2, "tree_rss_gb": tree.peak / 1024 ** 3}


class _TreeMemory:
    """Samples the resident memory of a process and all its descendants every
    :attr:`INTERVAL_S` on a thread; ``peak``: the largest sum seen, bytes. Resident sizes
    (``VmRSS``) count pages shared between the processes (the Python and numpy libraries
    both map) in each, so the sum is an upper bound; proportional sizes (``smaps_rollup``)
    are ~1000x dearer to read (18 ms for a 2 GB process here, slowing the run measured) and
    split pages with unrelated processes (a training run mapping the same torch). Processes
    that live shorter than one interval can be missed."""

    INTERVAL_S = 0.05

    def __init__(self, pid: int):
        import threading

        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "_TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL_S):
            self.peak = max(self.peak, sum(_resident(p) for p in _descendants(self.pid)))


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux ``/proc/PID/task/*/children``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return out


def _resident(pid: int) -> int:
    """Resident bytes of ``pid`` (``VmRSS``); 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _fresh_memory_note() -> str:
    """How dear fresh memory is on this machine now: each run faults in ~1 GB it has never
    touched, and on a virtual machine whose host has taken freed memory back, touching 500
    MB was measured at 0.04 s one moment and 1.2 s the next."""
    import numpy as np

    t0 = time.perf_counter()
    np.ones(256 << 20, np.uint8)
    return f"256 MB of fresh memory took {time.perf_counter() - t0:.3f} s to touch (~0.02 s on a quiet host)"


def _import_floor() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORT_FLOOR], check=True, capture_output=True)
    return time.perf_counter() - t0


def _faces_written(out: Path) -> int:
    return sum(1 for _ in out.glob("*/face_*/mesh.obj"))


def _processes(args: argparse.Namespace, tmp: Path) -> tuple[list[dict], list[dict], list[str]]:
    """Rows, targets and notes of the fresh-process measurements."""
    import skimage.data
    from PIL import Image

    common = ["--device", args.device, "-q"] + (["--weights", args.weights] if args.weights else [])
    one = tmp / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(one)
    floors, colds = [], []
    for k in range(max(1, args.cold_repeats)):
        # Interleaved, so both see the same machine load.
        floors.append(_import_floor())
        colds.append(_fresh_process(["reconstruct", str(one), "-o", str(tmp / f"cold{k}"), *common])["wall_s"])
    floor, cold = statistics.median(floors), statistics.median(colds)
    photos, n_faces = batch_photos(tmp / "batch")
    batch = _fresh_process(["reconstruct", *map(str, photos), "-o", str(tmp / "batch_out"), *common])
    written = _faces_written(tmp / "batch_out")
    per_face = batch["wall_s"] / max(written, 1)
    rows = [{"run": "import floor (reference)", "wall_s": round(floor, 3)},
            {"run": "cold, 1 photo, 1 face", "wall_s": round(cold, 3), "x_floor": round(cold / floor, 2),
             "faces": _faces_written(tmp / "cold0")},
            {"run": f"batch, {len(photos)} photos", "wall_s": round(batch["wall_s"], 3),
             "x_floor": round(batch["wall_s"] / floor, 2), "faces": f"{written}/{n_faces}",
             "s_per_face": round(per_face, 3), "peak_rss_gb": round(batch["peak_rss_gb"], 3),
             "tree_rss_gb": round(batch["tree_rss_gb"], 3)}]
    targets = [target("batch of 12 faces, wall seconds per face incl. start-up and every file", per_face, 1.0),
                target("one face from a cold start, wall seconds", cold, 3.0)]
    notes = [f"fresh processes, medians of {len(colds)} (cold: {', '.join(f'{c:.2f}' for c in colds)}; "
             f"floor: {', '.join(f'{f:.2f}' for f in floors)}); every file written incl. preview.png",
             f"cold minus import floor: {cold - floor:.2f} s (model start-up, first calls, one face, files)",
             "peak_rss_gb: the largest of the reconstruct process and its helper or photo worker "
             "processes (wait4 gives the maximum over a process and its waited-for children); "
             "tree_rss_gb: the peak of all of them together (resident sizes summed every 50 ms: "
             "an upper bound, pages they share count in each)"]
    if not args.no_48mp:
        from facenormals3d.bench.faces import build_photo

        big = tmp / "48mp.jpg"
        expected = build_photo(big)
        runs = [_fresh_process(["reconstruct", str(big), "-o", str(tmp / f"big_out{k}"), *common])
                for k in range(max(1, args.cold_repeats))]
        wall = statistics.median(r["wall_s"] for r in runs)
        peak, tree = max(r["peak_rss_gb"] for r in runs), max(r["tree_rss_gb"] for r in runs)
        got = min(_faces_written(tmp / f"big_out{k}") for k in range(len(runs)))
        rows.append({"run": "48 MP photo", "wall_s": round(wall, 3), "x_floor": round(wall / floor, 2),
                     "faces": f"{got}/{expected}", "s_per_face": round(wall / max(got, 1), 3),
                     "peak_rss_gb": round(peak, 3), "tree_rss_gb": round(tree, 3)})
        targets += [target("48 MP photo end to end (cold process, every file), seconds", wall, 4.0),
                    target("48 MP photo peak memory (all its processes' resident memory summed), GB",
                           max(peak, tree), 2.0)]
        walls = ", ".join(f"{r['wall_s']:.2f}" for r in runs)
        notes.append(f"48 MP photo: median of {len(runs)} fresh processes ({walls} s), memory the largest of "
                     f"them; {_fresh_memory_note()}")
    return rows, targets, notes


def _warm(args: argparse.Namespace) -> tuple[list[dict], list[dict], list[str]]:
    """One face per stage in a warm process: network, and the landmark baseline as reference."""
    import skimage.data

    from facenormals3d.device import keep_freed_memory
    from facenormals3d.pipeline import Reconstructor, ReconstructSettings
    from facenormals3d.writer import write_face

    keep_freed_memory()  # as reconstruct's processes run (after the fresh-process runs above)
    image = skimage.data.astronaut()
    rows, walls = [], {}
    for source in ("network", "landmarks"):
        settings = ReconstructSettings(normal_source=source, weights=args.weights, device=args.device,
                                       threads=args.threads)
        runs = []
        with Reconstructor(settings) as rec, tempfile.TemporaryDirectory() as tmp:
            rec.run(image)  # warm-up: graph start, first-call allocations, atlas raster
            for k in range(max(1, args.repeats)):
                t0 = time.perf_counter()
                r = rec.run(image)[0]
                folder = Path(tmp) / f"face{k}"
                folder.mkdir()
                write_face(r, folder)
                runs.append((time.perf_counter() - t0, dict(r.timings)))
        wall, timings = sorted(runs, key=lambda x: x[0])[len(runs) // 2]
        walls[source] = wall
        rows.append({"source": source, **{k: round(v * 1000, 1) for k, v in timings.items()},
                     "end_to_end_ms": round(wall * 1000, 1)})
    notes = ["warm stages in ms (median run); end_to_end_ms = Reconstructor.run + write_face "
             "(every file incl. the 3-view PyTorch3D preview), no refinement",
             f"network / landmark-baseline end-to-end ratio: {walls['network'] / walls['landmarks']:.2f}"]
    targets = [target("warm end to end per face (every file), seconds", walls["network"], 1.0)]
    # The face-model fit: landmark stage + dense stage of the default (network) run, beside
    # the landmark-only stage timed in the same run.
    fit_timings = rows[0]
    fit_s = (fit_timings.get("fit_landmarks", 0.0) + fit_timings.get("fit_dense", 0.0)) / 1000
    targets.append(target("face-model fit seconds per face (landmark + dense stages)", fit_s, 0.3))
    notes.append(f"landmark-only fit stage {fit_timings.get('fit_landmarks', 0.0):.1f} ms, dense stage "
                 f"{fit_timings.get('fit_dense', 0.0):.1f} ms (same run)")
    if args.refine_iterations > 0:
        settings = ReconstructSettings(weights=args.weights, device=args.device,
                                       refine_iterations=args.refine_iterations)
        with Reconstructor(settings) as rec:
            r = rec.run(image)[0]
        ref = r.info["refine"]
        rows.append({"source": f"network + refine {args.refine_iterations}",
                     "refine": round(r.timings["refine"] * 1000, 1),
                     "ms_per_iteration": round(ref["seconds_per_iteration"] * 1000, 1)})
    return rows, targets, notes


def run(args: argparse.Namespace) -> BenchReport:
    with tempfile.TemporaryDirectory() as tmp:
        rows, targets, notes = _processes(args, Path(tmp))
    warm_rows, warm_targets, warm_notes = _warm(args)
    return BenchReport(name="pipeline", rows=rows + warm_rows, targets=targets + warm_targets,
                       notes=notes + warm_notes + [f"device: {args.device}"])
