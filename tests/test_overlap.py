"""Overlapped reconstruct (writer thread, preview process, photo read-ahead) writes the same
bytes as a serial run."""

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from facenormals3d.cli import main
from facenormals3d.errors import ExitCode
from facenormals3d.overlap import BackgroundProcess, BackgroundWriter, ReadAhead


def test_writer_runs_jobs_in_order_off_the_caller_thread_and_hands_back_errors():
    seen = []

    def job(k):
        time.sleep(0.01 * (k % 2))
        seen.append((k, threading.current_thread().name))
        if k == 3:
            raise ValueError("bad face")
        return k * 10

    with BackgroundWriter(depth=2) as w:
        futures = [w.submit(job, k) for k in range(5)]
    assert [k for k, _ in seen] == list(range(5))
    assert all(name.startswith("facenormals3d-writer") for _, name in seen)
    assert [f.result() for f in futures[:3]] == [0, 10, 20]
    with pytest.raises(ValueError, match="bad face"):
        futures[3].result()
    serial = BackgroundWriter(threads=0)
    assert serial.submit(job, 4).result() == 40 and seen[-1][1] == threading.current_thread().name


def test_writer_run_here_takes_the_jobs_not_begun_onto_the_caller_thread_last_first_each_run_once():
    release, begun, runs = threading.Event(), threading.Event(), []

    def job(k):
        runs.append((k, threading.current_thread().name))
        if k == 0:
            begun.set()
            assert release.wait(5)
        if k == 2:
            raise ValueError("bad face")
        return k * 10

    with BackgroundWriter(depth=4) as w:
        futures = [w.submit(job, k) for k in range(4)]
        assert begun.wait(5)  # the worker holds job 0: jobs 1-3 are not begun
        w.run_here([futures[1], "an earlier failure", futures[2], futures[3]])
        release.set()
        here = threading.current_thread().name
        assert runs[1:] == [(3, here), (2, here), (1, here)]  # last first: the worker takes the front
        assert [f.result() for f in (futures[0], futures[1], futures[3])] == [0, 10, 30]
        with pytest.raises(ValueError, match="bad face"):
            futures[2].result()
        w.run_here(futures)  # all done: nothing runs twice
    assert sorted(k for k, _ in runs) == [0, 1, 2, 3]
    assert runs[0][1].startswith("facenormals3d-writer")


def _pid_and(k):
    import os

    if k == 2:
        raise ValueError("bad job")
    return os.getpid(), k * 10


def test_background_process_runs_jobs_in_order_in_another_process_and_hands_back_errors():
    import os

    with BackgroundProcess(_pid_and, 1) as proc:
        futures = [proc.submit(_pid_and, k) for k in range(4)]
        assert [f.result()[1] for f in (futures[0], futures[1], futures[3])] == [0, 10, 30]
        assert proc.ready and not proc.in_process
        with pytest.raises(ValueError, match="bad job"):
            futures[2].result()
        worker = proc._process
        assert futures[0].result()[0] == worker.pid != os.getpid()
    assert not worker.is_alive()  # close() ended it
    serial = BackgroundProcess(_pid_and, 1, processes=0)
    assert serial.in_process and serial.ready
    assert serial.submit(_pid_and, 4).result() == (os.getpid(), 40)


_RUN_ORDER = []  # in the worker process: the jobs of _ordered, as they ran


def _ordered(name, sleep=0.0):
    time.sleep(sleep)
    _RUN_ORDER.append(name)
    return list(_RUN_ORDER)


def test_urgent_jobs_go_ahead_of_queued_ordinary_ones_but_not_of_a_running_one():
    with BackgroundProcess() as proc:
        proc.submit(_ordered, "warm").result()
        first = proc.submit(_ordered, "slow", 0.5)  # running while the rest are queued
        while not first.running():
            time.sleep(0.005)
        later = [proc.submit(_ordered, "a"), proc.submit(_ordered, "b"),
                 proc.submit(_ordered, "u1", urgent=True), proc.submit(_ordered, "u2", urgent=True)]
        assert later[-1].result() == ["warm", "slow", "u1", "u2"]
        assert later[1].result() == ["warm", "slow", "u1", "u2", "a", "b"]
        assert first.done()
    serial = BackgroundProcess(processes=0)  # in process: everything at once, in call order
    assert serial.submit(_ordered, "x", urgent=True).result()[-1] == "x"


