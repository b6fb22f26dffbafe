"""Score a GAIL run's discriminator on each object: does D's reward tell the objects apart?

GAIL experiment 2 interacts among all objects with demos of the `train` set only, and on
50 episodes its runs with D's reward seemed to lose novel objects that BC lifted. If D (on
the relative privileged state) rewards the scripted expert's own grasps of a novel object far less than its grasps
of a seen one, the reward points away from the right behaviour on exactly the objects it
should teach. This rolls out the scripted expert (or a policy, `--policy`) on each object
alone (the suite's uncluttered scenes), scores every visited state with the run's D, and
prints per object: successes, the mean reward over the episode and over the steps with the
object lifted more than 2 cm (what success looks like), and D's mean probability there.

    python scripts/disc_reward_by_object.py runs/gail_exp/gail_E2NA --episodes 3
    python scripts/disc_reward_by_object.py runs/gail_exp/gail_E2NA \
        --policy runs/gen/clutter600_30/last.ckpt --episodes 3
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from vismanip.algos.gail.configuration import GailConfig
from vismanip.algos.gail.rollouts import STATE_DIM, privileged_state
from vismanip.algos.gail.transitions import absorbing
from vismanip.config import load_config
from vismanip.envs.objects import object_set
from vismanip.envs.tasks import EnvConfig
from vismanip.envs.vision_env import VisionEnv
from vismanip.experts import make_expert
from vismanip.policies import ImagePolicy
from vismanip.policies.checkpoint import load_policy
from vismanip.rollout.episode import EVAL_STREAM, episode_seed, rollout

LIFTED_M = 0.02


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a GAIL run folder (config.yaml, learner.pt)")
    parser.add_argument("--objects", default="all", help="an object set or a comma list")
    parser.add_argument("--episodes", type=int, default=3, help="per object")
    parser.add_argument("--policy", default="", help="a checkpoint acts instead of the expert")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run = Path(args.run)
    config = load_config(GailConfig, run / "config.yaml")
    if config.disc.input != "state" or config.disc.pairs != "state":
        raise SystemExit(f"{run}: this script reads D(s) on the state, not {config.disc}")
    # Imported here: it imports torchrl, which must come after the GL backend's choice.
    from vismanip.algos.gail.learner import PairNet, discriminator_columns, discriminator_reward

    columns = torch.as_tensor(discriminator_columns(config.disc, STATE_DIM))
    discriminator = PairNet(len(columns), 0, config.disc.hidden, not config.disc.logits)
    saved = torch.load(run / "learner.pt", map_location="cpu", weights_only=False)["learner"]
    prefix = "discriminator."
    discriminator.load_state_dict(
        {key[len(prefix) :]: value for key, value in saved.items() if key.startswith(prefix)}
    )
    discriminator.eval()

    loaded = load_policy(args.policy or config.init)
    policy = loaded.weights.build() if args.policy else None
    objects = args.objects.split(",") if "," in args.objects else object_set(args.objects)
    print(f"D of {run} ({config.disc.reward} reward), actor: {args.policy or 'scripted expert'}")
    print("object         success  reward/step  reward lifted  D lifted  lifted steps")
    for name in objects:
        env_config = replace(loaded.env_for(config.task), objects=[name], clutter=0)
        states, successes = visited_states(env_config, policy, args.episodes, args.seed)
        observed = torch.as_tensor(np.stack(states))
        with_indicator = absorbing(observed)  # real states: the indicator D reads is 0
        with torch.no_grad():
            out = discriminator(with_indicator[:, columns], with_indicator[:, :0])
        d = torch.sigmoid(out) if config.disc.logits else out
        reward = discriminator_reward(d, config.disc.reward).squeeze(-1)
        # lifted: the object's centre (column 5 of privileged_state: its height) more than
        # 2 cm above its lowest height seen here
        height = observed[:, 5]
        lifted = height > height.min() + LIFTED_M
        lifted_reward = f"{reward[lifted].mean():13.2f}" if lifted.any() else f"{'-':>13}"
        lifted_d = f"{d.squeeze(-1)[lifted].mean():8.2f}" if lifted.any() else f"{'-':>8}"
        print(
            f"{name:14s} {successes:3d}/{args.episodes:<3d} {reward.mean():11.2f} "
            f"{lifted_reward}  {lifted_d}  {int(lifted.sum()):12d}"
        )


def visited_states(
    env_config: EnvConfig, policy: ImagePolicy | None, episodes: int, seed: int
) -> tuple[list[np.ndarray], int]:
    """The privileged state of every step of `episodes` seeded episodes with the policy
    (or, without one, the task's scripted expert) acting; and how many succeeded."""
    env = VisionEnv(env_config)
    expert = make_expert(env_config.task, env)
    states: list[np.ndarray] = []

    def act(obs: dict) -> np.ndarray:
        states.append(privileged_state(obs, env.spec.object_key))
        return np.asarray(policy.select_action(obs) if policy else expert.act(obs))

    successes = 0
    try:
        for index in range(episodes):
            if policy is not None:
                policy.reset()
            successes += rollout(
                env, act, episode_seed(seed, index, EVAL_STREAM), record=False
            ).success
    finally:
        env.close()
    return states, successes


if __name__ == "__main__":
    main()
