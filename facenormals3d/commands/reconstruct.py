"""``facenormals3d reconstruct``: photos -> textured face meshes, previews and reports."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Callable

from facenormals3d.errors import ExitCode, FaceNormalsError

log = logging.getLogger("facenormals3d")

LAYOUT = """output layout, per photo OUT/<photo-stem>/ (written under a temporary name, then renamed):
  overlay.png                  the photo with every face's box, number, landmarks, yaw, warnings
  face_<k>/mesh.obj, mesh.mtl, texture.png   textured mesh (mm, y up, z towards the camera)
  face_<k>/mesh.ply            binary PLY with vertex normals and colours
  --mesh fit (default) also writes:
  face_<k>/normal_map.png      tangent-space normal map (16-bit, OpenGL +y) in the texture's UV layout
  face_<k>/blendshapes.npz     names (53,) and deltas (53 x V x 3 float32, mm): expression shape keys
  face_<k>/fit.json            identity and expression coefficients, pose, residuals
  face_<k>/albedo.png          de-lit diffuse albedo in texture.png's layout (sRGB); the MTL's map_Kd
  face_<k>/specular.png        low-resolution specular strength map in the same layout
  face_<k>/lighting.json       the photo's light: SH irradiance + dominant directional light (camera frame)
  The fitted mesh has the face model's topology: the same vertex count and order for every
  face and photo (vertex i is the same point of the face for everyone). texture.png is a
  2:1 atlas (face left, head right) unwrapped from the full-resolution photo; parts the
  photo does not show are mirrored from the other side or filled smoothly.
  face_<k>/normals.png, .npy   predicted normals in the crop (16-bit RGB = (n+1)/2; float, NaN outside)
  face_<k>/depth.npy           256x256 height map in mm (z towards the camera), NaN outside the mask
  face_<k>/mask.png            pixels that became the mesh
  face_<k>/landmarks7.npy      7x3 NoW landmarks on the mesh (mm): eye corners, nose bottom, mouth corners
  face_<k>/landmarks.npy       all 478 landmarks on the mesh (mm); landmarks_photo.npy: photo pixels
  face_<k>/transform.json      crop <-> photo 2x3 matrices
  face_<k>/preview.png         crop | normals | mesh front, 3/4 views | textured
  face_<k>/report.json         timings per stage, settings, model version, metric-scale assumption,
                               quality (detection score, landmark confidence, yaw/pitch/roll,
                               blur, face size, warnings), rotation, skipped_faces of the photo

normals.*, depth.npy and mask.png are the integrated surface before the mesh's outline
relaxation and before --refine; mesh.* are the final surface.
Metric scale: the outer eye corners are assumed 90 mm apart (adult mean).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from facenormals3d.pipeline import ReconstructSettings
    from facenormals3d.console import add_common_options, add_photo_command

    p = add_photo_command(sub, "reconstruct", help="photos -> detailed textured face meshes (the main job)",
                          description="Detect faces, predict normals with the cross-modal network, "
                                      "fuse them with the landmark face into depth, and write a "
                                      "textured mesh, maps, a preview and a report per face.",
                          layout=LAYOUT, network=True)
    p.add_argument("--integration", default=ReconstructSettings.integration, choices=["fusion", "poisson", "bilateral"],
                   help="normals -> depth: fusion with the depth of the face fitted to the landmarks (default), plain "
                        "Poisson, or discontinuity-preserving bilateral")
    p.add_argument("--prior-weight", type=float, default=ReconstructSettings.prior_weight,
                   help="fusion: weight of the fitted face's depth against the normals (default 3e-3)")
    p.add_argument("--mesh", default=ReconstructSettings.mesh, choices=["fit", "depth"],
                   help="fit: the face model fitted to the landmarks and normals, full head, "
                        "animatable (default); depth: the visible surface as a depth-map mesh")
    p.add_argument("--texture-size", type=_texture_size, default=ReconstructSettings.texture_size, metavar="PX",
                   help="fitted mesh: texture and normal-map height in pixels (the atlas is twice as wide); "
                        "default auto: per face 512 or 1024, about two texels per photo pixel on the face "
                        "(a bigger texture would only interpolate the photo); the size used is in report.json")
    p.add_argument("--no-previews", action="store_true",
                   help="skip preview.png (the slowest file; tools that import the mesh don't need it)")
    p.add_argument("--threads", type=int, default=ReconstructSettings.threads, metavar="N",
                   help="CPU threads of the network and of numpy's OpenBLAS, per process (default 1: "
                        "the network is small, photos run in parallel processes instead (--jobs), and "
                        "two threads took up to 1 s a call when the other core was busy)")
    p.add_argument("--jobs", type=int, default=0, metavar="N",
                   help="photos reconstructed at once, each worker process running whole photos "
                        "(default 0: one per CPU core, at most one per photo and per 2 GB of available "
                        "memory; on 2 cores one, with the network and previews in a helper process; "
                        "the same files either way)")
    p.add_argument("--serial", action="store_true",
                   help="one process that computes, writes files and reads the next photo one "
                        "after another on one thread (the same files; with --jobs 1 a face's files "
                        "are written while the next face is computed, the next photo is read ahead "
                        "and started, and the network and previews run in a helper process)")
    p.add_argument("--refine", type=int, default=ReconstructSettings.refine_iterations, metavar="N",
                   help="N iterations of shading-consistency refinement (default 0 = off)")
    add_common_options(p)
    # Results are complete when run() returns: the process may end without teardown (cli.main).
    p.set_defaults(func=run, exit_without_teardown=True)


