"""Episodes as DAC transitions (Kostrikov et al., 2019): the step that reaches the goal
leads to an absorbing state that loops on itself, so a reward that is always positive
(GAIL's -log(1 - D)) cannot teach the policy to end episodes early or late on purpose."""

from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict
from torch import Tensor

from vismanip.envs.actions import ACTION_DIM


def absorbing(observations: Tensor) -> Tensor:
    """DAC's absorbing state: the observation with one more (indicator) dimension, 0 for
    real states, and an all-zero state with indicator 1 after the goal was reached."""
    return torch.cat([observations, torch.zeros(*observations.shape[:-1], 1)], dim=-1)


def transitions_td(
    features: np.ndarray,
    observations: np.ndarray,
    actions: np.ndarray,
    success_step: np.ndarray,
    rewards: np.ndarray,
    frames: np.ndarray | None = None,
    policy_obs: dict[str, np.ndarray] | None = None,
) -> TensorDict:
    """One episode (T steps, T + 1 observations) as transitions, DAC-style: the step that
    reached the goal leads to the absorbing state, which then loops on itself. `frames`
    (T + 1, C, S, S) uint8: D's view of each observation (`disc.input=image`; the
    absorbing state's is black, and D also reads the absorbing indicator). `policy_obs`:
    the policy's own inputs, {key: (T + 1, ...)} (`learner.end_to_end`; all zeros in the
    absorbing state, which the full-network steps skip)."""
    steps = len(actions)
    obs = absorbing(torch.as_tensor(observations))
    feats = torch.as_tensor(features)
    next_obs, next_feats = obs[1:].clone(), feats[1:].clone()
    ends = torch.as_tensor(success_step)
    next_obs[ends] = 0.0
    next_obs[ends, -1] = 1.0
    next_feats[ends] = 0.0
    data = {
        "features": feats[:-1],
        "observation": obs[:-1],
        "action": torch.as_tensor(actions),
        "task_reward": torch.as_tensor(rewards)[:, None],
        ("next", "features"): next_feats,
        ("next", "observation"): next_obs,
    }
    if frames is not None:
        data["frames"] = torch.as_tensor(frames)[:-1]
    if policy_obs is not None:
        for key, value in policy_obs.items():
            data["policy_obs", key] = torch.as_tensor(value)[:-1]
    td = TensorDict(data, [steps])
    if bool(ends.any()):  # absorbing -> absorbing, zero action, no task reward
        loop = {
            "features": torch.zeros(1, feats.shape[-1]),
            "observation": next_obs[ends][:1],
            "action": torch.zeros(1, ACTION_DIM),
            "task_reward": torch.zeros(1, 1),
            ("next", "features"): torch.zeros(1, feats.shape[-1]),
            ("next", "observation"): next_obs[ends][:1],
        }
        if frames is not None:
            loop["frames"] = torch.zeros(1, *frames.shape[1:], dtype=torch.uint8)
        if policy_obs is not None:
            for key, value in policy_obs.items():
                loop["policy_obs", key] = torch.as_tensor(np.zeros_like(value[:1]))
        td = torch.cat([td, TensorDict(loop, [1])])
    # No transition is terminal: ends are absorbing states, timeouts bootstrap (DAC).
    td["next", "done"] = torch.zeros(len(td), 1, dtype=torch.bool)
    td["next", "terminated"] = torch.zeros(len(td), 1, dtype=torch.bool)
    return td


def episode_td(
    features: np.ndarray,
    observations: np.ndarray,
    actions: np.ndarray,
    pre_tanh_actions: np.ndarray,
    success: bool,
    rewards: np.ndarray,
    frames: np.ndarray | None = None,
) -> TensorDict:
    """One episode for on-policy learning (PPO + GAE): the goal is a terminal step, the
    horizon a truncation (done, not terminated: GAE bootstraps there). Observations carry
    the same (always 0) absorbing indicator as `transitions_td`'s, so D reads one shape.
    `pre_tanh_actions`: the policy's draws before the tanh, where PPO takes its ratio."""
    steps = len(actions)
    obs = absorbing(torch.as_tensor(observations))
    end = torch.zeros(steps, 1, dtype=torch.bool)
    end[-1] = True
    data = {
        "features": torch.as_tensor(features)[:-1],
        "observation": obs[:-1],
        "action": torch.as_tensor(actions),
        "pre_tanh_action": torch.as_tensor(pre_tanh_actions),
        "task_reward": torch.as_tensor(rewards)[:, None],
        ("next", "features"): torch.as_tensor(features)[1:],
        ("next", "observation"): obs[1:],
        ("next", "done"): end,
        ("next", "terminated"): end & success,
    }
    if frames is not None:
        data["frames"] = torch.as_tensor(frames)[:-1]
    return TensorDict(data, [steps])
