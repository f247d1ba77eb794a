"""Shared command-line behaviour: logging to stderr, JSON on stdout, progress bars,
and batches that keep going past a bad input.

Every subcommand in :mod:`facenormals3d.commands` uses these so the tool behaves the
same everywhere: stdout carries only the result (pure JSON with ``--json``), logs and
progress go to stderr, and exit codes come from :class:`facenormals3d.errors.ExitCode`.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence, TypeVar

from facenormals3d.errors import ExitCode, FaceNormalsError, OutputExistsError

log = logging.getLogger("facenormals3d")
T = TypeVar("T")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every subcommand has: --json, --verbose, --quiet."""
    parser.add_argument("--json", action="store_true",
                        help="print a machine-readable JSON summary on stdout (logs stay on stderr)")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output on stderr")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only errors on stderr, no progress bars")


def add_photo_job_options(parser: argparse.ArgumentParser) -> None:
    """Inputs, output folder, face limit and --overwrite of the photo jobs (defaults: the settings dataclasses)."""
    from facenormals3d.face.detect import DetectSettings

    max_faces = DetectSettings.max_faces
    parser.add_argument("photos", nargs="+", metavar="PHOTO", help="image files (JPEG, PNG, ...)")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument("--max-faces", type=int, default=max_faces,
                        help=f"at most this many faces per photo, largest first (default {max_faces}); "
                             "faces left out are warned about and listed as skipped_faces")
    parser.add_argument("--overwrite", action="store_true", help="replace existing results")


