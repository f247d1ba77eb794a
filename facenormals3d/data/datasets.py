"""Torch datasets of synthetic faces: rendered on the fly, or read from written shards.

Both return the same dict per item (``S`` = crop side)::

    image        float32 3 x S x S in [0, 1]   the photo (sRGB)
    normals      float32 3 x S x S             unit camera-frame normals, 0 outside the mask
    mask         float32 1 x S x S in {0, 1}   face mask
    hair         float32 1 x S x S in [0, 1]   hair coverage (normals under it are the skin's)
    depth        float32 1 x S x S             mm along the optical axis, 0 on the background
    albedo       float32 3 x S x S             linear reflectance
    shading      float32 3 x S x S             linear diffuse shading
    landmarks68  float32 68 x 2                crop pixel coordinates
    identity     int64                         identity id (decides the split)
    seed         int64                         sample seed

Splits are by identity (see :func:`facenormals3d.data.synth.identity_split`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from facenormals3d.errors import InputError


def to_item(maps: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """H x W x C float maps (as from :func:`facenormals3d.data.shards.decode`) -> the item dict."""
    def chw(a: np.ndarray) -> torch.Tensor:
        a = np.asarray(a, dtype=np.float32)
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(a))

    hair = maps.get("hair")
    if hair is None:
        hair = np.zeros(np.shape(maps["mask"]), dtype=np.float32)
    return {"image": chw(maps["image"]), "normals": chw(maps["normals"]), "mask": chw(maps["mask"]),
            "hair": chw(hair),
            "depth": chw(maps["depth"]), "albedo": chw(maps["albedo"]), "shading": chw(maps["shading"]),
            "landmarks68": torch.from_numpy(np.asarray(maps["landmarks68"], dtype=np.float32).copy()),
            "identity": torch.tensor(int(maps["identity"]), dtype=torch.int64),
            "seed": torch.tensor(int(maps["seed"]), dtype=torch.int64)}


def sample_to_item(sample) -> dict[str, torch.Tensor]:
    """A :class:`~facenormals3d.data.synth.Sample` as the item dict."""
    return to_item({"image": sample.image.astype(np.float32) / 255.0, "normals": sample.normals,
                    "mask": sample.mask.astype(np.float32), "depth": sample.depth, "hair": sample.hair,
                    "albedo": sample.albedo, "shading": sample.shading,
                    "landmarks68": sample.landmarks68, "identity": sample.identity, "seed": sample.seed})


class SynthDataset(Dataset):
    """``n`` samples rendered on demand; item ``i`` is always the same sample.

    Args:
        ict_dir: ICT FaceKit folder (public repository layout).
        n: number of samples.
        seed: dataset seed.
        split: "train", "val", "test" (identities of that split only) or None (any).
        settings: :class:`~facenormals3d.data.synth.SynthSettings`.

    Each DataLoader worker builds its own engine on first use (the model loads from the
    .npz cache); no random state is shared: every item seeds its own generator.
    """

    def __init__(self, ict_dir: str | Path, n: int, seed: int = 0, split: str | None = "train", settings=None):
        from facenormals3d.data.ict import load_ict
        from facenormals3d.data.synth import SPLITS, SynthSettings

        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        if int(n) < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.ict_dir = str(ict_dir)
        self.n, self.seed, self.split = int(n), int(seed), split
        self.settings = settings if settings is not None else SynthSettings()
        load_ict(self.ict_dir)  # check the folder (and build the cache) up front
        self._engine = None

    def __len__(self) -> int:
        return self.n

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_engine"] = None  # each worker process builds its own
        return state

    def engine(self):
        if self._engine is None:
            from facenormals3d.data.ict import load_ict
            from facenormals3d.data.synth import SynthEngine

            self._engine = SynthEngine(load_ict(self.ict_dir), self.settings)
        return self._engine

    def sample(self, index: int):
        """The :class:`~facenormals3d.data.synth.Sample` of item ``index`` (with its params)."""
        if not 0 <= index < self.n:
            raise IndexError(index)
        return self.engine().render_index(self.seed, index, self.split)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return sample_to_item(self.sample(int(index)))


class SynthStreamDataset(SynthDataset):
    """Synthetic data that never repeats: item ``i`` (any ``i >= 0``) is sample ``i`` of the
    dataset with seed ``seed``, from the identities of ``split``.

    ``endless = True`` tells the trainer to read it with
    :class:`facenormals3d.training.data.StreamBatches` (consecutive indices, resumable by
    position) instead of epochs; ``len`` is only a bound (2^62).
    """

    endless = True

    def __init__(self, ict_dir: str | Path, seed: int = 0, split: str | None = "train", settings=None):
        super().__init__(ict_dir, 2 ** 62, seed, split, settings)


class ShardDataset(Dataset):
    """Samples written by ``facenormals3d synth`` (see :mod:`facenormals3d.data.shards`).

    Args:
        root: the dataset folder (holds manifest.json).
        split: "train", "val", "test", or None for all splits.

    Arrays are memory-mapped per shard on first use in each process.
    """

    def __init__(self, root: str | Path, split: str | None = None):
        from facenormals3d.data.shards import read_manifest

        self.root = Path(root)
        manifest = read_manifest(self.root)
        splits = list(manifest["shards"]) if split is None else [split]
        if split is not None and split not in manifest["shards"]:
            known = ", ".join(manifest["shards"]) or "none"
            raise InputError(self.root, f"no samples of split {split!r} (splits: {known})")
        self.shards = [s["path"] for sp in splits for s in manifest["shards"][sp]]
        counts = [s["count"] for sp in splits for s in manifest["shards"][sp]]
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.manifest = manifest
        self._maps: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def _arrays(self, shard: int) -> dict[str, np.ndarray]:
        if shard not in self._maps:
            from facenormals3d.data.shards import ARRAYS, OPTIONAL

            folder = self.root / self.shards[shard]
            try:
                self._maps[shard] = {k: np.load(folder / f"{k}.npy", mmap_mode="r") for k in ARRAYS
                                     if k not in OPTIONAL or (folder / f"{k}.npy").is_file()}
            except (OSError, ValueError) as err:
                raise InputError(folder, f"cannot read shard ({err})") from None
        return self._maps[shard]

    def raw(self, index: int) -> dict[str, np.ndarray]:
        """The stored (encoded) arrays of one sample."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        shard = int(np.searchsorted(self.starts, index, side="right") - 1)
        local = index - int(self.starts[shard])
        return {k: np.asarray(v[local]) for k, v in self._arrays(shard).items()}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from facenormals3d.data.shards import decode

        return to_item(decode(self.raw(int(index))))
