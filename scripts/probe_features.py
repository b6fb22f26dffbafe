"""Does a policy's frozen encoder see where the object is? A linear probe.

GAIL trains only what follows the BC policy's encoder. If the encoder's keypoints do not
carry the cube's position relative to the gripper, no reward can teach the actor to steer
to it. This fits a ridge regression from the encoder's output (image keypoints +
proprio) to `gripper_to_<object>_pos` on the demos of some episodes and reports R² on the
others, beside the same probe from proprio alone (what the arm's pose says by itself).

    python scripts/probe_features.py runs/gail_exp/bc60/last.ckpt data/gail/lift_clean_60.hdf5
"""

from __future__ import annotations

import argparse

import h5py
import numpy as np
import torch

from vismanip.data.hdf5 import demo_names
from vismanip.policies.checkpoint import load_policy


def ridge_r2(train_x, train_y, test_x, test_y, alpha: float = 1e-2) -> np.ndarray:
    """R² per output of a ridge regression (inputs standardised on the training rows)."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a = np.c_[(train_x - mean) / std, np.ones(len(train_x))]
    b = np.c_[(test_x - mean) / std, np.ones(len(test_x))]
    weights = np.linalg.solve(a.T @ a + alpha * len(a) * np.eye(a.shape[1]), a.T @ train_y)
    residual = ((b @ weights - test_y) ** 2).sum(0)
    return 1 - residual / ((test_y - test_y.mean(0)) ** 2).sum(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("data")
    parser.add_argument("--object", default="cube")
    parser.add_argument("--held-out", type=float, default=0.25, help="share of demos tested")
    args = parser.parse_args()
    policy = load_policy(args.checkpoint).weights.build().eval()
    target_key = f"gripper_to_{args.object}_pos"
    features, proprio, targets, demo_of = [], [], [], []
    with h5py.File(args.data, "r") as file, torch.no_grad():
        for index, name in enumerate(demo_names(file)):
            obs = file[f"data/{name}/obs"]
            batch = {
                key: torch.as_tensor(obs[key][()])
                for key in (*policy.image_keys, *policy.lowdim_keys)
            }
            features.append(policy.encode(batch).numpy())
            proprio.append(np.concatenate([obs[k][()] for k in policy.lowdim_keys], axis=1))
            targets.append(obs[target_key][()])
            demo_of.append(np.full(len(targets[-1]), index))
    x, p, y, demo = map(np.concatenate, (features, proprio, targets, demo_of))
    test = demo >= int(round((1 - args.held_out) * (demo.max() + 1)))
    print(f"{len(x)} steps of {demo.max() + 1} demos; probe tested on {test.sum()} held-out steps")
    for label, inputs in (("encoder output", x), ("proprio only", p)):
        r2 = ridge_r2(inputs[~test], y[~test], inputs[test], y[test])
        print(f"  {label:15} R² of {target_key} (x, y, z): {np.round(r2, 3)}")


if __name__ == "__main__":
    main()
