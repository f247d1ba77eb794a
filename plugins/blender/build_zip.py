"""Build the installable add-on zip: ``python3 build_zip.py SRC_PACKAGE_DIR OUT.zip``.

Blender's "Install from Disk" wants the package folder at the top of the archive
(``facenormals3d_blender/__init__.py``). Only ``.py`` files go in (no ``__pycache__``), with
fixed timestamps so the same sources give the same bytes.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

FIXED_TIME = (2024, 1, 1, 0, 0, 0)


def build_zip(src: Path, out: Path) -> list[str]:
    """Write ``out`` holding ``src/*.py`` under ``src.name/``; return the archive names."""
    if not (src / "__init__.py").is_file():
        raise SystemExit(f"{src}: not an add-on package (no __init__.py)")
    names = []
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(src.glob("*.py")):
            info = zipfile.ZipInfo(f"{src.name}/{path.name}", FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
            names.append(info.filename)
    tmp.replace(out)  # never leave a half-written zip under the real name
    return names


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: build_zip.py SRC_PACKAGE_DIR OUT.zip")
    for name in build_zip(Path(sys.argv[1]), Path(sys.argv[2])):
        print("  " + name)
    print(f"wrote {sys.argv[2]}")
