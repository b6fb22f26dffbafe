"""Which disturbance breaks a policy: success under Gaussian noise on one group of action
dimensions at a time (position, rotation, gripper), and under the `*_perturbed` task's own
perturbation at reduced strengths.

GAIL experiment 1's diagnosis came from it: BC on clean Lift demos survives position noise
(8/10 at std 0.1) but not rotation noise (0/10 at std 0.1); the clean demos never show a
tilted gripper, so the policy never learned to turn it back.

    python scripts/perturbation_sensitivity.py runs/gail_exp/bc60/last.ckpt --task lift --episodes 10
    python scripts/perturbation_sensitivity.py CKPT --episodes 20 --noise --strengths 0.5 --no-parts
    python scripts/perturbation_sensitivity.py CKPT --groups roll_pitch yaw --strengths --no-parts
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from vismanip.envs.tasks import task_spec
from vismanip.envs.vision_env import VisionEnv
from vismanip.policies.checkpoint import load_policy
from vismanip.rollout.episode import EVAL_STREAM, episode_seed, rollout

ACTION_GROUPS = {
    "position": slice(0, 3),
    "rotation": slice(3, 6),
    "gripper": slice(6, 7),
    "roll_pitch": slice(3, 5),  # tilts the gripper (and the wrist camera) off vertical
    "yaw": slice(5, 6),  # turns it about the vertical: the wrist camera's view rotates
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--task", default="lift", help="a task with a *_perturbed variant")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument(
        "--noise", type=float, nargs="*", default=[0.1, 0.2], help="none: skip these rows"
    )
    parser.add_argument(
        "--groups",
        nargs="+",
        choices=list(ACTION_GROUPS),
        default=["position", "rotation", "gripper"],
        help="the action groups the noise rows disturb, one at a time",
    )
    parser.add_argument(
        "--strengths",
        type=float,
        nargs="*",
        default=[0.0, 0.25, 0.5, 1.0],
        help="none: skip these rows",
    )
    parser.add_argument(
        "--parts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also the perturbation's noise alone and its pushes alone",
    )
    args = parser.parse_args()
    loaded = load_policy(args.checkpoint)
    policy = loaded.weights.build()

    def successes(env: VisionEnv, noise_std: float = 0.0, group: slice = slice(0, 0)) -> int:
        wins = 0
        for index in range(args.episodes):
            rng = np.random.default_rng(index)
            policy.reset()

            def act(obs: dict, rng: np.random.Generator = rng) -> np.ndarray:
                action = policy.select_action(obs)
                action[group] += noise_std * rng.standard_normal(action[group].shape)
                return np.clip(action, -1.0, 1.0)

            seed = episode_seed(0, index, EVAL_STREAM)
            wins += rollout(env, act, seed, record=False).success
        return wins

    env = VisionEnv(loaded.env_for(args.task))
    try:
        print(f"{args.task}, no noise: {successes(env)}/{args.episodes}")
        for name in args.groups:
            for std in args.noise:
                wins = successes(env, std, ACTION_GROUPS[name])
                print(f"{args.task}, noise std {std} on {name}: {wins}/{args.episodes}")
    finally:
        env.close()
    perturbed = f"{args.task}_perturbed"
    own = task_spec(perturbed).perturbation  # one clear error if there is no such variant
    assert own is not None
    env = VisionEnv(loaded.env_for(perturbed))
    try:
        for strength in args.strengths:
            env.perturbation_strength = strength
            print(f"{perturbed} at strength {strength}: {successes(env)}/{args.episodes}")
        env.perturbation_strength = 1.0
        for name, part in (
            {}
            if not args.parts
            else {
                "its action noise only": replace(own, push_prob=0.0),
                "its pushes only": replace(own, action_noise=0.0),
            }
        ).items():
            env.spec = replace(env.spec, perturbation=part)
            print(f"{perturbed}, {name}: {successes(env)}/{args.episodes}")
    finally:
        env.close()


if __name__ == "__main__":
    main()