def _texture_size(text: str) -> int | None:
    """``--texture-size`` value: ``auto`` (None) or a height of at least 8 pixels."""
    if text == "auto":
        return None
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number of pixels, got {text!r}") from None
    if size < 8:
        raise argparse.ArgumentTypeError(f"must be at least 8 pixels, got {size}")
    return size


def run(args: argparse.Namespace) -> int:
    import contextlib

    from facenormals3d.console import emit, network_settings, run_batch
    from facenormals3d.device import keep_freed_memory
    from facenormals3d.overlap import BackgroundProcess, BackgroundWriter, ReadAhead
    from facenormals3d.photo import load_photo
    from facenormals3d.pipeline import Reconstructor, ReconstructSettings
    from facenormals3d.writer import preview_renderer, start_renderer

    settings = ReconstructSettings(**network_settings(args), integration=args.integration,
                                   prior_weight=args.prior_weight, refine_iterations=args.refine,
                                   max_faces=args.max_faces, mesh=args.mesh, texture_size=args.texture_size,
                                   threads=args.threads)
    if args.threads < 1 or args.jobs < 0:
        log.error("--threads must be >= 1 and --jobs >= 0, got %d and %d", args.threads, args.jobs)
        return int(ExitCode.USAGE)
    out = Path(args.out)
    keep_freed_memory()  # full-atlas arrays reuse freed memory instead of faulting in fresh pages
    # The network and previews in a helper process pay with a second core (none on one).
    helper_ok = (settings.normal_source == "network" and settings.refine_iterations == 0 and _cores() > 1
                 and max(map(_pixels, args.photos), default=0) <= HELPER_MAX_PIXELS)
    jobs = 1 if args.serial else min(args.jobs or _default_jobs(helper_ok), len(args.photos))
    if jobs > 1:
        result = _run_in_processes(args, settings, out, jobs)
    else:
        claimed: set[str] = set()
        workers = 0 if args.serial else 1
        with contextlib.ExitStack() as stack:
            # The first photo decodes on its thread meanwhile the models load (OpenCV's and
            # Pillow's decoders release the GIL). Its decoders are imported here first: while
            # OpenCV imports, its own folder is on sys.path, and a process spawned then (the
            # helper below) inherits that path and takes cv2/typing for Python's typing.
            import cv2  # noqa: F401
            from PIL import Image  # noqa: F401

            photos = stack.enter_context(ReadAhead(args.photos, load_photo, workers))
            helper = ahead = None
            if workers and helper_ok:
                # The network and the previews run in a helper process, so this one never
                # imports torch; the helper imports it and loads the weights on the other core
                # meanwhile. Each photo's faces are started (network asked) before the previous
                # photo's are finished, so the helper never makes the next network call wait
                # behind a preview (`bench pipeline`).
                helper = stack.enter_context(BackgroundProcess())
            rec = stack.enter_context(Reconstructor(settings, helper=helper))
            if args.no_previews:
                renderer = None
            elif helper is not None:
                renderer = helper
                helper.submit(start_renderer, args.threads)  # after the network's load (jobs run in order)
            else:
                # Several photos: previews are rendered in a second process once it has
                # started (its imports take ~2.5 s of CPU, which pays back over a batch; until
                # then, and with --serial, they are rendered here).
                renderer = stack.enter_context(preview_renderer(args.threads, workers if len(args.photos) > 1 else 0))
            # With the helper the writer bakes each face's textures and estimates its albedo
            # (finish_face(defer_appearance=True)): a deeper queue lets this thread go on with
            # the next faces meanwhile. (It does not wait for the previews: the photo's finish()
            # does, before its report.json files.)
            writer = stack.enter_context(BackgroundWriter(depth=HELPER_WRITE_DEPTH if helper else 1,
                                                          threads=workers))
            if helper is not None:
                # Photos opened and started one ahead, on this thread, when _one_photo says.
                ahead = stack.enter_context(ReadAhead(args.photos, lambda p: _start_photo(p, out, rec, claimed, photos),
                                                      threads=0))
            result = run_batch(args.photos, lambda p: _one_photo(p, out, rec, args.overwrite, claimed,
                                                                 renderer, photos, writer, ahead),
                               args=args, desc="reconstruct")
    face_failures = [f for r in result.succeeded for f in r.get("failed_faces", [])]
    emit(args, result.summary(), result.human("photo") + (
        f"\n{len(face_failures)} face(s) failed inside otherwise written photos" if face_failures else "")
        + "".join(f"\n  {r['output']}" for r in result.succeeded))
    code = result.exit_code()
    if any(f["kind"] == "internal" for f in face_failures):
        code = ExitCode.INTERNAL
    elif face_failures and code == ExitCode.OK:
        code = ExitCode.PARTIAL
    return int(code)


