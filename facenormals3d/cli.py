"""The ``facenormals3d`` console script: one subcommand per job.

Each subcommand lives in :mod:`facenormals3d.commands` as a module with
``add_parser(subparsers)``; heavy libraries (torch, mediapipe, open3d) are imported only
inside the subcommand that runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
import traceback

from facenormals3d import __version__
from facenormals3d.console import setup_logging
from facenormals3d.errors import ExitCode, FaceNormalsError

#: Subcommands in the order ``--help`` lists them.
COMMANDS = ("faces", "normals", "reconstruct", "relight", "synth", "train", "evaluate", "bench", "build-face-model")

EPILOG = """exit codes:
  0  OK             everything requested was written
  1  PARTIAL        some inputs failed, the others were written
  2  USAGE          bad command line
  3  BAD_INPUT      every input failed because of the input itself (unreadable, no face, ...)
  4  INTERNAL       a bug or a broken environment
  5  OUTPUT_EXISTS  output exists; pass --overwrite to replace it
  130               interrupted (Ctrl-C, SIGTERM); training can be resumed with --resume
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facenormals3d",
        description="Face photos to detailed 3D face meshes (cross-modal normal network, "
                    "normal integration, textured mesh export).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"facenormals3d {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module_name = f"facenormals3d.commands.{name.replace('-', '_')}"
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code.

    ``argv=None`` means the process's own command line (the console script, ``python -m
    facenormals3d``). Commands that set ``exit_without_teardown`` (``reconstruct``: every
    result is renamed into place and its writer threads joined before it returns) then end
    the process here, output flushed, without the interpreter's teardown (torch's alone
    takes ~0.4 s, all of it ~0.7 s on 2 cores). With an explicit ``argv`` (tests, other
    Python code) it always returns.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return int(ExitCode.USAGE)
    setup_logging(args)
    code = _run(args)
    if argv is None and getattr(args, "exit_without_teardown", False):
        _leave(code)
    return code


def _leave(code: int) -> None:
    """Flush what the command wrote and end the process now (no interpreter teardown)."""
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe must not turn success into a traceback
            pass
    os._exit(code)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except FaceNormalsError as err:
        logging.getLogger("facenormals3d").error("%s", err)
        return int(err.exit_code)
    except KeyboardInterrupt:
        logging.getLogger("facenormals3d").error("interrupted")
        return 130
    except Exception as err:  # noqa: BLE001 - a bug or broken environment: one line, named code
        log = logging.getLogger("facenormals3d")
        log.error("internal error: %s: %s (run with -v for the traceback)", type(err).__name__, err)
        log.debug("%s", traceback.format_exc())
        return int(ExitCode.INTERNAL)


if __name__ == "__main__":
    sys.exit(main())
