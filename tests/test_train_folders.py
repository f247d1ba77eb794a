"""Image-only and normal-only folder datasets, and `facenormals3d train` on them."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from facenormals3d.cli import main
from facenormals3d.conventions import write_normal_png
from facenormals3d.data.folders import ImageFolderDataset, NormalFolderDataset
from facenormals3d.errors import InputError


def sphere_normals(size):
    ys, xs = np.meshgrid(np.linspace(1, -1, size), np.linspace(-1, 1, size), indexing="ij")
    inside = xs**2 + ys**2 < 0.8
    n = np.stack([xs, ys, np.sqrt(np.clip(1 - xs**2 - ys**2, 0, 1))], -1).astype(np.float32)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[~inside] = np.nan
    return n, inside


def write_folders(root, size=32, count=3):
    rng = np.random.default_rng(0)
    images, normals = root / "images", root / "normals"
    (images / "sub").mkdir(parents=True)
    normals.mkdir()
    n, inside = sphere_normals(size)
    for i in range(count):
        iio.imwrite(images / "sub" / f"face{i}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        write_normal_png(normals / f"face{i}_normals.png", n, inside)
    iio.imwrite(images / "sub" / "face0_mask.png", (inside * 255).astype(np.uint8))
    np.save(normals / "extra_normals.npy", n)
    return images, normals


def test_image_folder_items(tmp_path):
    images, _ = write_folders(tmp_path)
    ds = ImageFolderDataset(images, size=64)
    assert len(ds) == 3  # the mask is not a photo
    item = ds[0]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert 0 < item["mask"].mean() < 1  # face0 has a mask
    assert ds[1]["mask"].min() == 1  # no mask: whole image


def test_normal_folder_items_follow_conventions(tmp_path):
    _, normals = write_folders(tmp_path)
    ds = NormalFolderDataset(normals, size=32)
    assert len(ds) == 4  # three PNGs and one .npy
    n, inside = sphere_normals(32)
    for item in (ds[0], ds[-1]):
        assert item["normals"].shape == (3, 32, 32) and item["mask"].shape == (1, 32, 32)
        assert torch.equal(item["mask"][0].bool(), torch.from_numpy(inside))
        got = item["normals"].permute(1, 2, 0).numpy()[inside]
        assert np.allclose(got, n[inside], atol=1e-3)  # 16-bit PNG quantisation
        assert (item["normals"][:, ~torch.from_numpy(inside)] == 0).all()


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(InputError, match="not found"):
        ImageFolderDataset(tmp_path / "nope")
    with pytest.raises(InputError, match="no usable files"):
        NormalFolderDataset(tmp_path)


def test_train_command_on_folders_then_export(tmp_path, capsys):
    images, normals = write_folders(tmp_path)
    run = tmp_path / "run"
    common = ["train", "--images", str(images), "--normals", str(normals), "-o", str(run),
              "--width", "0.0625", "--input-size", "32", "--batch-size", "2", "--device", "cpu",
              "--log-every", "1", "--quiet"]
    assert main(common + ["--steps", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 2
    assert main(common + ["--steps", "2"]) == 5  # run exists: refuses without --resume/--overwrite
    assert main(common + ["--steps", "3", "--resume"]) == 0
    assert json.loads((run / "train_config.json").read_text())["steps"] == 3
    assert main(["train", "--export-weights", str(run / "checkpoint.pt"), str(tmp_path / "w.safetensors")]) == 0
    assert (tmp_path / "w.json").is_file()
    assert main(["train", "-o", str(run)]) == 3  # no data given


def test_paired_folder_layout(tmp_path):
    import imageio.v3 as iio
    import numpy as np

    from facenormals3d.conventions import write_normal_png
    from facenormals3d.data.folders import PairedFolderDataset

    n = np.zeros((16, 16, 3), np.float32)
    n[..., 2] = 1.0
    for split, names in (("train", ["a", "b"]), ("val", ["c"])):
        d = tmp_path / split / "subject1"
        d.mkdir(parents=True)
        for name in names:
            iio.imwrite(d / f"{name}.png", np.full((16, 16, 3), 100, np.uint8))
            write_normal_png(d / f"{name}_normals.png", n)
    train, val = PairedFolderDataset(tmp_path, "train", 32), PairedFolderDataset(tmp_path, "val", 32)
    assert len(train) == 2 and len(val) == 1
    item = train[0]
    assert item["image"].shape == (3, 32, 32) and item["normals"].shape == (3, 32, 32)
    assert float(item["mask"].mean()) == 1.0 and abs(float(item["normals"][2].mean()) - 1.0) < 1e-3
    # A photo without its normal map is refused by name.
    iio.imwrite(tmp_path / "train" / "lonely.png", np.zeros((16, 16, 3), np.uint8))
    import pytest

    from facenormals3d.errors import InputError

    with pytest.raises(InputError, match="lonely.png: paired folder"):
        PairedFolderDataset(tmp_path, "train", 32)
