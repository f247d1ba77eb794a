"""Render a whole dataset with worker processes and write it as shards (``facenormals3d synth``).

Workers are separate processes (spawned, one BLAS/open3d thread each); each loads the
model from the .npz cache once and renders the indices it is handed. Sample ``i``
depends only on ``(seed, i)``, so the result does not depend on the worker count.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

#: Environment that keeps numeric libraries to one thread inside a worker.
ONE_THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                   "NUMEXPR_NUM_THREADS")}
#: Samples kept for the contact sheet.
SHEET_SAMPLES = 64

# Per-process engine of a worker. A process-wide slot is what Pool initialisers offer;
# it holds read-only data and is set once per worker process.
_WORKER: dict = {}


def _init_worker(ict_dir: str, settings_dict: dict) -> None:
    import cv2

    from facenormals3d.data.ict import load_ict
    from facenormals3d.data.synth import SynthEngine, SynthSettings

    cv2.setNumThreads(1)  # OpenCV's own pool ignores ONE_THREAD_ENV

    _WORKER["engine"] = SynthEngine(load_ict(ict_dir), SynthSettings.from_dict(settings_dict))


def _render_encoded(job: tuple[int, int]) -> tuple[int, str, dict, dict]:
    from facenormals3d.data.shards import encode

    seed, index = job
    sample = _WORKER["engine"].render_index(seed, index)
    return index, sample.split, encode(sample), sample.params


@contextlib.contextmanager
def one_thread_env() -> Iterator[None]:
    """Set :data:`ONE_THREAD_ENV` while worker processes are spawned."""
    old = {k: os.environ.get(k) for k in ONE_THREAD_ENV}
    os.environ.update(ONE_THREAD_ENV)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def render_stream(ict_dir: str, settings, seed: int, indices: list[int], workers: int):
    """Yield ``(index, split, encoded arrays, params)`` in index order."""
    jobs = [(int(seed), int(i)) for i in indices]
    if workers <= 1:
        _init_worker(str(ict_dir), settings.to_dict())
        try:
            yield from map(_render_encoded, jobs)
        finally:
            _WORKER.clear()
        return
    ctx = mp.get_context("spawn")
    with one_thread_env():
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(str(ict_dir), settings.to_dict()))
    with pool:
        yield from pool.imap(_render_encoded, jobs, chunksize=4)


@dataclass
class GenerateResult:
    """What :func:`generate` wrote."""

    counts: dict
    """Samples per split."""
    seconds: float
    """Wall time of rendering and writing."""
    manifest: dict
    """The manifest written."""


def generate(ict_dir: str | Path, n: int, out: Path, seed: int = 0, workers: int = 1, settings=None,
             shard_size: int = 256, progress: Callable | None = None) -> GenerateResult:
    """Render ``n`` samples into the (staging) folder ``out``: shards, manifest, contact sheet.

    ``progress(iterable, total)`` may wrap the sample stream (a progress bar).
    """
    from facenormals3d import __version__
    from facenormals3d.conventions import write_png
    from facenormals3d.data import shards
    from facenormals3d.data.ict import load_ict
    from facenormals3d.data.synth import SPLITS, SynthSettings
    from facenormals3d.outputs import atomic_write, write_json

    settings = settings if settings is not None else SynthSettings()
    load_ict(ict_dir)  # validate and cache before the workers start
    out = Path(out)
    writer = shards.ShardWriter(out, shard_size)
    sheet: list[dict] = []
    t0 = time.perf_counter()
    stream = render_stream(str(ict_dir), settings, seed, list(range(int(n))), workers)
    if progress is not None:
        stream = progress(stream, int(n))
    for index, split, arrays, params in stream:
        writer.add(split, arrays, {"index": index, "split": split, **params})
        if len(sheet) < SHEET_SAMPLES:
            sheet.append(arrays)
    written = writer.close()
    seconds = time.perf_counter() - t0
    counts = {sp: sum(s["count"] for s in written.get(sp, [])) for sp in SPLITS}
    atomic_write(out / "contact_sheet.png", lambda p: write_png(p, shards.contact_sheet(sheet)))
    manifest = {
        "format": "facenormals3d-synth", "layout_version": shards.LAYOUT_VERSION,
        "facenormals3d_version": __version__, "n": int(n), "seed": int(seed),
        "ict_dir": str(Path(ict_dir).resolve()), "settings": settings.to_dict(),
        "counts": counts, "shards": {sp: written.get(sp, []) for sp in SPLITS},
        "split_rule": "identity id mod 20: 0 -> test, 1 -> val, otherwise train",
        "layout": shards.__doc__, "seconds": round(seconds, 2), "workers": int(workers),
        "samples_per_second": round(n / max(seconds, 1e-9), 2),
    }
    write_json(out / "manifest.json", manifest)
    return GenerateResult(counts=counts, seconds=seconds, manifest=manifest)

