"""Floor a trained policy's proprio normalisation std, as if trained with the floor.

A BC policy divides its proprio by the std over its demos. Clean scripted demos hold the
gripper so still that the quaternion's tilt components have std 0.003-0.024, so a tilt
of a few degrees (a push) reaches the head as a 6-sigma input. This writes a copy of
CHECKPOINT whose stored std is max(std, --floor) on the named proprio keys (the weights
are untouched), to measure what the floor alone does; `vismanip gail` does the same at
its start with `init_lowdim_std_floor=` / `init_lowdim_std_floor_keys=`.

    python scripts/floor_proprio_std.py runs/gail_exp/bc60/last.ckpt --floor 0.05 \
        --keys robot0_eef_quat --out runs/gail_exp/bc60_quatfloor005.ckpt
"""

from __future__ import annotations

import argparse
import sys

from vismanip.errors import VismanipError
from vismanip.policies.checkpoint import load_policy, save_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--floor", type=float, required=True)
    parser.add_argument("--keys", nargs="+", required=True, help="proprio keys to floor")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        if args.floor <= 0:
            raise VismanipError(f"--floor must be > 0, not {args.floor}")
        loaded = load_policy(args.checkpoint)
        policy = loaded.weights.build()
        before = policy.lowdim_std.clone()
        policy.floor_lowdim_std(args.floor, args.keys)
        save_policy(args.out, policy, loaded.env_config, loaded.train_config)
    except VismanipError as error:
        sys.exit(f"error: {error}")
    print(f"proprio std {' '.join(f'{value:.4f}' for value in before.tolist())}")
    print(f"now         {' '.join(f'{value:.4f}' for value in policy.lowdim_std.tolist())}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
