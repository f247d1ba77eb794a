"""The on-disk layout of a synthetic dataset: shards of .npy arrays, a manifest, a contact sheet.

Layout (``OUT`` = the folder ``facenormals3d synth -o`` writes)::

    OUT/manifest.json            settings, seed, counts per split, shard list, this layout
    OUT/contact_sheet.png        64 samples: image | normals | mask (hair in red), for a person to look at
    OUT/<split>/shard-NNNNN/     split = train | val | test; up to ``shard_size`` samples
        image.npy      N x S x S x 3  uint8    sRGB photo
        normals.npy    N x S x S x 3  float16  unit camera-frame normals (x right, y up,
                                               z toward the camera); 0 outside the mask
        mask.npy       N x S x S      uint8    1 = face (see facenormals3d.data.synth)
        hair.npy       N x S x S      uint8    hair coverage x 255 (normals and mask under
                                               hair stay the skin's; layout 2, optional)
        depth.npy      N x S x S      float16  depth minus depth_offset (mm); NaN = background
        depth_offset.npy  N           float32  per-sample offset (mm, the mean face depth): depth = depth.npy + offset
        albedo.npy     N x S x S x 3  uint8    linear albedo, sRGB-encoded for precision
        shading.npy    N x S x S x 3  float16  linear diffuse shading
        landmarks68.npy N x 68 x 2    float32  crop pixel coordinates (pixel centres at +0.5)
        identity.npy   N              int64    identity id (split = id mod 20 rule)
        seed.npy       N              int64    sample seed
        params.jsonl   one JSON object per sample: everything that was drawn

Every array is a plain uncompressed .npy so readers memory-map them
(``np.load(path, mmap_mode="r")``): a sample read touches only its own bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facenormals3d.data.albedo import linear_to_srgb8, srgb_to_linear
from facenormals3d.errors import InputError
from facenormals3d.outputs import json_default

LAYOUT_VERSION = 2
#: 8-bit sRGB code -> linear float32 (the albedo decoding table).
_SRGB8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
ARRAYS = ("image", "normals", "mask", "hair", "depth", "depth_offset", "albedo", "shading",
          "landmarks68", "identity", "seed")
#: Arrays that shards of an older layout may lack; readers fill them with zeros.
OPTIONAL = ("hair",)


def encode(sample) -> dict[str, np.ndarray]:
    """A :class:`~facenormals3d.data.synth.Sample` as the per-sample arrays of a shard."""
    hit = sample.depth > 0
    # Any depth inside the face works as the offset (float16 keeps ~0.06 mm around it);
    # the mean is much cheaper than the median.
    offset = float(sample.depth.sum(dtype=np.float64) / max(int(hit.sum()), 1))
    rel = np.where(hit, sample.depth - offset, np.nan).astype(np.float16)
    return {"image": sample.image.astype(np.uint8), "normals": sample.normals.astype(np.float16),
            "mask": sample.mask.astype(np.uint8), "hair": _hair_u8(sample), "depth": rel, "depth_offset": np.float32(offset),
            "albedo": linear_to_srgb8(sample.albedo),
            "shading": np.minimum(sample.shading, 60000).astype(np.float16),
            "landmarks68": sample.landmarks68.astype(np.float32),
            "identity": np.int64(sample.identity), "seed": np.int64(sample.seed)}


def decode(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One sample's shard arrays back to float maps (H x W x C, depth 0 on the background)."""
    depth = arrays["depth"].astype(np.float32)
    depth = np.where(np.isfinite(depth), depth + np.float32(arrays["depth_offset"]), 0.0).astype(np.float32)
    return {"image": arrays["image"].astype(np.float32) / 255.0,
            "normals": arrays["normals"].astype(np.float32),
            "mask": arrays["mask"].astype(np.float32), "depth": depth,
            "hair": (arrays["hair"].astype(np.float32) / 255.0 if "hair" in arrays
                     else np.zeros(arrays["mask"].shape, dtype=np.float32)),
            "albedo": _SRGB8_TO_LINEAR[arrays["albedo"]],
            "shading": arrays["shading"].astype(np.float32),
            "landmarks68": np.asarray(arrays["landmarks68"], dtype=np.float32),
            "identity": np.int64(arrays["identity"]), "seed": np.int64(arrays["seed"])}