#: The network helper process holds ~0.7 GB of its own (torch, PyTorch3D): with a photo
#: larger than this the network and previews run in the reconstructing process, so that
#: all processes together stay under 2 GB. Measured on the 48 MP photo of `bench pipeline`
#: (2026-12-06, resident sizes summed, an upper bound): with the helper 5.4-6.0 s and
#: 1.77 GB, without it 6.8-6.9 s and 1.59-1.75 GB. Since the main thread writes the faces the
#: writer has not begun when it would wait for them (``BackgroundWriter.run_here``), two faces'
#: atlases are baked at once: 5.4-5.8 s and 1.79-1.86 GB, against 5.6-6.3 s and 1.72-1.73 GB
#: in the same session; taken last first, 4.70-5.19 s and 1.73-1.90 GB. (Before the previews
#: stopped importing open3d for their hidden-face ray casts, the helper took 1.93-1.97 GB at
#: 48 MP and was kept to 16 MP.) A photo's pixels cost 3 bytes each in the main process:
#: 100 MP would add ~0.16 GB to the 48 MP figure.
HELPER_MAX_PIXELS = 50_000_000

#: Faces whose files may be queued or being written while the next faces are computed, with
#: the network and previews in a helper process (each holds its textures: ~15 MB at the 512
#: atlas, ~60 MB at 1024).
HELPER_WRITE_DEPTH = 3

#: Memory one photo worker may take (peak ~1.7 GB on a 48 MP photo, `bench pipeline`).
WORKER_BYTES = 2 * 1024**3


#: Up to this many CPU cores, a run whose network can go to a helper process (network
#: normals, no refinement) uses one photo worker, this process, with the helper: measured on
#: 2 cores (the 12-face batch of `bench pipeline`, 3 interleaved runs, 2026-12-06) 14.09 s
#: against 14.69 s for two photo workers, 1.57 GB against 2.08 GB for all processes together.
HELPER_MAX_CORES = 2


def _default_jobs(helper: bool = False) -> int:
    """One photo worker per CPU core this process may use, at most one per
    :data:`WORKER_BYTES` of available memory (at least 1); 1 with ``helper`` (the network
    can run in a helper process) on at most :data:`HELPER_MAX_CORES` cores."""
    cores = _cores()
    if helper and cores <= HELPER_MAX_CORES:
        return 1
    return max(1, min(cores, _available_memory(cores * WORKER_BYTES) // WORKER_BYTES))


def _cores() -> int:
    """CPU cores this process may use."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _available_memory(unknown: int) -> int:
    """Bytes of memory available to new processes: Linux's MemAvailable (free memory plus
    what the page cache can give back), else the free pages; ``unknown`` where neither exists."""
    import os

    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return unknown


def _run_in_processes(args: argparse.Namespace, settings, out: Path, jobs: int):
    """Reconstruct the photos in ``jobs`` worker processes (spawned; each builds one
    :class:`~facenormals3d.pipeline.Reconstructor` and runs whole photos serially, taking the
    next photo when it is free). Output names are claimed here, in input order, before any
    photo starts, and results are reported in input order: the files are those of a serial
    run. Returns :func:`facenormals3d.console.run_batch`'s result."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from facenormals3d.console import claim_stem, run_batch

    claimed: set[str] = set()
    tasks: list = []
    for item in args.photos:
        try:
            claim_stem(Path(item), claimed)
            tasks.append(None)
        except FaceNormalsError as err:  # reported in its place by run_batch
            tasks.append(err)
    # Largest photos first (more faces, more pixels): the last photo started decides when the
    # batch ends, so it should be a short one.
    order = sorted((k for k, t in enumerate(tasks) if t is None), key=lambda k: -_pixels(args.photos[k]))
    level = logging.getLogger("facenormals3d").getEffectiveLevel()
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_worker, initargs=(settings, level)) as pool:
        for k in order:
            tasks[k] = pool.submit(_photo_in_worker, args.photos[k], out, args.overwrite, not args.no_previews)
        pending = iter(tasks)

        def collect(item: str) -> dict:
            task = next(pending)  # run_batch asks in input order
            if isinstance(task, Exception):
                raise task
            return task.result()

        return run_batch(args.photos, collect, args=args, desc="reconstruct")


