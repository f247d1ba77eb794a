"""``facenormals3d bench integration --diligent DIR``: bilateral integration on DiLiGenT vs BiNI.

The folder holds one sub-folder per object with ``normal_map.png`` (16-bit RGB, ``n =
v / 65535 * 2 - 1``; x right, y up, z towards the camera), ``mask.png``, ``K.txt``
(OpenCV intrinsics, pixel centres at integer coordinates: read with
:meth:`integration.Camera.from_K`) and ``depth_gt.npz`` (key ``depth_gt``, mm), plus a
``README.md`` whose table gives BiNI's published MADE and seconds per object and whose
text gives the mean time of our ``poisson`` in BiNI's run (``poisson mean X mm in Y s``).

MADE (BiNI's metric): scale the estimate by ``s = median(z_gt / z)`` over the mask, then
take the mean ``|s z - z_gt|`` over the mask, in mm. Seconds are compared through our
``poisson`` on the same object, timed in the same run: BiNI's seconds are scaled by
``poisson_now / poisson_then`` before comparing totals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facenormals3d.bench import BenchReport, target, time_call

#: A README table row: ``| name | pixels | MADE | seconds |``.
_ROW = re.compile(r"^\|\s*([a-z0-9_]+)\s*\|\s*(\d+)\s*\|\s*([0-9.]+)\s*\|\s*([0-9.]+)\s*\|\s*$")
_POISSON = re.compile(r"poisson mean\s+[0-9.]+\s*mm in\s+([0-9.]+)\s*s")


@dataclass
class DiligentObject:
    """One object of the benchmark."""

    name: str
    normals: np.ndarray
    """``H x W x 3`` float64 camera-space normals (x right, y up, z towards the camera)."""
    mask: np.ndarray
    """``H x W`` bool."""
    K: np.ndarray
    """3x3 OpenCV intrinsics."""
    depth: np.ndarray
    """``H x W`` ground-truth depth, mm."""


def load_object(folder: Path) -> DiligentObject:
    """Read one object folder (see the module docstring)."""
    import cv2

    raw = cv2.imread(str(folder / "normal_map.png"), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 3:
        raise ValueError(f"{folder / 'normal_map.png'}: not a 3-channel image")
    normals = raw[..., ::-1].astype(np.float64) / 65535.0 * 2.0 - 1.0
    mask = cv2.imread(str(folder / "mask.png"), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise ValueError(f"{folder / 'mask.png'}: unreadable")
    mask = (mask if mask.ndim == 2 else mask[..., 0]) > 0
    with np.load(folder / "depth_gt.npz") as data:
        depth = data["depth_gt"].astype(np.float64)
    return DiligentObject(name=folder.name, normals=normals, mask=mask,
                          K=np.loadtxt(folder / "K.txt"), depth=depth)


def made(depth: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """BiNI's mean absolute depth error after the median-ratio scale (module docstring)."""
    scale = np.median(truth[mask] / depth[mask])
    return float(np.mean(np.abs(scale * depth[mask] - truth[mask])))


def published(readme: Path) -> tuple[dict[str, dict[str, float]], float | None]:
    """BiNI's ``{object: {"made": mm, "seconds": s}}`` and our poisson's mean seconds in
    the same published run (``None`` when the README does not say)."""
    table: dict[str, dict[str, float]] = {}
    poisson = None
    if readme.is_file():
        text = readme.read_text()
        for line in text.splitlines():
            m = _ROW.match(line.strip())
            if m:
                table[m.group(1)] = {"made": float(m.group(3)), "seconds": float(m.group(4))}
        m = _POISSON.search(text)
        poisson = float(m.group(1)) if m else None
    return table, poisson


def one_sided_fraction(weights: np.ndarray) -> float:
    """Share of pixels with all four neighbours whose weight on one side of an axis is
    below 0.05 (a pixel the method treats as next to a discontinuity)."""
    full = np.all(weights > 0, axis=-1) & np.all(np.isfinite(weights), axis=-1)
    one_sided = (np.minimum(weights[..., 0], weights[..., 1]) < 0.05) | \
                (np.minimum(weights[..., 2], weights[..., 3]) < 0.05)
    return float(one_sided[full].mean()) if full.any() else 0.0


def run_diligent(folder: str, repeats: int) -> BenchReport:
    """Bilateral (default settings) and the poisson reference on every object folder."""
    from integration import Camera, IntegrationSettings, integrate

    root = Path(folder)
    names = sorted(p.name for p in root.iterdir() if (p / "normal_map.png").is_file())
    if not names:
        raise ValueError(f"{root}: no object folders with normal_map.png")
    bini, bini_poisson = published(root / "README.md")
    rows: list[dict] = []
    totals = {"ours": 0.0, "poisson": 0.0, "bini": 0.0}
    wins = 0
    for name in names:
        obj = load_object(root / name)
        camera = Camera.from_K(obj.K)

        def solve(method):
            return integrate(obj.normals, obj.mask, camera=camera,
                             settings=IntegrationSettings(method=method))

        ref_s, ref = time_call(lambda: solve("poisson"), repeats=repeats, warmup=1)
        ours_s, ours = time_call(lambda: solve("bilateral"), repeats=1, warmup=0)
        ref_made = made(ref.depth, obj.depth, obj.mask)
        ours_made = made(ours.depth, obj.depth, obj.mask)
        row = {"object": name, "pixels": int(obj.mask.sum()), "made": ours_made,
               "seconds": ours_s, "steps": ours.bilateral_steps, "converged": ours.converged,
               "dE": ours.bilateral_energy_change,
               "one_sided": one_sided_fraction(ours.bilateral_weights),
               "poisson_made": ref_made, "poisson_s": ref_s, "x_poisson": ours_s / ref_s}
        totals["ours"] += ours_s
        totals["poisson"] += ref_s
        if name in bini:
            row["bini_made"] = bini[name]["made"]
            row["bini_s"] = bini[name]["seconds"]
            row["better"] = ours_made < bini[name]["made"]
            wins += int(row["better"])
            totals["bini"] += bini[name]["seconds"]
        rows.append(row)

    mean_made = float(np.mean([r["made"] for r in rows]))
    targets = [target("mean MADE over the objects, mm", mean_made, 1.50)]
    notes = ["made = mean |s z - z_gt| (mm) with s = median(z_gt / z); bini_* from the "
             "data README; poisson = our masked Poisson on the same object, best of "
             f"{repeats} in this run (the time reference)",
             "one_sided = share of interior pixels with weight < 0.05 on one side of an axis",
             f"totals: bilateral {totals['ours']:.2f} s, poisson {totals['poisson']:.3f} s"
             + (f", BiNI {totals['bini']:.2f} s (published)" if bini else "")]
    if bini:
        targets.append(target(f"objects better than BiNI (of {sum('bini_made' in r for r in rows)})",
                              wins, 6, lower_is_better=False))
        if bini_poisson:
            # BiNI's seconds at this run's machine speed, through the poisson reference.
            speed = totals["poisson"] / (bini_poisson * sum("bini_made" in r for r in rows))
            bini_now = totals["bini"] * speed
            targets.append(target("total time / BiNI's (scaled by the in-run poisson reference)",
                                  totals["ours"] / bini_now, 1.0))
            notes.append(f"machine speed vs BiNI's run (poisson now / then): {speed:.2f}; "
                         f"BiNI total at this speed {bini_now:.2f} s")
        targets.append(target("total time / BiNI's published seconds (unscaled)",
                              totals["ours"] / totals["bini"], 1.0))
    return BenchReport(name="integration", rows=rows, targets=targets, notes=notes)
