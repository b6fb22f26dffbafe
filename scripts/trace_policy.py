"""Print what a policy does in closed loop: every N steps, the gripper position, the object
relative to it, the fingers, the gripper's orientation and the action.

Success rates say that a policy fails; this says how (GAIL experiment 1's diagnoses came
from it: BC drives past the cube and spins; one GAIL run climbed away for reward).

    python scripts/trace_policy.py runs/gail_exp/bc60/last.ckpt --task lift_perturbed --episodes 1
"""

from __future__ import annotations

import argparse

import numpy as np

from vismanip.envs.tasks import task_spec
from vismanip.envs.vision_env import VisionEnv
from vismanip.policies.checkpoint import load_policy
from vismanip.rollout.episode import EVAL_STREAM, episode_seed, rollout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--task", default="")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--every", type=int, default=20, help="print every N steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    loaded = load_policy(args.checkpoint)
    policy = loaded.weights.build()
    env_config = loaded.env_for(args.task)
    object_key = task_spec(env_config.task).object_key
    env = VisionEnv(env_config)
    np.set_printoptions(precision=3, suppress=True)
    try:
        for index in range(args.episodes):
            trace: list[tuple[dict, np.ndarray]] = []

            def actor(obs: dict, trace: list = trace) -> np.ndarray:
                action = policy.select_action(obs)
                trace.append((obs, action))
                return action

            policy.reset()
            episode = rollout(env, actor, episode_seed(args.seed, index, EVAL_STREAM), record=False)
            print(f"episode {index}: success {episode.success}, {len(episode)} steps")
            for step in range(0, len(trace), args.every):
                obs, action = trace[step]
                eef = obs["robot0_eef_pos"]
                relative = obs[f"{object_key}_pos"] - eef
                print(
                    f"  t={step:3d} eef={eef} object-eef={relative} "
                    f"fingers={obs['robot0_gripper_qpos']} quat={obs['robot0_eef_quat']} "
                    f"action={action}"
                )
    finally:
        env.close()


if __name__ == "__main__":
    main()