def _pixels(path: str) -> int:
    """Width x height from the image file's header (0 when it cannot be read: it fails fast)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.width * img.height
    except Exception:  # noqa: BLE001 - only an ordering hint; the worker reports the error
        return 0


#: State of a photo worker process (:func:`_start_worker`): its reconstructor. Empty in the
#: main process.
_WORKER: dict = {}


def _start_worker(settings, level: int) -> None:
    """In a photo worker: log like the main process, build the reconstructor once."""
    import torch

    from facenormals3d.console import log_to_stderr
    from facenormals3d.device import keep_freed_memory
    from facenormals3d.pipeline import Reconstructor

    keep_freed_memory()
    log_to_stderr(level)
    torch.set_num_threads(settings.threads)
    rec = Reconstructor(settings)
    rec.__enter__()  # its thread limits hold for the worker's life; the process ends with the pool
    _WORKER["rec"] = rec


def _photo_in_worker(item: str, out: Path, overwrite: bool, previews: bool) -> dict:
    """One photo in a worker, serially: :func:`_one_photo` with in-process writing and previews."""
    from facenormals3d.overlap import BackgroundWriter
    from facenormals3d.writer import preview_renderer

    renderer = preview_renderer(processes=0) if previews else None
    return _one_photo(item, out, _WORKER["rec"], overwrite, set(), renderer, None, BackgroundWriter(threads=0))()


def _start_photo(item: str, out: Path, rec, claimed: set[str], photos) -> tuple:
    """Open one photo (:func:`~facenormals3d.commands.photojob.open_photo`) and start its
    faces (:meth:`~facenormals3d.pipeline.Reconstructor.start_face`, every face's network
    input first: with the network in a helper process, their normals are computed there
    before a preview queues behind them). Returns ``(job, started, seconds)``: ``started``
    holds each face's started face, or the exception that stopped it."""
    import time

    from facenormals3d.commands.photojob import open_photo

    t0 = time.perf_counter()
    job = open_photo(item, out, claimed, rec.align_search, photos)
    started = []
    for k, (face, timings) in enumerate(job.aligned):
        try:
            started.append(rec.start_face(face, str(job.path), k, timings))
        except Exception as err:  # noqa: BLE001 - one bad face must not lose the others
            started.append(err)
    return job, started, time.perf_counter() - t0


