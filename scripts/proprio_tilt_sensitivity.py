"""How far a policy's commands move when only the gripper quaternion in its proprio tilts.

GAIL experiment 1's BC policy fails once the gripper tilts. This separates what the
policy reads from the proprio from what it sees: it takes demo observations, rotates
`robot0_eef_quat` by a few degrees about a world axis (the images stay as they are) and
prints the mean absolute change of the position, rotation and gripper commands (actions
in [-1, 1]) and the mean yaw command (the demos': about 0). A policy whose proprio
normalisation divides by a std of 0.003 (the upright gripper's w over clean demos)
answers a 2 degree tilt with commands a camera never asked for; `policy.lowdim_std_floor`
and `policy.raw_lowdim_keys` are the knobs.

    python scripts/proprio_tilt_sensitivity.py runs/gail_exp/bc60/last.ckpt data/gail/lift_clean_60.hdf5
"""

from __future__ import annotations

import argparse

import h5py
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from vismanip.data.hdf5 import demo_names
from vismanip.policies.checkpoint import load_policy

QUAT_KEY = "robot0_eef_quat"


def demo_observations(path: str, keys: list[str], rows: int, seed: int) -> dict[str, torch.Tensor]:
    """`rows` observations drawn from the first 10 demos, as the policy reads them."""
    with h5py.File(path, "r") as file:
        names = demo_names(file)[:10]
        stacked = {
            key: np.concatenate([file[f"data/{name}/obs/{key}"][:] for name in names])
            for key in keys
        }
    picked = np.random.default_rng(seed).choice(len(stacked[QUAT_KEY]), rows, replace=False)
    return {key: torch.as_tensor(value[picked]) for key, value in stacked.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("data")
    parser.add_argument("--degrees", type=float, nargs="+", default=[2, 5, 10, 20])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    policy = load_policy(args.checkpoint).weights.build().eval()
    if QUAT_KEY not in policy.lowdim_keys:
        raise SystemExit(f"{args.checkpoint}: the policy does not read {QUAT_KEY}")
    obs = demo_observations(
        args.data, [*policy.image_keys, *policy.lowdim_keys], args.rows, args.seed
    )
    quats = Rotation.from_quat(obs[QUAT_KEY].numpy())  # scipy's order is robosuite's: x, y, z, w
    print(
        f"{args.checkpoint}: proprio std {np.round(policy.lowdim_std.double().numpy(), 4).tolist()}"
    )
    print(
        "| tilt | about world | position command | rotation command | gripper command | mean yaw |"
    )
    print("|---:|---|---:|---:|---:|---:|")
    with torch.no_grad():
        base = policy.predict(obs)
        for degrees in args.degrees:
            for axis in ("x", "y"):
                tilted = Rotation.from_euler(axis, degrees, degrees=True) * quats
                moved = policy.predict(
                    {**obs, QUAT_KEY: torch.as_tensor(tilted.as_quat(), dtype=torch.float32)}
                )
                change = (moved - base).abs().mean(0)
                print(
                    f"| {degrees:g}° | {axis} | {change[:3].mean():.3f} | "
                    f"{change[3:6].mean():.3f} | {change[6]:.3f} | {moved[:, 5].mean():.2f} |"
                )


if __name__ == "__main__":
    main()
