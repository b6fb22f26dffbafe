"""How far a GAIL run's exploring episodes tilted the gripper, against how often they succeeded.

GAIL experiment 1's diagnosis: BC from clean Lift demos fails once the gripper tilts (0/10
under roll/pitch noise of std 0.1, 9/10 under yaw noise; `perturbation_sensitivity.py
--groups roll_pitch yaw`). This reads a run's replay shards (the privileged state each
step kept: the gripper's axes, `GRIPPER_AXES_COLUMNS` of `observation`), splits them into
episodes, and prints success per bucket of the largest tilt of the gripper's approach axis
from vertical in the episode (yaw excluded).

    python scripts/replay_tilt.py runs/gail_exp/gail_W3 --from-iteration 50
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

from vismanip.algos.gail.rollouts import GRIPPER_AXES_COLUMNS, STATE_DIM

BUCKETS_DEG = (0, 10, 20, 40, 180)


def approach_tilt_deg(axes: np.ndarray) -> np.ndarray:
    """Angle between the gripper's approach axis (its z, pointing down when upright) and
    straight down, in degrees, from `GRIPPER_AXES_COLUMNS` (x axis, then z axis)."""
    return np.degrees(np.arccos(np.clip(-axes[:, 5], -1.0, 1.0)))


def episodes(shard: dict) -> list[tuple[float, bool]]:
    """(largest tilt, success) per episode of one shard. An episode ends where the next
    observation is not the following row's (episodes are stored one after another); the
    absorbing rows after a success are skipped."""
    observation = shard["observation"].numpy()
    if observation.shape[1] != STATE_DIM + 1:
        raise SystemExit(
            f"replay rows have {observation.shape[1]} columns, not {STATE_DIM + 1}: a run with "
            "disc.input other than state, or one from before the state kept axes (quaternions)"
        )
    following = shard["next"]["observation"].numpy()
    reached_goal = following[:, -1] > 0.5
    in_absorbing = observation[:, -1] > 0.5
    ends = np.r_[np.any(np.abs(following[:-1] - observation[1:]) > 1e-6, axis=1), True]
    found, start = [], 0
    for end in np.flatnonzero(ends):
        rows = np.arange(start, end + 1)
        live = rows[~in_absorbing[rows]]
        tilt = (
            approach_tilt_deg(observation[live, GRIPPER_AXES_COLUMNS]) if len(live) else np.zeros(1)
        )
        found.append((float(tilt.max()), bool(reached_goal[rows].any())))
        start = end + 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--from-iteration", type=int, default=0, help="skip earlier shards")
    args = parser.parse_args()
    found = []
    for path in sorted((args.run / "replay").glob("iter_*.pt")):
        if int(path.stem.removeprefix("iter_")) >= args.from_iteration:
            found += episodes(torch.load(path, weights_only=True))
    tilts, successes = np.array([t for t, _ in found]), np.array([s for _, s in found])
    print(f"{len(found)} exploring episodes from iteration {args.from_iteration} on")
    print("| largest tilt in the episode | episodes | success |")
    print("|---|---:|---:|")
    for low, high in itertools.pairwise(BUCKETS_DEG):
        bucket = (tilts >= low) & (tilts < high)
        if bucket.any():
            print(f"| {low}–{high}° | {bucket.sum()} | {successes[bucket].mean():.0%} |")


if __name__ == "__main__":
    main()
