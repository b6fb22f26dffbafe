"""Lightning DDP on 2 CPU processes (gloo): each rank trains on its own share of the
data, and the run's files are written once."""

import subprocess
import sys
from pathlib import Path

import h5py
import torch


def test_two_ranks_see_disjoint_samples_and_one_checkpoint_is_written(tiny_dataset, tmp_path):
    path, _ = tiny_dataset
    seen, run = tmp_path / "seen", tmp_path / "run"
    seen.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("ddp_probe.py")),
            str(seen),
            f"data={path}",
            f"output_dir={run}",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            "trainer.max_epochs=1",
            "loader.batch_size=2",
            "loader.valid_mask=''",
            "rollout.every_n_epochs=0",
            "policy.lowdim_keys=[robot0_eef_pos]",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = {
        name: [int(line) for line in (seen / f"{name}.txt").read_text().split()]
        for name in ("rank_0", "rank_1")
    }
    with h5py.File(path, "r") as file:
        names = [name.decode() for name in file["mask/train"][()]]
        samples = sum(int(file[f"data/{name}"].attrs["num_samples"]) for name in names)
    # DistributedSampler gives each rank ceil(samples / 2) (padding an odd count with one
    # repeated sample); the loader keeps whole batches of 2.
    share = -(-samples // 2)
    assert len(ranks["rank_0"]) == len(ranks["rank_1"]) == share // 2 * 2
    assert len(set(ranks["rank_0"]) & set(ranks["rank_1"])) <= samples % 2, ranks
    assert sorted(p.name for p in run.glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]
    assert not list(run.glob("*.tmp"))
    checkpoint = torch.load(run / "last.ckpt", weights_only=False)
    assert checkpoint["epoch"] == 0 and checkpoint["global_step"] > 0
