"""Exceptions and the exit codes the command line maps them to.

Exit codes (documented in README and ``facenormals3d --help``):

==  =================  ==========================================================
0   OK                 everything requested was written
1   PARTIAL            some inputs failed (bad input or no face), others were written
2   USAGE              bad command line (argparse's own code)
3   BAD_INPUT          every input failed because of the input itself
4   INTERNAL           a bug or an environment problem (missing dependency, ...)
5   OUTPUT_EXISTS      the output exists and ``--overwrite`` was not given
==  =================  ==========================================================
"""

from __future__ import annotations

import enum
from pathlib import Path


class ExitCode(enum.IntEnum):
    OK = 0
    PARTIAL = 1
    USAGE = 2
    BAD_INPUT = 3
    INTERNAL = 4
    OUTPUT_EXISTS = 5


class FaceNormalsError(Exception):
    """Base class of the errors this package raises on purpose."""

    exit_code = ExitCode.INTERNAL


class InputError(FaceNormalsError, ValueError):
    """An input file or array is unusable. ``str(err)`` is one line naming it and why."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, source: str | Path | None, reason: str):
        self.source = None if source is None else str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}" if self.source else reason)

    def __reduce__(self):
        # Rebuilt from its own arguments (the default would pass the message as ``source``),
        # so it crosses process boundaries (e.g. from reconstruct's photo workers) intact.
        return type(self), (self.source, self.reason)


class NoFaceError(InputError):
    """The photo decoded fine but no face was found in it."""


class OutputExistsError(FaceNormalsError):
    """An output would be overwritten without ``--overwrite``."""

    exit_code = ExitCode.OUTPUT_EXISTS

    def __init__(self, path: str | Path):
        self.path = str(path)
        super().__init__(f"{self.path}: output exists (use --overwrite to replace it)")

    def __reduce__(self):
        return type(self), (self.path,)
