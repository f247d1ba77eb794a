"""The console script as a user runs it: help, version, JSON, exit codes, batches.

The first tests start the installed script; the rest run the same ``main`` in-process (the
``cli`` fixture), which differs only by the interpreter start."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facenormals3d.cli import COMMANDS, build_parser
from facenormals3d.errors import ExitCode

SCRIPT = Path(sys.executable).with_name("facenormals3d")


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)


def test_version_and_help():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("facenormals3d ")
    r = run_cli("--help")
    assert r.returncode == 0 and "exit codes" in r.stdout and "faces" in r.stdout


def test_every_subcommand_has_help(cli):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "faces" in sub.choices
    for name in sub.choices:
        assert name in COMMANDS
        r = cli(name, "--help")
        assert r.returncode == 0, name
        assert "usage: facenormals3d " + name in r.stdout


def test_no_command_is_a_usage_error():
    assert run_cli().returncode == ExitCode.USAGE


def test_faces_batch_with_a_bad_file(tmp_path, astronaut_png, cli):
    bad = tmp_path / "broken.jpg"
    bad.write_text("not an image")
    out = tmp_path / "out"
    r = cli("faces", astronaut_png, bad, tmp_path / "missing.png", "-o", out, "--json")
    assert r.returncode == ExitCode.PARTIAL, r.stderr
    summary = json.loads(r.stdout)  # stdout is pure JSON
    assert summary["n_succeeded"] == 1 and summary["n_failed"] == 2
    errors = " | ".join(f["error"] for f in summary["failed"])
    assert "broken.jpg: not a readable image" in errors and "missing.png: file not found" in errors
    assert "broken.jpg" in r.stderr  # one line per failure on stderr too
    face = out / "astronaut" / "face_0"
    for name in ("crop.png", "mask.png", "landmarks_photo.npy", "landmarks_crop.npy",
                 "landmarks.json", "transform.json", "coarse_normals.png", "coarse_depth.npy"):
        assert (face / name).is_file(), name
    assert (out / "astronaut" / "overlay.png").is_file()
    assert np.load(face / "landmarks_crop.npy").shape == (478, 3)
    meta = json.loads((face / "transform.json").read_text())
    assert np.array(meta["photo_to_crop"]).shape == (2, 3)
    # Nothing half-written: no staging folders left behind, nothing for the bad inputs.
    assert sorted(p.name for p in out.iterdir()) == ["astronaut"]


def test_existing_output_needs_overwrite(tmp_path, astronaut_png, cli):
    out = tmp_path / "out"
    assert cli("faces", astronaut_png, "-o", out, "-q").returncode == 0
    r = cli("faces", astronaut_png, "-o", out, "-q")
    assert r.returncode == ExitCode.OUTPUT_EXISTS and "--overwrite" in r.stderr
    assert cli("faces", astronaut_png, "-o", out, "-q", "--overwrite").returncode == 0


def test_only_bad_inputs_is_bad_input(tmp_path, cli):
    noface = tmp_path / "noface.png"
    from PIL import Image

    Image.fromarray(np.full((200, 300, 3), 90, np.uint8)).save(noface)
    r = cli("faces", noface, "-o", tmp_path / "out")
    assert r.returncode == ExitCode.BAD_INPUT
    assert "noface.png: no face found" in r.stdout + r.stderr


def test_two_inputs_with_one_stem_do_not_overwrite_each_other(tmp_path, astronaut_png, cli):
    import shutil

    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(astronaut_png, other / "astronaut.png")
    out = tmp_path / "out"
    r = cli("faces", astronaut_png, other / "astronaut.png", "-o", out, "--json")
    assert r.returncode == ExitCode.PARTIAL
    summary = json.loads(r.stdout)
    assert summary["n_succeeded"] == 1
    assert "also writes OUT/astronaut/" in summary["failed"][0]["error"]


def test_unexpected_errors_are_one_line_internal(tmp_path, cli):
    # A weights "file" that is a folder is not an input problem we anticipate per photo:
    # the tool must still answer with a named exit code and no traceback.
    (tmp_path / "w.safetensors").mkdir()
    r = cli("reconstruct", tmp_path / "x.png", "-o", tmp_path / "o", "--weights", tmp_path / "w.safetensors")
    assert r.returncode in (ExitCode.BAD_INPUT, ExitCode.INTERNAL)
    assert "Traceback" not in r.stderr


def test_run_batch_finishes_each_input_after_the_next_one_and_records_in_order():
    # A job may return finish(); it runs after the next input's job (or at the end). Errors
    # of a job and of a finish are recorded in input order all the same.
    import argparse

    from facenormals3d.console import run_batch
    from facenormals3d.errors import InputError

    calls = []

    def job(item):
        calls.append(f"job {item}")
        if item == "bad":
            raise InputError(item, "broken")

        def finish():
            calls.append(f"finish {item}")
            if item == "late":
                raise RuntimeError("failed while finishing")
            return {"value": item}

        return {"value": item} if item == "plain" else finish

    args = argparse.Namespace(quiet=True, json=False, verbose=0)
    result = run_batch(["a", "late", "bad", "plain", "b"], job, args=args, desc="test")
    assert calls == ["job a", "job late", "finish a", "job bad", "finish late", "job plain", "job b",
                     "finish b"]
    assert [r["value"] for r in result.succeeded] == ["a", "plain", "b"]
    assert [(f["input"], f["kind"]) for f in result.failed] == [("late", "internal"), ("bad", "input")]


def test_reconstruct_imports_opencv_before_its_first_thread(tmp_path, astronaut_png):
    # While OpenCV imports, its own folder is on sys.path; a helper process spawned then
    # inherits that path and takes cv2/typing for Python's typing (it crashed about every
    # other run on a JPEG). So reconstruct imports OpenCV before the photo reader's thread.
    from PIL import Image

    jpg = tmp_path / "face.jpg"
    Image.open(astronaut_png).save(jpg, quality=90)
    probe = (
        "import sys\n"
        "import facenormals3d.overlap as overlap\n"
        "original = overlap.ReadAhead.__init__\n"
        "def init(self, keys, load, threads=1):\n"
        "    if threads and 'cv2' not in sys.modules:\n"
        "        raise SystemExit('a reader thread started before OpenCV was imported')\n"
        "    original(self, keys, load, threads)\n"
        "overlap.ReadAhead.__init__ = init\n"
        "from facenormals3d.cli import main\n"
        f"sys.exit(main(['reconstruct', {str(jpg)!r}, '-o', {str(tmp_path / 'out')!r}, '-q', "
        "'--normals', 'landmarks', '--no-previews']))\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "out" / "face" / "face_0" / "mesh.obj").is_file()
