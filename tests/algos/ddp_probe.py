"""`vismanip train` under DDP with a probe: every rank records the samples it trained on.

Run by tests/algos/test_ddp.py as `python ddp_probe.py OUT_DIR key=value...`. Lightning's
DDP launcher starts rank 1 by running this same command again, so the probe is in place
in every rank's process.
"""

import os
import sys
from pathlib import Path

from vismanip.algos.bc import TrainConfig, train
from vismanip.config import load_config
from vismanip.data.datamodule import DemoDataset

seen_dir = Path(sys.argv[1])
original = DemoDataset.__getitems__


def recording(self: DemoDataset, items: list[int]) -> dict:
    rank = os.environ.get("LOCAL_RANK", "0")
    with (seen_dir / f"rank_{rank}.txt").open("a") as file:
        file.write("".join(f"{item}\n" for item in items))
    return original(self, items)


DemoDataset.__getitems__ = recording  # type: ignore[method-assign]
train(load_config(TrainConfig, None, sys.argv[2:]))