def test_preview_rendered_in_the_renderer_process_is_the_same_bytes(tmp_path):
    from facenormals3d.writer import PreviewInputs, preview_renderer, write_preview

    # A textured UV sphere: every view hides about half of its faces.
    rng = np.random.default_rng(0)
    u, v = np.meshgrid(np.linspace(0, np.pi, 12), np.linspace(0, 2 * np.pi, 24), indexing="ij")
    verts = np.stack([np.sin(u) * np.cos(v), np.sin(u) * np.sin(v), np.cos(u)], -1).reshape(-1, 3) * 80
    idx = np.arange(12 * 24).reshape(12, 24)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    uvs = (np.stack([v / (2 * np.pi), u / np.pi], -1).reshape(-1, 2)).astype(np.float32)
    normals = np.dstack([np.zeros((32, 32, 2)), np.ones((32, 32))]).astype(np.float32)
    inputs = PreviewInputs(crop=rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), normals=normals,
                           mask=np.ones((32, 32), bool), vertices=verts.astype(np.float32), faces=faces,
                           texture=rng.integers(0, 255, (16, 32, 3), dtype=np.uint8), uvs=uvs)
    write_preview(tmp_path / "here.png", inputs)
    with preview_renderer(threads=1) as renderer:
        seconds = renderer.submit(write_preview, tmp_path / "there.png", inputs).result()
    assert seconds > 0
    assert (tmp_path / "here.png").read_bytes() == (tmp_path / "there.png").read_bytes()


def _recording_load(loads: list):
    """A ReadAhead loader that records its keys, upper-cases them and fails on "b"."""

    def load(key):
        loads.append(key)
        if key == "b":
            raise OSError("unreadable")
        return key.upper()

    return load


def test_read_ahead_loads_the_next_key_and_raises_where_asked():
    loads = []
    with ReadAhead(["a", "b", "c", "d"], _recording_load(loads)) as r:
        assert r.get("a") == "A"
        with pytest.raises(OSError, match="unreadable"):
            r.get("b")
        assert r.get("d") == "D"  # "c" was read ahead and is dropped
    assert sorted(loads[:2]) == ["a", "b"] and "d" in loads


def test_read_ahead_starts_on_the_first_key_at_once():
    import threading

    started = threading.Event()

    def load(key):
        started.set()
        return key.upper()

    with ReadAhead(["a", "b"], load) as r:
        assert started.wait(5.0)  # before any get()
        assert r.get("a") == "A"


def test_read_ahead_on_the_callers_thread_loads_the_next_key_when_told():
    # threads=0: nothing is loaded ahead unless load_next() says so, then on this thread;
    # its get() returns the result, or raises its exception, without loading again.
    loads = []
    with ReadAhead(["a", "b", "c"], _recording_load(loads), threads=0) as r:
        assert r.get("a") == "A" and loads == ["a"]
        r.load_next()
        assert loads == ["a", "b"]
        with pytest.raises(OSError, match="unreadable"):
            r.get("b")
        assert r.get("c") == "C" and loads == ["a", "b", "c"]
        r.load_next()  # nothing after the last key
    assert loads == ["a", "b", "c"]


