"""The one rollout loop: collection, evaluation, DAgger and GAIL all step episodes here.

An actor is any `obs -> action` callable. An actor that returns `ActionWithExtras` also
hands the loop per-step values an algorithm wants kept beside the action (GAIL's policy
features and log-probabilities, DAgger's expert label): they land in `Episode.extras`,
one list per name, so no job needs its own loop or tuple shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vismanip.envs.vision_env import VisionEnv


@dataclass
class ActionWithExtras:
    """An actor's answer with per-step values to keep (`Episode.extras[name][t]`)."""

    action: np.ndarray
    extras: dict[str, Any]


Actor = Callable[[dict[str, np.ndarray]], "np.ndarray | ActionWithExtras"]

# Separate seed streams, one home for all: evaluation never replays the scenes demos were
# collected in, DAgger's and GAIL's interaction episodes are their own, and the rollouts that
# choose a training run's best.ckpt (SELECT_STREAM) are never the episodes `vismanip eval`
# then reports (a choice made on them would bias the report up).
COLLECT_STREAM, EVAL_STREAM, DAGGER_STREAM, GAIL_STREAM, SELECT_STREAM = 0, 1, 2, 3, 4


def episode_seed(base_seed: int, index: int, stream: int = COLLECT_STREAM) -> int:
    """The env seed of episode `index`: depends only on (seed, index, stream)."""
    entropy = [base_seed, index] if stream == COLLECT_STREAM else [base_seed, index, stream]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


@dataclass
class Episode:
    """Everything one episode produced, in robomimic's per-demo layout.

    `observations` holds T+1 entries per key: obs[t] is observations[:T], next_obs[t] is
    observations[1:], so each frame is rendered once.
    """

    seed: int
    observations: dict[str, list[np.ndarray]] = field(default_factory=dict)
    actions: list[np.ndarray] = field(default_factory=list)
    # What the simulator ran: `actions` plus a perturbed task's noise and pushes.
    executed_actions: list[np.ndarray] = field(default_factory=list)
    # `actions` plus a perturbed task's noise only, without its pushes.
    noisy_actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    dones: list[bool] = field(default_factory=list)
    states: list[np.ndarray] = field(default_factory=list)
    success: bool = False
    failed_at: int | None = None  # first step after which success became impossible
    first_obs: dict[str, np.ndarray] = field(default_factory=dict)  # kept even unrecorded
    last_obs: dict[str, np.ndarray] = field(default_factory=dict)  # kept even unrecorded
    randomization: list[dict] = field(default_factory=list)  # env.randomization_events
    eef_positions: list[np.ndarray] = field(default_factory=list)  # kept even unrecorded
    extras: dict[str, list[Any]] = field(default_factory=dict)  # per step, from the actor

    def __len__(self) -> int:
        return len(self.actions)

    def stacked_obs(self) -> dict[str, np.ndarray]:
        return {key: np.stack(frames) for key, frames in self.observations.items()}

    def _record_obs(self, obs: dict[str, np.ndarray]) -> None:
        for key, value in obs.items():
            self.observations.setdefault(key, []).append(value)


def rollout(env: VisionEnv, actor: Actor, seed: int, record: bool = True) -> Episode:
    """Run one seeded episode with `actor` until success or the horizon.

    With `record=False` observations and sim states are not kept (cheap evaluation).
    """
    episode = Episode(seed=seed)
    obs = env.reset(seed)
    episode.first_obs = obs
    episode.eef_positions.append(obs["robot0_eef_pos"])
    if record:
        episode._record_obs(obs)
    done = False
    while not done:
        state = env.sim_state() if record else None
        answer = actor(obs)
        if isinstance(answer, ActionWithExtras):
            for name, value in answer.extras.items():
                episode.extras.setdefault(name, []).append(value)
            answer = answer.action
        action = np.asarray(answer, dtype=np.float64)
        obs, reward, done, info = env.step(action)
        episode.eef_positions.append(obs["robot0_eef_pos"])
        episode.success = info["success"]
        if episode.failed_at is None and env.is_unrecoverable(obs):
            episode.failed_at = len(episode.actions) + 1
        episode.actions.append(action)
        episode.executed_actions.append(info["executed"])
        episode.noisy_actions.append(info["noisy"])
        episode.rewards.append(reward)
        episode.dones.append(done and episode.success)
        if record:
            assert state is not None
            episode.states.append(state)
            episode._record_obs(obs)
    episode.last_obs = obs
    episode.randomization = list(env.randomization_events)
    return episode
