"""Writing results so that a crash never leaves a half-written output behind.

Every file is written under a temporary name in the destination folder and renamed
into place (rename is atomic on one filesystem). A folder of results is assembled in a
hidden staging folder and renamed as a whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from facenormals3d.errors import OutputExistsError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path``.

    ``tmp_path`` keeps ``path``'s suffix so writers that pick a format from the
    extension (imageio, trimesh, numpy) behave the same.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        # mkstemp makes the file private (0600); give it the permissions a plain open would.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: Any) -> Path:
    """Atomically write ``data`` as indented JSON."""
    text = json.dumps(data, indent=2, sort_keys=False, default=json_default) + "\n"
    return atomic_write(path, lambda p: p.write_text(text))


def _umask() -> int:
    # The only way to read the umask is to set it; put it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def json_default(obj: Any) -> Any:
    # numpy scalars/arrays and paths show up in reports; write them as plain JSON.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def staged_dir(final: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging folder that becomes ``final`` only if the block succeeds.

    Raises :class:`OutputExistsError` up front when ``final`` exists and ``overwrite``
    is false. On failure the staging folder is removed and ``final`` is untouched.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise OutputExistsError(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes it private (0700)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if final.exists():
        # Move the old result aside first so a failed rename cannot lose both.
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(stage, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, final)