def _hair_u8(sample) -> np.ndarray:
    hair = getattr(sample, "hair", None)
    if hair is None:
        return np.zeros(sample.mask.shape, dtype=np.uint8)
    return np.round(np.clip(hair, 0, 1) * 255).astype(np.uint8)


def write_shard(folder: Path, samples: list[dict[str, np.ndarray]], params: list[dict]) -> None:
    """Write encoded samples as one shard folder (plain .npy files + params.jsonl)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ARRAYS:
        np.save(folder / f"{name}.npy", np.stack([s[name] for s in samples]))
    with open(folder / "params.jsonl", "w") as f:
        for p in params:
            f.write(json.dumps(p, default=json_default) + "\n")


class ShardWriter:
    """Collects encoded samples per split and writes a shard whenever one is full."""

    def __init__(self, root: Path, shard_size: int = 256):
        self.root = Path(root)
        self.shard_size = int(shard_size)
        self.pending: dict[str, tuple[list, list]] = {}
        self.shards: dict[str, list[dict]] = {}

    def add(self, split: str, arrays: dict[str, np.ndarray], params: dict) -> None:
        buf = self.pending.setdefault(split, ([], []))
        buf[0].append(arrays)
        buf[1].append(params)
        if len(buf[0]) >= self.shard_size:
            self._flush(split)

    def _flush(self, split: str) -> None:
        samples, params = self.pending.pop(split, ([], []))
        if not samples:
            return
        done = self.shards.setdefault(split, [])
        rel = f"{split}/shard-{len(done):05d}"
        write_shard(self.root / rel, samples, params)
        done.append({"path": rel, "count": len(samples)})

    def close(self) -> dict[str, list[dict]]:
        """Write what is pending; return ``{split: [{"path", "count"}, ...]}``."""
        for split in list(self.pending):
            self._flush(split)
        return self.shards


def read_manifest(root: str | Path) -> dict:
    """The manifest of a dataset folder; :class:`InputError` if it is missing or malformed."""
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise InputError(root, "not a synthetic dataset: manifest.json is missing")
    try:
        manifest = json.loads(path.read_text())
        manifest["shards"]
    except (ValueError, KeyError) as err:
        raise InputError(path, f"malformed manifest ({err})") from None
    return manifest


def contact_sheet(samples: list[dict], columns: int = 4, tile: int = 128) -> np.ndarray:
    """``uint8`` RGB sheet: per sample image | normals | mask (hair coverage in red), ``tile`` pixels each.

    ``samples`` are dicts with ``image`` (uint8 S x S x 3), ``normals`` (S x S x 3),
    ``mask`` (S x S) and optionally ``hair`` (S x S, uint8 x 255 or float), e.g. the
    output of :func:`encode`.
    """
    from PIL import Image

    from facenormals3d.conventions import normals_to_preview

    cells = []
    for s in samples:
        mask = np.asarray(s["mask"]).astype(bool)
        third = np.repeat(mask[..., None] * 255.0, 3, 2)
        if "hair" in s:  # hair coverage in red over the mask
            hair = np.asarray(s["hair"], dtype=np.float32)
            hair = hair / 255.0 if np.asarray(s["hair"]).dtype == np.uint8 else hair
            third = third * (1 - hair[..., None]) + hair[..., None] * np.array([230.0, 40.0, 40.0])
        parts = [np.asarray(s["image"]), normals_to_preview(np.asarray(s["normals"], dtype=np.float32), mask),
                 third.astype(np.uint8)]
        parts = [np.asarray(Image.fromarray(p).resize((tile, tile), Image.BILINEAR)) for p in parts]
        cells.append(np.concatenate(parts, axis=1))
    if not cells:
        return np.zeros((tile, 3 * tile, 3), dtype=np.uint8)
    rows = -(-len(cells) // columns)
    blank = np.zeros_like(cells[0])
    cells += [blank] * (rows * columns - len(cells))
    gap = np.full((tile, 4, 3), 255, dtype=np.uint8)
    lines = [np.concatenate(sum(([c, gap] for c in cells[r * columns:(r + 1) * columns]), [])[:-1], axis=1)
             for r in range(rows)]
    hgap = np.full((4, lines[0].shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate(sum(([ln, hgap] for ln in lines), [])[:-1], axis=0)
