"""Running ``facenormals3d reconstruct`` in a child process and reading its results (no bpy).

The add-on talks to the tool only through a command line and files: it starts the
command with stdout/stderr redirected to files in the work folder (no pipes, so the
child can never block on a full pipe while Blender is busy), polls it from a timer,
shows the last log line as progress, and at the end reads the ``--json`` summary and
the per-face folders ``OUT/<photo-stem>/face_<k>/mesh.obj``.

Stdlib only so it can be unit-tested outside Blender; it must not import other
modules of the add-on (the tests load it by file path).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field

#: The console script's name.
COMMAND_NAME = "facenormals3d"
#: Environment variable naming a facenormals3d checkout whose .venv holds the command.
HOME_ENV = "FACENORMALS3D_HOME"
#: Files the child's output streams go to, inside the work folder.
STDOUT_NAME = "facenormals3d.stdout.json"
STDERR_NAME = "facenormals3d.stderr.log"

_LOG_PREFIX = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):\s*")


class CommandError(RuntimeError):
    """The tool could not be found, started, or it produced no usable face.
    ``str(err)`` is one line fit for a Blender error report."""


def _venv_commands(folder: str) -> list:
    """Where a checkout or virtual environment keeps the console script."""
    names = [COMMAND_NAME, COMMAND_NAME + ".exe"]
    subdirs = [os.path.join(".venv", "bin"), os.path.join(".venv", "Scripts"), "bin", "Scripts", ""]
    return [os.path.join(folder, d, n) for d in subdirs for n in names]


def _runnable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def resolve_command(preference: str = "", environ: dict | None = None, which=shutil.which) -> str:
    """The path of the ``facenormals3d`` executable to run.

    Order: the add-on preference (a file, or a folder: a checkout with ``.venv`` or a
    virtual environment), then ``facenormals3d`` on PATH, then
    ``$FACENORMALS3D_HOME/.venv/bin/facenormals3d``. Raises :class:`CommandError` saying
    what was tried.
    """
    environ = os.environ if environ is None else environ
    pref = os.path.expanduser(preference.strip()) if preference else ""
    if pref:
        if os.path.isdir(pref):
            for candidate in _venv_commands(pref):
                if _runnable(candidate):
                    return candidate
            raise CommandError(f"no {COMMAND_NAME} executable in the folder {pref} "
                               "(set the add-on preference to the command itself)")
        if _runnable(pref):
            return pref
        found = which(pref)
        if found:
            return found
        raise CommandError(f"{COMMAND_NAME} command not found: {pref} "
                           "(check the add-on preference 'facenormals3d command')")
    found = which(COMMAND_NAME)
    if found:
        return found
    home = environ.get(HOME_ENV, "")
    if home:
        for candidate in _venv_commands(os.path.expanduser(home)):
            if _runnable(candidate):
                return candidate
    raise CommandError(f"{COMMAND_NAME} command not found on PATH"
                       + (f" nor in {home}/.venv" if home else "")
                       + "; set it in the add-on preferences (Edit > Preferences > Add-ons)")


#: reconstruct's flag that skips the preview PNGs, which the add-on never reads.
NO_PREVIEWS = "--no-previews"


def build_argv(command: str, photo: str, out_dir: str, max_faces: int = 0, refine: int = -1,
               normals: str = "", no_previews: bool = False) -> list:
    """The reconstruct command line; ``max_faces`` <= 0, ``refine`` < 0 and ``normals`` ''
    mean the tool's default (``normals`` is ``network`` or ``landmarks``). With
    ``no_previews`` the tool skips preview rendering (:data:`NO_PREVIEWS`; a tool too old
    to know the flag is rerun without it, see :class:`ReconstructJob`)."""
    argv = [command, "reconstruct", photo, "-o", out_dir, "--json"]
    if no_previews:
        argv.append(NO_PREVIEWS)
    if normals:
        argv += ["--normals", normals]
    if max_faces > 0:
        argv += ["--max-faces", str(int(max_faces))]
    if refine >= 0:
        argv += ["--refine", str(int(refine))]
    return argv


def child_environment(environ: dict | None = None) -> dict:
    """The environment for the child: Blender's own Python settings removed (they would
    point the tool's interpreter at Blender's bundled Python) and unbuffered output so
    log lines arrive while it runs."""
    env = dict(os.environ if environ is None else environ)
    for key in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONNOUSERSITE"):
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def progress_line(stderr_text: str) -> str:
    """The latest meaningful log line (log level prefix removed, progress-bar carriage
    returns resolved), '' if none."""
    for line in reversed(stderr_text.replace("\r", "\n").splitlines()):
        line = _LOG_PREFIX.sub("", line.strip())
        if line:
            return line
    return ""


def parse_summary(stdout_text: str) -> dict | None:
    """The ``--json`` summary printed on stdout, or None when there is none / it is not JSON."""
    text = stdout_text.strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        start = text.find("{")  # tolerate a stray line before the JSON
        try:
            value = json.loads(text[start:]) if start > 0 else None
        except ValueError:
            value = None
    return value if isinstance(value, dict) else None


def error_message(returncode: int, summary: dict | None, stderr_text: str) -> str:
    """One line explaining a failed run: the summary's first failure, else the last
    ERROR log line, else the last stderr line, else the exit code."""
    if summary:
        for failure in summary.get("failed") or []:
            if isinstance(failure, dict) and failure.get("error"):
                return str(failure["error"]).splitlines()[0]
    lines = [ln.strip() for ln in stderr_text.replace("\r", "\n").splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith(("ERROR:", "CRITICAL:")) or "Error:" in line:
            return _LOG_PREFIX.sub("", line)
    if lines:
        return _LOG_PREFIX.sub("", lines[-1])
    return f"{COMMAND_NAME} failed with exit code {returncode}"


def rejects_flag(returncode: int, stderr_text: str, flag: str) -> bool:
    """Whether a run failed only because the command line had ``flag``, which this tool
    version does not know (argparse: exit code 2, "unrecognized arguments: ... flag")."""
    if returncode != 2:
        return False
    return any("unrecognized arguments" in line and flag in line.split()
               for line in stderr_text.splitlines())


def _face_index(name: str) -> int:
    return int(name.split("_", 1)[1]) if re.fullmatch(r"face_\d+", name) else -1


def find_face_meshes(out_dir: str, photo: str, summary: dict | None = None) -> list:
    """``mesh.obj`` paths of the reconstructed faces of ``photo``, by face index.

    The folder comes from the summary's record for the photo (``output``) when present,
    else ``out_dir/<photo-stem>``.
    """
    folder = os.path.join(out_dir, os.path.splitext(os.path.basename(photo))[0])
    for record in (summary or {}).get("succeeded") or []:
        if isinstance(record, dict) and record.get("output"):
            folder = str(record["output"])
            break
    if not os.path.isdir(folder):
        return []
    faces = sorted((k, name) for name in os.listdir(folder) if (k := _face_index(name)) >= 0)
    paths = [os.path.join(folder, name, "mesh.obj") for _, name in faces]
    return [p for p in paths if os.path.isfile(p)]


@dataclass
class JobResult:
    """What a finished run produced."""

    meshes: list = field(default_factory=list)
    """``mesh.obj`` paths, one per face, in face order (empty when it failed)."""
    folder: str = ""
    """The photo's output folder (``OUT/<photo-stem>``) holding the ``face_<k>`` folders,
    '' when it failed."""
    error: str = ""
    """One-line reason when the run failed or found no face, else ''."""
    summary: dict | None = None
    """The parsed ``--json`` summary, if any."""


class ReconstructJob:
    """One ``facenormals3d reconstruct`` child process writing into ``work_dir``.

    Call :meth:`poll` from a timer: it returns None while running and a
    :class:`JobResult` once the child has exited.
    """

    def __init__(self, argv: list, work_dir: str, photo: str, out_dir: str):
        self.argv, self.work_dir, self.photo, self.out_dir = list(argv), work_dir, photo, out_dir
        self.started = time.monotonic()
        self.finished: float | None = None
        """``time.monotonic()`` when the child was first seen to have exited."""
        self.dropped_flags: list = []
        """Optional flags this tool version rejected; the run was restarted without them."""
        self._stdout_path = os.path.join(work_dir, STDOUT_NAME)
        self._stderr_path = os.path.join(work_dir, STDERR_NAME)
        self._start()

    def _start(self) -> None:
        try:
            with open(self._stdout_path, "wb") as out, open(self._stderr_path, "wb") as err:
                self.process = subprocess.Popen(self.argv, stdout=out, stderr=err,
                                                stdin=subprocess.DEVNULL, env=child_environment())
        except OSError as err:
            raise CommandError(f"cannot start {self.argv[0]}: {err.strerror or err}") from None

    def _restarted_without_rejected_flag(self, code: int) -> bool:
        """A tool older than an optional flag (``--no-previews``) stops at argparse; start
        it again without the flag (costs one interpreter start, ~0.1 s)."""
        if NO_PREVIEWS in self.argv and rejects_flag(code, self.stderr_text(), NO_PREVIEWS):
            self.argv.remove(NO_PREVIEWS)
            self.dropped_flags.append(NO_PREVIEWS)
            self._start()
            return True
        return False

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def command_seconds(self) -> float:
        """Seconds from the start until the child was seen to exit (so far, if running)."""
        return (self.finished if self.finished is not None else time.monotonic()) - self.started

    def stderr_text(self, tail: int = 0) -> str:
        """What the child wrote on stderr so far (only the last ``tail`` bytes if > 0)."""
        return _read_text(self._stderr_path, tail)

    def status(self) -> str:
        """A short progress text for the status bar."""
        line = progress_line(self.stderr_text(tail=4000))
        return f"{int(self.elapsed())} s" + (f": {line[:120]}" if line else "")

    def poll(self) -> JobResult | None:
        code = self.process.poll()
        if code is None or self._restarted_without_rejected_flag(code):
            return None
        self.finished = time.monotonic()
        return self._result(code)

    def wait(self, timeout: float | None = None) -> JobResult:
        """Block until the child exits (used when Blender has no window to run a timer in)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                code = self.process.wait(None if deadline is None
                                         else max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.cancel()
                return JobResult(error=f"{COMMAND_NAME} did not finish within {timeout:.0f} s")
            if not self._restarted_without_rejected_flag(code):
                break
        self.finished = time.monotonic()
        return self._result(code)

    def cancel(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _result(self, code: int) -> JobResult:
        summary = parse_summary(_read_text(self._stdout_path))
        meshes = find_face_meshes(self.out_dir, self.photo, summary) if code in (0, 1) else []
        if meshes:
            folder = os.path.dirname(os.path.dirname(meshes[0]))
            return JobResult(meshes=meshes, folder=folder, summary=summary)
        if code in (0, 1):
            reason = error_message(code, summary, "") if summary and summary.get("failed") else ""
            return JobResult(error=reason or f"no face found in {os.path.basename(self.photo)}",
                             summary=summary)
        return JobResult(error=error_message(code, summary, self.stderr_text()), summary=summary)


def _read_text(path: str, tail: int = 0) -> str:
    try:
        with open(path, "rb") as fh:
            if tail > 0:
                fh.seek(max(0, os.fstat(fh.fileno()).st_size - tail))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
