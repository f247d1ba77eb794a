"""Two CPU processes under torchrun (gloo) train 2 steps; only rank 0 writes."""

import json
import os
import subprocess
import sys
import textwrap

import torch

SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from facenormals3d.model.config import ModelConfig
    from facenormals3d.training.config import TrainConfig
    from facenormals3d.training.data import DataSources
    from facenormals3d.training.train import train

    class Fake(torch.utils.data.Dataset):
        def __init__(self, n, seed):
            self.n, self.seed = n, seed
        def __len__(self):
            return self.n
        def __getitem__(self, i):
            g = torch.Generator().manual_seed(self.seed * 100 + i)
            normals = torch.nn.functional.normalize(torch.randn(3, 32, 32, generator=g), dim=0)
            return {"image": torch.rand(3, 32, 32, generator=g), "normals": normals,
                    "mask": torch.ones(1, 32, 32), "identity": torch.tensor(i)}

    cfg = TrainConfig(model=ModelConfig(width=1 / 16, input_size=32), steps=2, batch_size=2,
                      val_every=2, val_samples=2, checkpoint_every=1, log_every=1)
    data = DataSources(paired_train=Fake(8, 0), paired_val=Fake(2, 1), images=Fake(4, 2), normals=Fake(4, 3))
    result = train(cfg, data, sys.argv[1], device="cpu")
    # One atomic write per rank: the two processes share the stdout pipe.
    os.write(1, f"RANK_DONE {torch.distributed.get_rank()} {result.step}\\n".encode())
""")


def test_torchrun_two_processes(tmp_path):
    script = tmp_path / "ddp_script.py"
    script.write_text(SCRIPT)
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(run)], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RANK_DONE 0 2" in proc.stdout and "RANK_DONE 1 2" in proc.stdout
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 2
    # Each rank read its own half of the 8 paired samples: 2 batches of 2 = one epoch's shard.
    assert ckpt["data"]["paired_train"] == {"epoch": 0, "pos": 2}
    rows = (run / "log_train.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [1, 2]  # rank 0 alone writes the log
    assert (run / "samples" / "val_00000002.png").is_file()