def _one_photo(item: str, out: Path, rec, overwrite: bool, claimed: set[str], renderer,
               photos, writer, ahead=None):
    """One photo: its faces are computed here and their files queued on ``writer``
    (:class:`~facenormals3d.overlap.BackgroundWriter`), their previews on ``renderer``
    (:func:`facenormals3d.writer.preview_renderer`; None: no previews); ``photos`` reads ahead;
    ``ahead`` (a caller-thread :class:`~facenormals3d.overlap.ReadAhead` of
    :func:`_start_photo`) starts the next photo's faces before this one's are finished, so
    with the network in a helper process their normals queue there before this photo's
    previews (the helper runs its jobs in order).

    Returns ``finish()``: it waits for the files, renames the photo's folder into place and
    returns the photo's summary entry (:func:`facenormals3d.console.run_batch` calls it
    after the next photo is computed, so this photo's files and previews are written
    meanwhile). Nothing of the photo is left on disk when it fails.
    """
    import contextlib
    import time

    from facenormals3d.conventions import write_png
    from facenormals3d.face import report as report_faces
    from facenormals3d.outputs import staged_dir

    if ahead is not None:
        job, started, start_s = ahead.get(item)
        ahead.load_next()
    else:
        job, started, start_s = _start_photo(item, out, rec, claimed, photos)
    t0 = time.perf_counter()
    skipped = job.skipped_faces()
    stack = contextlib.ExitStack()
    stage = stack.enter_context(staged_dir(job.dest, overwrite=overwrite))
    queued, outcomes = [], []
    try:
        queued.append(writer.submit(_write_overlay, stage / "overlay.png", job))
        for k, start in enumerate(started):
            folder = stage / f"face_{k}"
            try:
                if isinstance(start, Exception):
                    raise start
                # With the helper (photos up to HELPER_MAX_PIXELS) the texture bake and the
                # albedo estimate run on the writer thread with the files (numpy and OpenCV
                # release the GIL there), so this thread goes on to the next face; on larger
                # photos two faces' atlas arrays at once would cost ~0.15 GB more.
                r = rec.finish_face(start, defer_appearance=ahead is not None)
                r.info["skipped_faces"] = skipped
                folder.mkdir()
                outcomes.append(writer.submit(_write_face, r, folder, job.dest, renderer, job.search))
            except Exception as err:  # noqa: BLE001 - one bad face must not lose the others
                outcomes.append(err)
    except BaseException:
        with stack:  # removes the stage, once nothing writes into it any more
            _wait(queued + outcomes)
            raise
    compute_s = time.perf_counter() - t0

    def finish() -> dict:
        t1 = time.perf_counter()
        with stack:
            # This thread would wait idle: it writes the faces the writer has not begun.
            writer.run_here(queued + outcomes)
            _wait(queued + outcomes)  # nothing may still write into the stage when it is renamed
            queued[0].result()
            faces, failed = _face_results(job, stage, outcomes)
        # Wall clock of the photo: read (or waited for) and started, computed, and its files
        # waited for and renamed into place (not the next photo's work done in between).
        return {"input": str(job.path), "output": str(job.dest), "faces": faces, "failed_faces": failed,
                "skipped_faces": skipped,
                "seconds": start_s + compute_s + time.perf_counter() - t1}

    return finish


def _write_overlay(path: Path, job) -> None:
    """``overlay.png`` of a photo's faces (:func:`facenormals3d.face.report.overlay`; on the
    writer thread: shrinking a large photo for it takes ~0.2 s at 48 MP)."""
    from facenormals3d.conventions import write_png
    from facenormals3d.face import report as report_faces

    write_png(path, report_faces.overlay(job.photo.pixels, job.faces, job.search))


def _wait(tasks: list) -> None:
    """Wait for every future among ``tasks`` (exceptions stay in them)."""
    for task in tasks:
        if not isinstance(task, Exception):
            task.exception()


def _face_results(job, stage: Path, outcomes: list) -> tuple[list[dict], list[dict]]:
    """The summary entries of a photo's written faces, and its failed faces (their folders
    removed: a face folder is complete or absent, mesh tools must never see half of one).
    Raises the first face's error when no face was written."""
    import shutil

    faces, failed = [], []
    first_error: Exception | None = None
    for k, outcome in enumerate(outcomes):
        try:
            if isinstance(outcome, Exception):
                raise outcome
            faces.append(outcome.result()())  # the files, then the preview and report (_write_face)
        except Exception as err:  # noqa: BLE001 - one bad face must not lose the others
            shutil.rmtree(stage / f"face_{k}", ignore_errors=True)
            kind = "input" if isinstance(err, FaceNormalsError) else "internal"
            log.error("%s: face %d failed (%s): %s: %s", job.path, k, kind, type(err).__name__, err)
            failed.append({"face": k, "kind": kind, "error": f"{type(err).__name__}: {err}"})
            first_error = first_error or err
    if not faces:
        raise first_error
    return faces, failed


def _write_face(r, folder: Path, dest: Path, renderer, search) -> Callable[[], dict]:
    """Every file of one face but its report (on the writer thread; the preview by
    ``renderer``, None: none); returns ``entry()``, which waits for the preview, writes
    ``report.json`` and gives the face's entry of the summary (the writer thread goes on
    with the next face meanwhile: :func:`~facenormals3d.writer.start_write_face`)."""
    from facenormals3d.writer import start_write_face
    from facenormals3d.face import report as report_faces

    finish = start_write_face(r, folder, previews=renderer is not None, renderer=renderer)

    def entry() -> dict:
        report = finish()
        return {"face": r.index, "folder": str(dest / folder.name), "vertices": report["mesh"]["vertices"],
                "seconds": sum(r.timings.values()), **report_faces.face_entry(r.face, search)}

    return entry
