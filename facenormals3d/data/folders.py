"""Datasets read from plain folders a user brings: photos only, normal maps only, or pairs.

Image-only folder (``facenormals3d train --images DIR``)::

    DIR/**/NAME.png | NAME.jpg | NAME.jpeg    face crops, RGB (alpha dropped), any size
    DIR/**/NAME_mask.png                      optional 8-bit face mask (255 = face)

Normal-only folder (``facenormals3d train --normals DIR``)::

    DIR/**/NAME_normals.png                   16- or 8-bit RGB = (n + 1) / 2, 0 outside
    DIR/**/NAME_normals.npy                   or float32 H x W x 3, NaN outside
    DIR/**/NAME_mask.png                      optional mask; else valid pixels are the mask

Paired folder (``facenormals3d train --paired DIR`` when DIR has no ``manifest.json``;
Photoface-style or scan-rendered data)::

    DIR/train/**/NAME.png | .jpg              face crop
    DIR/train/**/NAME_normals.png | .npy      its aligned normal map (same pixels)
    DIR/train/**/NAME_mask.png                optional mask
    DIR/val/**/...                            the same, held out (other subjects!)

Without ``train/`` and ``val/`` sub-folders every pair is used for training.

Normals follow :mod:`facenormals3d.conventions` (camera space, x right, y up, z toward
the camera). Crops should be square and framed like the landmark crop rule; other sizes
are resized to ``size``. Items are dicts with the keys the paired shard dataset uses:
``"image"`` float32 3 x H x W in [0, 1] or ``"normals"`` float32 3 x H x W (zero outside
the mask), and ``"mask"`` float32 1 x H x W.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facenormals3d.conventions import read_normal_map
from facenormals3d.errors import InputError

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")


def _find(root: str | Path, keep) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "dataset folder not found")
    files = sorted(p for p in root.rglob("*") if p.is_file() and keep(p))
    if not files:
        raise InputError(root, "no usable files in dataset folder (see the documented layout)")
    return files


def _read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """Optional ``*_mask.png`` as a bool H x W array (None when absent)."""
    import imageio.v3 as iio

    if not path.is_file():
        return None
    m = np.asarray(iio.imread(path))
    if m.ndim == 3:
        m = m[..., 0]
    if m.shape != shape:
        raise InputError(path, f"mask is {m.shape}, its image is {shape}")
    return m > 127


def _resize(t: torch.Tensor, size: int | None, mode: str) -> torch.Tensor:
    """Resize a C x H x W tensor to size x size (no-op when already that size or size is None)."""
    if size is None or t.shape[-2:] == (size, size):
        return t
    kw = {"align_corners": False, "antialias": True} if mode == "bilinear" else {}
    return F.interpolate(t[None], size=(size, size), mode=mode, **kw)[0]


class ImageFolderDataset(torch.utils.data.Dataset):
    """Face photos from a folder (see the module docstring). Mask = whole image if none given."""

    def __init__(self, root: str | Path, size: int | None = 256):
        self.size = size
        self.files = _find(root, lambda p: p.suffix.lower() in PHOTO_SUFFIXES
                           and not p.stem.endswith(("_mask", "_normals")))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return load_photo_item(self.files[i], self.size)


def load_photo_item(path: Path, size: int | None) -> dict[str, torch.Tensor]:
    """``{"image", "mask"}`` for one photo of a folder dataset (mask = whole image if none)."""
    import imageio.v3 as iio

    try:
        rgb = np.asarray(iio.imread(path))
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot read image ({err})") from None
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise InputError(path, f"expected an RGB image, got shape {rgb.shape}")
    scale = 65535.0 if rgb.dtype == np.uint16 else 255.0
    image = torch.from_numpy(rgb[..., :3].astype(np.float32) / scale).permute(2, 0, 1)
    mask = _read_mask(path.with_name(path.stem + "_mask.png"), rgb.shape[:2])
    mask_t = torch.ones(1, *rgb.shape[:2]) if mask is None else torch.from_numpy(mask[None].astype(np.float32))
    return {"image": _resize(image, size, "bilinear").clamp(0, 1),
            "mask": (_resize(mask_t, size, "nearest") > 0.5).float()}


class NormalFolderDataset(torch.utils.data.Dataset):
    """Normal maps from a folder (see the module docstring)."""

    def __init__(self, root: str | Path, size: int | None = 256):
        self.size = size
        self.files = _find(root, lambda p: p.suffix.lower() in (".png", ".npy")
                           and p.stem.endswith("_normals"))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return load_normal_item(self.files[i], self.size)


def load_normal_item(path: Path, size: int | None) -> dict[str, torch.Tensor]:
    """``{"normals", "mask"}`` for one ``NAME_normals.*`` file (mask = valid pixels [& NAME_mask.png])."""
    n = read_normal_map(path)
    valid = np.all(np.isfinite(n), axis=-1)
    mask = _read_mask(path.with_name(path.stem[: -len("_normals")] + "_mask.png"), n.shape[:2])
    if mask is not None:
        valid &= mask
    n = np.where(valid[..., None], np.nan_to_num(n), 0.0).astype(np.float32)
    normals = _resize(torch.from_numpy(n).permute(2, 0, 1), size, "nearest")
    mask_t = _resize(torch.from_numpy(valid[None].astype(np.float32)), size, "nearest")
    return {"normals": normals * mask_t, "mask": mask_t}


class PairedFolderDataset(torch.utils.data.Dataset):
    """Photos with aligned normal maps from a folder (layout in the module docstring).

    ``split``: ``"train"`` or ``"val"`` reads ``root/<split>/`` when ``root`` has split
    folders; without them ``"train"`` reads all of ``root`` and ``"val"`` is empty.
    """

    def __init__(self, root: str | Path, split: str = "train", size: int | None = 256):
        root = Path(root)
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.size = size
        has_splits = (root / "train").is_dir()
        folder = root / split if has_splits else root
        self.pairs: list[tuple[Path, Path]] = []
        if split == "val" and not has_splits:
            return
        if not folder.is_dir():
            return  # a split folder that does not exist is an empty split
        for photo in _find(folder, lambda p: p.suffix.lower() in PHOTO_SUFFIXES
                           and not p.stem.endswith(("_mask", "_normals"))):
            twins = [photo.with_name(photo.stem + "_normals" + ext) for ext in (".npy", ".png")]
            normal = next((t for t in twins if t.is_file()), None)
            if normal is None:
                raise InputError(photo, "paired folder: no NAME_normals.png/.npy next to this photo")
            self.pairs.append((photo, normal))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        photo, normal = self.pairs[i]
        item = load_photo_item(photo, self.size)
        n = load_normal_item(normal, self.size)
        if n["normals"].shape[-2:] != item["image"].shape[-2:]:
            raise InputError(normal, f"normal map is {tuple(n['normals'].shape[-2:])}, its photo "
                                     f"{tuple(item['image'].shape[-2:])}: pairs must be pixel-aligned")
        mask = item["mask"] * n["mask"]
        return {"image": item["image"], "normals": n["normals"] * mask, "mask": mask,
                "identity": torch.tensor(i, dtype=torch.int64)}