def add_photo_command(sub, name: str, help: str, description: str, layout: str,
                      network: bool = False) -> argparse.ArgumentParser:
    """A per-photo command's parser: ``layout`` (its output files) as the epilog, the photo
    job options and, with ``network``, the network's. Add the command's own options, then
    :func:`add_common_options`."""
    parser = sub.add_parser(name, help=help, description=description, epilog=layout,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_photo_job_options(parser)
    if network:
        add_network_options(parser)
    return parser


def add_network_options(parser: argparse.ArgumentParser) -> None:
    """Where normals come from: --weights, --normals network|landmarks, --device."""
    parser.add_argument("--weights", default=None, help="network weights .safetensors (default: shipped)")
    from facenormals3d.pipeline import ReconstructSettings

    parser.add_argument("--normals", dest="normal_source", default=ReconstructSettings.normal_source,
                        choices=["network", "landmarks"],
                        help="normal source: the network (default), or the coarse landmark face (baseline)")
    add_flip_option(parser)
    add_device_option(parser)


def network_settings(args: argparse.Namespace) -> dict:
    """The :class:`~facenormals3d.pipeline.ReconstructSettings` fields that
    :func:`add_network_options`' flags set, as keyword arguments."""
    return {"normal_source": args.normal_source, "weights": args.weights, "flip_average": args.flip_average,
            "device": args.device}


def add_flip_option(parser: argparse.ArgumentParser) -> None:
    """--no-flip-average (:attr:`ReconstructSettings.flip_average`)."""
    from facenormals3d.pipeline import ReconstructSettings

    parser.add_argument("--no-flip-average", dest="flip_average", action="store_false",
                        default=ReconstructSettings.flip_average,
                        help="run the network once per face, not also on the mirrored crop "
                             "(half the network time, slightly worse normals)")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    from facenormals3d.pipeline import ReconstructSettings

    parser.add_argument("--device", default=ReconstructSettings.device, choices=["auto", "cpu", "cuda"],
                        help="where torch runs: auto uses CUDA when present (default: auto)")


def setup_logging(args: argparse.Namespace) -> None:
    """The tool's log on stderr at the level of ``-q`` / ``-v`` (default INFO)."""
    log_to_stderr(logging.WARNING if getattr(args, "quiet", False) else (
        logging.DEBUG if getattr(args, "verbose", False) else logging.INFO))


def log_to_stderr(level: int) -> None:
    """Send the ``facenormals3d`` log to stderr at ``level``, one ``LEVEL: message`` line each
    (also what a worker process of the command does, with the command's level)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger("facenormals3d")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "",
             args: argparse.Namespace | None = None, unit: str = "it") -> Iterable[T]:
    """A tqdm bar on stderr, off with --quiet or when stderr is not a terminal."""
    from tqdm import tqdm

    quiet = bool(getattr(args, "quiet", False))
    disable = quiet or not sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr,
                disable=disable, dynamic_ncols=True, leave=False)


def emit(args: argparse.Namespace, payload: dict[str, Any], human: str) -> None:
    """Print the result: JSON when --json was given, else the human-readable text."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(payload, indent=2, default=_json_default) + "\n")
    elif human:
        sys.stdout.write(human.rstrip("\n") + "\n")
    sys.stdout.flush()


def _json_default(obj: Any) -> Any:
    """The file writers' conversions (numpy, paths), and anything else as its text."""
    from facenormals3d.outputs import json_default

    try:
        return json_default(obj)
    except TypeError:
        return str(obj)


@dataclass
class BatchResult:
    """Outcome of running one job over many inputs."""

    succeeded: list[dict[str, Any]] = field(default_factory=list)
    """One record per input that worked (what the job returned, plus ``input``)."""
    failed: list[dict[str, Any]] = field(default_factory=list)
    """One record per input that failed: ``input``, ``error`` (one line), ``kind``."""

    def exit_code(self) -> ExitCode:
        if not self.failed:
            return ExitCode.OK
        if any(f["kind"] == "internal" for f in self.failed):
            return ExitCode.INTERNAL
        if self.succeeded:
            return ExitCode.PARTIAL
        if all(f["kind"] == "exists" for f in self.failed):
            return ExitCode.OUTPUT_EXISTS
        return ExitCode.BAD_INPUT

    def summary(self) -> dict[str, Any]:
        return {"succeeded": self.succeeded, "failed": self.failed,
                "n_succeeded": len(self.succeeded), "n_failed": len(self.failed),
                "exit_code": int(self.exit_code())}

    def human(self, what: str = "input") -> str:
        lines = [f"{len(self.succeeded)} {what}(s) done, {len(self.failed)} failed"]
        lines += [f"  FAILED {f['error']}" for f in self.failed]
        return "\n".join(lines)


def run_batch(inputs: Sequence[T], job: Callable[[T], Any], *,
              args: argparse.Namespace, desc: str) -> BatchResult:
    """Run ``job`` on every input; one failure is logged and the rest still run.

    ``job`` returns the input's summary entry (a dict), or a ``finish()`` callable that
    returns it: that one is called after the next input's ``job`` (or at the end), so the
    work it waits for (e.g. files written in the background) overlaps the next input.
    Results are recorded in input order either way. ``job`` and ``finish`` raise
    :class:`FaceNormalsError` subclasses for expected problems (bad input, existing
    output); anything else is reported as an internal error with its traceback at debug
    level.
    """
    result = BatchResult()

    def record(item: T, get: Callable[[], dict[str, Any]]) -> None:
        try:
            entry = get()
            entry.setdefault("input", str(item))
            result.succeeded.append(entry)
        except FaceNormalsError as err:
            kind = "exists" if isinstance(err, OutputExistsError) else "input"
            log.error("%s", err)
            result.failed.append({"input": str(item), "error": str(err), "kind": kind})
        except Exception as err:  # noqa: BLE001 - a batch must survive one bad item
            log.error("%s: internal error: %s: %s", item, type(err).__name__, err)
            log.debug("%s", traceback.format_exc())
            result.failed.append({"input": str(item), "kind": "internal",
                                  "error": f"{item}: internal error: {type(err).__name__}: {err}"})

    unfinished: list = []  # at most one (item, finish) pair

    def settle() -> None:
        while unfinished:
            record(*unfinished.pop())

    for item in progress(inputs, total=len(inputs), desc=desc, args=args):
        try:
            outcome = job(item)
        except Exception as err:  # noqa: BLE001 - recorded (in input order) by record()
            settle()
            record(item, functools.partial(_reraise, err))
            continue
        settle()
        if callable(outcome):
            unfinished.append((item, outcome))
        else:
            record(item, lambda entry=outcome: entry)
    settle()
    return result


def _reraise(err: Exception) -> dict:
    raise err


def claim_stem(path, claimed: set[str]) -> None:
    """Refuse a second input whose file stem names the same output folder in this run."""
    from pathlib import Path

    from facenormals3d.errors import InputError

    stem = Path(path).stem
    if stem in claimed:
        raise InputError(path, f"another input in this run also writes OUT/{stem}/: rename one of them")
    claimed.add(stem)


