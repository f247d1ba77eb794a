"""Reading numpy ``.npy`` / ``.npz`` files without numpy (stdlib only).

Blender's Python does ship numpy, but the add-on promises stdlib + bpy only, and what the
tool writes is a small, fixed set of arrays: float32 blendshape deltas, float64 landmarks,
unicode name arrays. This reader handles exactly the plain cases of the format
(https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):

* format versions 1.0 (2-byte header length), 2.0 and 3.0 (4-byte header length);
* C order only (``fortran_order: False``); a Fortran-ordered array is an error;
* dtypes ``f4``, ``f8``, ``i4``, ``i8``, ``u1`` (little- or big-endian, returned in the
  machine's order as :class:`array.array`), ``U<n>`` (returned as a list of str) and
  ``S<n>`` (a list of bytes);
* ``.npz`` = a zip of ``<name>.npy`` members, stored or deflated (``np.savez`` and
  ``np.savez_compressed``).

Object arrays (``|O``) are refused: they are pickles, and reading one could run code.
The header is parsed with :func:`ast.literal_eval`, which evaluates literals only.

This module is stdlib only so it can be unit-tested outside Blender; it must not import
other modules of the add-on (the tests load it by file path).
"""

from __future__ import annotations

import ast
import sys
import zipfile
import zlib
from array import array
from dataclasses import dataclass

MAGIC = b"\x93NUMPY"

#: numpy type character + item size -> :mod:`array` type code.
_NUMERIC = {("f", 4): "f", ("f", 8): "d", ("i", 4): "i", ("i", 8): "q", ("u", 1): "B"}


class NpyError(ValueError):
    """An .npy/.npz file this reader cannot read; ``str(err)`` names the file and the reason."""


@dataclass
class NpyArray:
    """One array read from an .npy file."""

    shape: tuple
    """The array's shape, e.g. ``(53, 9000, 3)``; ``()`` for a scalar."""
    dtype: str
    """The numpy dtype string as stored, e.g. ``'<f4'`` or ``'<U13'``."""
    data: object
    """The elements in C order, flattened: an :class:`array.array` (numbers, machine byte
    order) or a list of str (``U``) / bytes (``S``)."""

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def rows(self) -> list:
        """The elements grouped by the last axis as tuples (e.g. an (N, 3) array -> N
        (x, y, z) tuples); a 1-D array gives one tuple."""
        width = self.shape[-1] if self.shape else 1
        data = self.data
        return [tuple(data[i:i + width]) for i in range(0, len(data), width)] if width else []


def parse_npy(raw: bytes, source: str = "<npy>") -> NpyArray:
    """Parse the bytes of one .npy file. Raises :class:`NpyError` naming ``source``."""
    if not raw.startswith(MAGIC) or len(raw) < 10:
        raise NpyError(f"{source}: not a .npy file")
    major = raw[6]
    if major == 1:
        header_len, start = int.from_bytes(raw[8:10], "little"), 10
    elif major in (2, 3):
        header_len, start = int.from_bytes(raw[8:12], "little"), 12
    else:
        raise NpyError(f"{source}: unsupported .npy format version {major}.{raw[7]}")
    header_bytes = raw[start:start + header_len]
    try:
        header = ast.literal_eval(header_bytes.decode("utf-8" if major == 3 else "latin1"))
        descr, fortran, shape = header["descr"], header["fortran_order"], tuple(header["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError):
        raise NpyError(f"{source}: malformed .npy header") from None
    if not isinstance(descr, str):
        raise NpyError(f"{source}: structured dtypes are not supported ({descr!r})")
    if fortran and len(shape) > 1:
        raise NpyError(f"{source}: Fortran-ordered arrays are not supported")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise NpyError(f"{source}: bad shape {shape!r}")
    body = raw[start + header_len:]
    count = 1
    for d in shape:
        count *= d
    return NpyArray(shape, descr, _decode(body, descr, count, source))


def _decode(body: bytes, descr: str, count: int, source: str):
    order, kind, size = _split_descr(descr, source)
    if kind in ("U", "S"):
        item = size * (4 if kind == "U" else 1)
        if len(body) < count * item:
            raise NpyError(f"{source}: truncated data ({len(body)} of {count * item} bytes)")
        if kind == "S":
            return [body[i * item:(i + 1) * item].rstrip(b"\0") for i in range(count)]
        codec = "utf-32-be" if order == ">" else "utf-32-le"
        return [body[i * item:(i + 1) * item].decode(codec).rstrip("\0") for i in range(count)]
    code = _NUMERIC.get((kind, size))
    if code is None:
        raise NpyError(f"{source}: unsupported dtype {descr!r}")
    values = array(code)
    if values.itemsize != size:
        raise NpyError(f"{source}: dtype {descr!r} has no matching C type here")
    nbytes = count * size
    if len(body) < nbytes:
        raise NpyError(f"{source}: truncated data ({len(body)} of {nbytes} bytes)")
    values.frombytes(body[:nbytes])
    if size > 1 and order == (">" if sys.byteorder == "little" else "<"):
        values.byteswap()
    return values


def _split_descr(descr: str, source: str) -> tuple:
    """``'<f4'`` -> ('<', 'f', 4). ``|`` and ``=`` mean native (no swap needed)."""
    order = descr[0] if descr[:1] in ("<", ">", "|", "=") else "="
    rest = descr[1:] if descr[:1] in ("<", ">", "|", "=") else descr
    kind, digits = rest[:1], rest[1:]
    if kind == "O":
        raise NpyError(f"{source}: object arrays (pickles) are refused")
    if not kind or not digits.isdigit():
        raise NpyError(f"{source}: unsupported dtype {descr!r}")
    if order == "=":
        order = "<" if sys.byteorder == "little" else ">"
    return order, kind, int(digits)


def read_npy(path: str) -> NpyArray:
    """Read one .npy file. Raises :class:`NpyError` (also for an unreadable file)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as err:
        raise NpyError(f"{path}: cannot read: {err.strerror or err}") from None
    return parse_npy(raw, path)


def read_npz(path: str, names: tuple | None = None) -> dict:
    """Read the arrays of an .npz archive: ``{name: NpyArray}`` (names without ``.npy``).

    With ``names``, only those members are read and a missing one is an error.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            members = {m[:-4]: m for m in zf.namelist() if m.endswith(".npy")}
            wanted = members if names is None else names
            out = {}
            for name in wanted:
                if name not in members:
                    raise NpyError(f"{path}: no array {name!r} (has {sorted(members)})")
                out[name] = parse_npy(zf.read(members[name]), f"{path}:{name}")
            return out
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise NpyError(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}") from None
