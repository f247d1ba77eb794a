"""Writing shards (``facenormals3d synth``) and reading them back (``ShardDataset``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facenormals3d.data.fake_ict import write_fake_ict
from facenormals3d.data.synth import SynthSettings


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACENORMALS3D_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield write_fake_ict(tmp_path_factory.mktemp("ict") / "ICT-FaceKit", n_lat=24, n_lon=32)


SMALL = SynthSettings(size=64)


def test_shards_round_trip(fake_dir, tmp_path):
    from facenormals3d.data.datasets import ShardDataset, SynthDataset
    from facenormals3d.data.generate import generate
    from facenormals3d.data.synth import sample_seed

    result = generate(fake_dir, 7, tmp_path / "ds", seed=4, workers=1, settings=SMALL, shard_size=3)
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert sum(manifest["counts"].values()) == 7 == sum(result.counts.values())
    assert manifest["settings"]["size"] == 64 and (tmp_path / "ds" / "contact_sheet.png").is_file()
    assert SynthSettings.from_dict(manifest["settings"]) == SMALL
    shards = ShardDataset(tmp_path / "ds")
    assert len(shards) == 7
    fresh = SynthDataset(fake_dir, n=7, seed=4, split=None, settings=SMALL)
    by_seed = {int(shards[i]["seed"]): shards[i] for i in range(len(shards))}
    for i in range(7):
        ref = fresh[i]
        got = by_seed[sample_seed(4, i)]
        assert set(got) == set(ref)
        assert np.array_equal(got["image"].numpy(), ref["image"].numpy())
        assert np.array_equal(got["mask"].numpy(), ref["mask"].numpy())
        np.testing.assert_allclose(got["normals"].numpy(), ref["normals"].numpy(), atol=1e-3)
        hit = ref["depth"].numpy() > 0
        assert np.array_equal(got["depth"].numpy() > 0, hit)
        np.testing.assert_allclose(got["depth"].numpy()[hit], ref["depth"].numpy()[hit], atol=0.3)
        np.testing.assert_allclose(got["albedo"].numpy(), ref["albedo"].numpy(), atol=0.01)
        np.testing.assert_allclose(got["shading"].numpy(), ref["shading"].numpy(), rtol=2e-3, atol=1e-3)
        assert np.array_equal(got["landmarks68"].numpy(), ref["landmarks68"].numpy())
        assert int(got["identity"]) == int(ref["identity"])
    for split, count in manifest["counts"].items():
        if count:
            part = ShardDataset(tmp_path / "ds", split=split)
            assert len(part) == count
            assert all(int(part[i]["identity"]) % 20 == {"test": 0, "val": 1}.get(split, int(part[i]["identity"]) % 20)
                       for i in range(count))


def test_worker_count_does_not_change_the_data(fake_dir, tmp_path):
    from facenormals3d.data.generate import generate

    generate(fake_dir, 3, tmp_path / "one", seed=1, workers=1, settings=SMALL)
    generate(fake_dir, 3, tmp_path / "two", seed=1, workers=2, settings=SMALL)
    for name in ("image.npy", "normals.npy", "seed.npy"):
        a = np.load(next((tmp_path / "one").glob(f"*/shard-00000/{name}")))
        b = np.load(next((tmp_path / "two").glob(f"*/shard-00000/{name}")))
        assert np.array_equal(a, b)


def test_cli_writes_atomically_and_reports_errors(fake_dir, tmp_path, capsys):
    from facenormals3d.cli import main

    out = tmp_path / "cli"
    assert main(["synth", "--ict-dir", str(fake_dir), "-n", "2", "-o", str(out), "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sum(report["counts"].values()) == 2 and (out / "manifest.json").is_file()
    assert main(["synth", "--ict-dir", str(fake_dir), "-n", "2", "-o", str(out), "-q"]) == 5  # exists
    assert main(["synth", "--ict-dir", str(tmp_path / "nope"), "-n", "2", "-o", str(tmp_path / "x"), "-q"]) == 3
    assert not (tmp_path / "x").exists()
    assert not list(tmp_path.glob(".cli.partial-*"))


def test_shard_dataset_rejects_a_folder_without_manifest(tmp_path):
    from facenormals3d.data.datasets import ShardDataset
    from facenormals3d.errors import InputError

    with pytest.raises(InputError, match="manifest.json"):
        ShardDataset(tmp_path)


def test_help_explains_the_layout(capsys):
    from facenormals3d.cli import main

    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    text = capsys.readouterr().out
    assert "normals.npy" in text and "manifest.json" in text and "mod 20" in text
