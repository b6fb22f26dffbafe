"""The one rollout loop: collection, evaluation, DAgger and GAIL all step episodes here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vismanip.envs.tasks import VisionEnv

Actor = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass
class Episode:
    """Everything one episode produced, in robomimic's per-demo layout.

    `observations` holds T+1 entries per key: obs[t] is observations[:T], next_obs[t] is
    observations[1:], so each frame is rendered once.
    """

    seed: int
    observations: dict[str, list[np.ndarray]] = field(default_factory=dict)
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    dones: list[bool] = field(default_factory=list)
    states: list[np.ndarray] = field(default_factory=list)
    success: bool = False

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
    if record:
        episode._record_obs(obs)
    done = False
    while not done:
        state = env.sim_state() if record else None
        action = np.asarray(actor(obs), dtype=np.float64)
        obs, reward, done, info = env.step(action)
        episode.success = info["success"]
        episode.actions.append(action)
        episode.rewards.append(reward)
        episode.dones.append(done and episode.success)
        if record:
            episode.states.append(state)
            episode._record_obs(obs)
    return episode
