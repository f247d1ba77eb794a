"""Overlapping work with computation on a small machine: a background writer, a
background process and a read-ahead for photos.

``reconstruct`` computes a face on the main thread while a :class:`BackgroundWriter` writes
the previous face's files (PNG and zlib encoding and file writes spend much of their time
outside the GIL), a :class:`BackgroundProcess` renders its preview in a second Python
process (PyTorch3D's CPU rasteriser keeps the GIL for its whole call: measured here, a
Python loop on the main thread stalled 1.5 s during a 1.9 s rasterisation, so on a thread
the preview held up the next face), and a :class:`ReadAhead` decodes the next photo while
the current one is processed. Each runs one job at a time, in the order things were
submitted (the background process runs its urgent jobs, the network's, before the queued
ordinary ones; a caller about to wait for the writer may run the writer's jobs not yet begun
itself: :meth:`BackgroundWriter.run_here`). Every job writes its own files, so they are the
same bytes as a serial run's; at most ``depth`` items wait, so
memory stays bounded (a face's textures are ~35 MB).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Generic, Hashable, Sequence, TypeVar

T = TypeVar("T")


def finished(job: Callable[..., T], *args: Any, **kwargs: Any) -> Future:
    """``job(*args, **kwargs)`` run now, as a finished future: the serial stand-in for a
    queued job (its exception, if any, is raised by ``result()``)."""
    done: Future = Future()
    try:
        done.set_result(job(*args, **kwargs))
    except Exception as err:  # noqa: BLE001 - handed to the caller through the future
        done.set_exception(err)
    return done


class BackgroundWriter:
    """Runs submitted jobs one at a time, in order, on one worker thread.

    ``submit`` blocks while ``depth`` jobs are already waiting or running, so results that
    are still to be written never pile up. A caller about to wait for some jobs can run
    those the worker has not started yet itself (:meth:`run_here`), so that its idle core
    takes a share of the queue. ``threads=0`` runs each job at once on the caller's thread
    (the serial reference). Use as a context manager: leaving it waits for every job.
    """

    def __init__(self, depth: int = 1, threads: int = 1):
        import threading

        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if threads not in (0, 1):
            raise ValueError(f"threads must be 0 (serial) or 1, got {threads}")
        self.depth = depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facenormals3d-writer") if threads else None
        self._pending: list[Future] = []
        self._queued: dict[Future, tuple] = {}  # not started yet: future -> (job, args, kwargs)
        self._lock = threading.Lock()

    def submit(self, job: Callable[..., T], *args: Any, **kwargs: Any) -> Future:
        """Queue ``job(*args, **kwargs)``; its exception, if any, is raised by ``result()``."""
        if self._pool is None:
            return finished(job, *args, **kwargs)
        self._pending = [f for f in self._pending if not f.done()]
        while len(self._pending) >= self.depth:
            self._pending.pop(0).exception()  # wait for the oldest; its owner reads the result
        future: Future = Future()
        with self._lock:
            self._queued[future] = (job, args, kwargs)
        self._pool.submit(self._start, future)
        self._pending.append(future)
        return future

    def run_here(self, futures: Sequence[Any]) -> None:
        """Run, on the caller's thread, those of ``futures`` (this writer's; anything else is
        passed over) that the worker has not started yet, last first: the worker takes them
        from the front, the caller from the back. Each job still runs once, on one thread or
        the other. For a caller that would otherwise wait idle for them: on the 48 MP photo
        (faces largest first) the caller writes the small face, then the second large one,
        while the worker writes the first, so the previews can start sooner (7 interleaved
        runs: 4.91 s median against 5.21 in the given order, 5.6-6.3 s with the worker
        alone)."""
        for future in reversed(futures):
            self._start(future)

    def _start(self, future: Future) -> None:
        """Run ``future``'s job here unless another thread has taken it."""
        with self._lock:
            queued = self._queued.pop(future, None) if isinstance(future, Future) else None
        if queued is None or not future.set_running_or_notify_cancel():
            return
        job, args, kwargs = queued
        try:
            future.set_result(job(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(err)

    def close(self) -> None:
        """Wait for every job and stop the worker."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BackgroundProcess:
    """Runs submitted jobs one at a time, in order, in one separate Python process.

    The process is spawned (a fresh interpreter: nothing of this process's threads or
    state is inherited) when this object is made, and ``warm_up(*warm_args)`` runs there
    first, so its imports overlap this process's own work; it then serves every job
    (module-level functions, picklable arguments and results) over a pipe, fed by one
    thread here. An ``urgent`` job goes ahead of every queued ordinary job (urgent jobs
    keep their own order; a job already running is not interrupted): the network's
    answers, which the caller waits for, need not queue behind previews. ``ready`` says
    whether the warm-up is done. ``processes=0`` runs each job at once in the caller (the
    serial reference), without ``warm_up``.

    ``close`` waits for the queued jobs, then the process ends at once (``os._exit``: no
    interpreter teardown, which takes ~0.5 s with torch). If this process dies first, the
    pipe closes and the other ends too. Use as a context manager.
    """

    def __init__(self, warm_up: Callable[..., Any] | None = None, *warm_args: Any, processes: int = 1):
        if processes not in (0, 1):
            raise ValueError(f"processes must be 0 (serial) or 1, got {processes}")
        self._process = self._conn = self._feeder = self._warm = None
        if processes:
            import itertools
            import multiprocessing
            import queue
            import threading

            ctx = multiprocessing.get_context("spawn")
            self._conn, child = ctx.Pipe()
            self._process = ctx.Process(target=_serve, args=(child,), name="facenormals3d-worker", daemon=True)
            self._process.start()
            child.close()  # only the process holds its end: it sees EOF when this one dies
            # (rank, submission number, future, job, args); rank 0 urgent, 1 ordinary, 2 stop.
            self._queue: queue.PriorityQueue = queue.PriorityQueue()
            self._order = itertools.count()
            self._feeder = threading.Thread(target=self._feed, name="facenormals3d-feeder", daemon=True)
            self._feeder.start()
            self._warm = self.submit(warm_up if warm_up is not None else _nothing, *warm_args, urgent=True)

    @property
    def in_process(self) -> bool:
        """True when jobs run in the caller (``processes=0``)."""
        return self._process is None

    @property
    def ready(self) -> bool:
        """True once the process has started and run its warm-up (always, in process)."""
        return self._warm is None or self._warm.done()

    def submit(self, job: Callable[..., T], *args: Any, urgent: bool = False) -> Future:
        """Queue ``job(*args)`` (``urgent``: ahead of the ordinary jobs still queued); its
        exception, if any, is raised by ``result()``."""
        if self._feeder is None:
            return finished(job, *args)
        future: Future = Future()
        self._queue.put((0 if urgent else 1, next(self._order), future, job, args))
        return future

    def _feed(self) -> None:
        """The feeder thread: send the queued jobs one at a time, settle their futures."""
        while True:
            rank, _, future, job, args = self._queue.get()
            if rank == 2:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._call(job, args))
            except BaseException as err:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(err)

    def _call(self, job: Callable[..., T], args: tuple) -> T:
        self._conn.send((job, args))
        ok, value = self._conn.recv()
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Wait for every queued job, then end the process."""
        if self._feeder is not None:
            self._queue.put((2, next(self._order), None, None, None))  # after every queued job
            self._feeder.join()
            try:
                self._conn.send(None)
            except OSError:
                pass  # already gone
            self._conn.close()
            self._process.join(timeout=10)
            self._feeder = self._conn = None

    def __enter__(self) -> "BackgroundProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _nothing() -> None:
    return None


def _serve(conn) -> None:
    """The worker process of :class:`BackgroundProcess`: run ``(job, args)`` messages in
    order and send back ``(True, result)`` or ``(False, exception)``; end on None or EOF."""
    import os

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = None
        if message is None:
            os._exit(0)
        job, args = message
        try:
            reply = (True, job(*args))
        except Exception as err:  # noqa: BLE001 - raised by the caller's future
            reply = (False, err)
        try:
            conn.send(reply)
        except Exception as err:  # noqa: BLE001 - e.g. a result or exception that cannot be pickled
            conn.send((False, RuntimeError(f"{type(err).__name__}: {err} (sending {type(reply[1]).__name__})")))


class ReadAhead(Generic[T]):
    """``get(key)`` returns ``load(key)`` and starts loading the key after it in ``keys``.

    With a thread, the first key starts loading at once (e.g. a photo decodes while the
    caller imports and loads its models). Exceptions of ``load`` are raised by the ``get``
    that asks for that key, as if it had been called right there. ``threads=0`` loads on
    the caller's thread, on demand or ahead when :meth:`load_next` says so.
    """

    def __init__(self, keys: Sequence[Hashable], load: Callable[[Any], T], threads: int = 1):
        self._keys = list(keys)
        self._load = load
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facenormals3d-read") if threads else None
        self._ahead: dict[int, Future] = {}
        self._next = 0
        if self._pool is not None and self._keys:
            self._ahead[0] = self._pool.submit(self._load, self._keys[0])

    def get(self, key: Hashable) -> T:
        try:
            index = self._keys.index(key, self._next)
        except ValueError:
            index = self._keys.index(key)
        self._next = index + 1
        future = self._ahead.pop(index, None)
        for stale in [i for i in self._ahead if i < index]:  # keys that were skipped
            self._ahead.pop(stale).cancel()
        if self._pool is not None and index + 1 < len(self._keys) and index + 1 not in self._ahead:
            self._ahead[index + 1] = self._pool.submit(self._load, self._keys[index + 1])
        return future.result() if future is not None else self._load(key)

    def load_next(self) -> None:
        """Load the key after the last one asked for now, on the caller's thread (its ``get``
        then returns it at once): for work that must happen at a chosen moment, such as
        queueing the next photo's network calls before this photo's previews."""
        index = self._next
        if index < len(self._keys) and index not in self._ahead:
            self._ahead[index] = finished(self._load, self._keys[index])

    def close(self) -> None:
        """Drop what was read ahead and never asked for; stop the worker."""
        if self._pool is not None:
            for future in self._ahead.values():
                future.cancel()
            self._pool.shutdown(wait=True)
        self._ahead.clear()

    def __enter__(self) -> "ReadAhead[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
