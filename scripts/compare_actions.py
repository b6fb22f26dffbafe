"""Compare two policies' deterministic actions on one demo's states, per action dimension.

Open-loop numbers that say which commands a fine-tuning changed (GAIL run I: the roll and
pitch commands, which BC keeps near 0, grew 7x).

    python scripts/compare_actions.py runs/gail_exp/bc60/last.ckpt runs/gail_exp/gail_I/last.ckpt \
        data/gail/lift_clean_60.hdf5
"""

from __future__ import annotations

import argparse

import h5py
import numpy as np
import torch

from vismanip.policies.checkpoint import load_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("demos")
    parser.add_argument("--demo", default="demo_0")
    args = parser.parse_args()
    first = load_policy(args.first).weights.build().eval()
    second = load_policy(args.second).weights.build().eval()
    with h5py.File(args.demos, "r") as file:
        demo = file[f"data/{args.demo}"]
        keys = (*first.image_keys, *first.lowdim_keys)
        obs = {key: torch.as_tensor(demo["obs"][key][()]) for key in keys}
        demo_actions = demo["actions"][()]
    with torch.no_grad():
        ours, theirs = first.predict(obs).numpy(), second.predict(obs).numpy()
    np.set_printoptions(precision=3, suppress=True)
    print(f"mean |action| per dimension on {args.demo} ({len(demo_actions)} steps)")
    print(f"  demo   {np.abs(demo_actions).mean(0)}")
    print(f"  first  {np.abs(ours).mean(0)}")
    print(f"  second {np.abs(theirs).mean(0)}")
    print(f"max |first - second| {np.abs(ours - theirs).max(0)}")


if __name__ == "__main__":
    main()