def _tree(root: Path) -> dict:
    """Every file's bytes; JSON files without their timings (they differ run to run)."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if "seconds" not in k}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            rel = str(p.relative_to(root))
            out[rel] = strip(json.loads(p.read_text())) if p.suffix == ".json" else p.read_bytes()
    return out


def _difference(name: str, a, b) -> str:
    """Where two versions of one file differ: for images and arrays, how many pixels and
    where (so a rare mismatch in CI says which pixels moved), else that the content does."""
    import io

    from PIL import Image

    if name.endswith((".png", ".npy")):
        x, y = ((np.asarray(Image.open(io.BytesIO(v))) if name.endswith(".png") else np.load(io.BytesIO(v)))
                for v in (a, b))
        if x.shape != y.shape:
            return f"{name}: shapes {x.shape} vs {y.shape}"
        same = x == y
        if x.dtype.kind == "f":
            same |= np.isnan(x) & np.isnan(y)
        if same.ndim > 2:  # a pixel differs when any of its channels does
            same = same.reshape(same.shape[0], same.shape[1], -1).all(axis=-1)
        where = np.argwhere(~same)
        return f"{name}: {len(where)} pixels differ, first (row, col) {where[:8].tolist()}"
    return f"{name}: content differs"


def _assert_same_files(serial: dict, other: dict, run: str) -> None:
    """Every file of ``serial`` is in ``other`` with the same content (see :func:`_tree`);
    the failure lists every differing file."""
    assert serial.keys() == other.keys(), (run, sorted(serial.keys() ^ other.keys()))
    differing = [_difference(name, serial[name], other[name]) for name in serial if serial[name] != other[name]]
    assert not differing, (run, differing)


def test_overlapped_run_writes_the_same_files_as_a_serial_run(astronaut, tmp_path, capsys):
    from PIL import Image

    photos = []
    for name, img in (("a", astronaut), ("b", np.ascontiguousarray(astronaut[:, ::-1]))):
        photos.append(tmp_path / f"{name}.png")
        Image.fromarray(img).save(photos[-1])
    options = ["--normals", "landmarks", "--texture-size", "64", "-q"]
    common = ["reconstruct", *map(str, photos), *options]
    assert main(common + ["-o", str(tmp_path / "serial"), "--serial"]) == 0
    assert main(common + ["-o", str(tmp_path / "overlap"), "--jobs", "1"]) == 0  # threads + preview process
    # Two photo workers, with an unreadable photo and a second photo of the same stem among
    # the good ones: those two fail alone (their errors cross the process boundary as the same
    # one-line errors), in input order; the good photos are the serial run's bytes.
    bad = tmp_path / "broken.jpg"
    bad.write_text("not an image")
    (tmp_path / "twin").mkdir()
    twin = tmp_path / "twin" / "a.png"
    twin.write_bytes(photos[0].read_bytes())
    capsys.readouterr()
    code = main(["reconstruct", str(photos[0]), str(bad), str(photos[1]), str(twin), *options, "--json",
                 "-o", str(tmp_path / "processes"), "--jobs", "2"])
    assert code == ExitCode.PARTIAL
    summary = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in summary["succeeded"]] == [str(photos[0]), str(photos[1])]
    assert [f["input"] for f in summary["failed"]] == [str(bad), str(twin)]
    assert "broken.jpg: not a readable image" in summary["failed"][0]["error"]
    assert {f["kind"] for f in summary["failed"]} == {"input"}
    serial = _tree(tmp_path / "serial")
    assert "a/face_0/preview.png" in serial and "b/overlay.png" in serial
    for run in ("overlap", "processes"):
        _assert_same_files(serial, _tree(tmp_path / run), run)




def test_one_photo_with_the_network_in_a_helper_writes_the_serial_runs_files(astronaut, tmp_path):
    # One photo (two faces: both are started before either is finished) with the network
    # and previews in a helper process: the same bytes as --serial, where all runs here.
    # The command runs as its own process, which must never import torch itself.
    import subprocess
    import sys

    from PIL import Image

    half = np.asarray(Image.fromarray(astronaut).resize((256, 256)))
    pair = np.full((256, 560, 3), 128, np.uint8)
    pair[:, :256], pair[:, 304:] = half, half[:, ::-1]
    photo = tmp_path / "pair.png"
    Image.fromarray(pair).save(photo)
    options = ["--texture-size", "64", "-q"]
    assert main(["reconstruct", str(photo), *options, "-o", str(tmp_path / "serial"), "--serial"]) == 0
    script = ("import sys; from facenormals3d.cli import main; "
              f"code = main(['reconstruct', {str(photo)!r}, '-o', {str(tmp_path / 'helper')!r}, "
              f"*{options!r}]); print('torch' in sys.modules); sys.exit(code)")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "False"  # torch stayed in the helper
    serial, helper = _tree(tmp_path / "serial"), _tree(tmp_path / "helper")
    assert "pair/face_1/preview.png" in serial
    _assert_same_files(serial, helper, "helper")


def test_photos_started_ahead_with_the_helper_fail_alone_and_in_order(astronaut, tmp_path, capsys):
    # Several photos with the helper: each photo's faces are started before the previous
    # photo is finished, and its files are finished after the next one is computed. A bad
    # photo in the middle fails alone, reported in input order; the others are the serial
    # run's bytes.
    from PIL import Image

    small = np.asarray(Image.fromarray(astronaut).resize((256, 256)))
    photos = [tmp_path / "a.png", tmp_path / "broken.jpg", tmp_path / "b.png"]
    Image.fromarray(small).save(photos[0])
    photos[1].write_text("not an image")
    Image.fromarray(np.ascontiguousarray(small[:, ::-1])).save(photos[2])
    options = ["--texture-size", "64", "-q", "--json"]
    assert main(["reconstruct", str(photos[0]), str(photos[2]), *options, "-o", str(tmp_path / "serial"),
                 "--serial"]) == 0
    capsys.readouterr()
    code = main(["reconstruct", *map(str, photos), *options, "-o", str(tmp_path / "ahead"), "--jobs", "1"])
    assert code == ExitCode.PARTIAL
    summary = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in summary["succeeded"]] == [str(photos[0]), str(photos[2])]
    assert [f["input"] for f in summary["failed"]] == [str(photos[1])]
    assert "broken.jpg: not a readable image" in summary["failed"][0]["error"]
    serial, ahead = _tree(tmp_path / "serial"), _tree(tmp_path / "ahead")
    assert "b/face_0/preview.png" in serial
    _assert_same_files(serial, ahead, "ahead")


def test_default_photo_workers_are_bounded_by_cores_and_memory(monkeypatch):
    import os

    from facenormals3d.commands import reconstruct

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(reconstruct, "_available_memory", lambda unknown: 100 * reconstruct.WORKER_BYTES)
    assert reconstruct._default_jobs() == cores
    monkeypatch.setattr(reconstruct, "_available_memory", lambda unknown: reconstruct.WORKER_BYTES + 1)
    assert reconstruct._default_jobs() == 1
    monkeypatch.setattr(reconstruct, "_available_memory", lambda unknown: 0)
    assert reconstruct._default_jobs() == 1  # never none
    # With the network in a helper process: one worker on up to HELPER_MAX_CORES cores.
    monkeypatch.setattr(reconstruct, "_available_memory", lambda unknown: 100 * reconstruct.WORKER_BYTES)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(reconstruct.HELPER_MAX_CORES)))
    assert reconstruct._default_jobs(helper=True) == 1
    assert reconstruct._default_jobs(helper=False) == reconstruct.HELPER_MAX_CORES
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert reconstruct._default_jobs(helper=True) == 8


def test_write_time_leaves_out_a_preview_rendered_in_process(astronaut, tmp_path, monkeypatch):
    """With the renderer in this process the preview is rendered inside write_face; its time
    is the preview's, not the other files' (it was counted as both)."""
    import facenormals3d.writer as writer
    from facenormals3d.pipeline import Reconstructor, ReconstructSettings

    with Reconstructor(ReconstructSettings(normal_source="landmarks", texture_size=64, albedo=False)) as rec:
        r = rec.run(astronaut)[0]
    clock = [0.0]

    def preview(path, inputs):
        clock[0] += 100.0  # the only thing that moves the frozen clock
        return 100.0

    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(writer, "write_preview", preview)
    (tmp_path / "face").mkdir()
    writer.write_face(r, tmp_path / "face", renderer=writer.preview_renderer(processes=0))
    assert r.timings["preview"] == 100.0
    assert r.timings["write"] == 0.0
