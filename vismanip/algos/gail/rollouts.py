"""GAIL's side of the rollout runner: an exploring episode that returns transitions.

Workers act with the current weights of the policy plus Gaussian exploration noise before
its tanh (the deterministic action, `tanh(mean)`, is what eval and export use) and send
back, per step, what the learner trains on: the frozen encoder's output (the actor's input,
so the learner never re-encodes images), the privileged low-dim state (critic and
discriminator; with `disc.input=image` also D's small frames; with `learner.end_to_end`
the policy's own inputs), the action (the policy's, that plus the task's noise, or all the
simulator executed: see `GailConfig.record_action`) and whether the episode ended in
success.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vismanip.envs.actions import GRIPPER_CLOSE, GRIPPER_DIM, GRIPPER_OPEN
from vismanip.policies import ImagePolicy
from vismanip.rollout.episode import ActionWithExtras, Episode, rollout
from vismanip.rollout.runner import RolloutWorker, Scene

STATE_DIM = 23  # see privileged_state
# Of privileged_state: the object's height, the object relative to the gripper, the fingers
# and both orientations; not where the gripper is in the world (`disc.relative`).
RELATIVE_STATE_COLUMNS = tuple(range(5, STATE_DIM))
GRIPPER_AXES_COLUMNS = slice(11, 17)  # of privileged_state: the gripper's x and z axes
OBJECT_AXES_COLUMNS = tuple(range(17, 23))  # of privileged_state: the object's, likewise
STATE_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")  # + the object's


def privileged_state(obs: dict, object_key: str) -> np.ndarray:
    """Gripper position, object position, object relative to the gripper, finger joints,
    and the gripper's and the object's orientations as the x and z axes of their frames.

    Orientations matter: a policy that spins the gripper away from the cube's faces fails
    with every position right, and D and the critic must see it. Axes rather than
    quaternions: a quaternion made unique (w >= 0) jumps from x = +1 to x = -1 where w
    crosses 0, and w = 0 is exactly the upright gripper (180 degrees about a horizontal
    axis): 47% of the clean Lift demos' states sat on the far side of that jump from the
    rest. Axes are continuous and unique (Zhou et al., CVPR 2019), and the z axis' height
    is the gripper's tilt. Training-time only (asymmetric actor-critic): the deployed
    policy never reads it. Works on one observation (vectors) or a demo's stacked arrays
    (T, ·) alike.
    """
    eef = np.asarray(obs["robot0_eef_pos"], dtype=np.float32)
    target = np.asarray(obs[f"{object_key}_pos"], dtype=np.float32)
    fingers = np.asarray(obs["robot0_gripper_qpos"], dtype=np.float32)
    axes = [
        frame_axes(np.asarray(obs[key], dtype=np.float32))
        for key in ("robot0_eef_quat", f"{object_key}_quat")
    ]
    return np.concatenate([eef, target, target - eef, fingers, *axes], axis=-1)


def frame_axes(quat_xyzw: np.ndarray) -> np.ndarray:
    """The x and z axes (the rotation matrix's first and third columns) of robosuite's
    (x, y, z, w) quaternion, (..., 6); the same for q and -q."""
    quat = quat_xyzw / np.linalg.norm(quat_xyzw, axis=-1, keepdims=True)
    x, y, z, w = np.moveaxis(quat, -1, 0)
    x_axis = [1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)]
    z_axis = [2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)]
    return np.stack([*x_axis, *z_axis], axis=-1).astype(np.float32)


def state_keys(object_key: str) -> list[str]:
    """The observation keys `privileged_state` reads."""
    return [f"{object_key}_pos", f"{object_key}_quat", *STATE_KEYS]


def _policy_obs(policy: ImagePolicy, obs: dict) -> dict[str, np.ndarray]:
    """What the policy reads of one observation: its cameras' images and its proprio."""
    return {
        key: np.asarray(obs[key], dtype=np.uint8 if key in policy.image_keys else np.float32)
        for key in (*policy.image_keys, *policy.lowdim_keys)
    }


@torch.no_grad()
def encode_obs(policy: ImagePolicy, obs: dict) -> torch.Tensor:
    """The frozen encoder's output for one observation, (1, F)."""
    batch = {
        key: torch.as_tensor(np.asarray(obs[key])[None])
        for key in (*policy.image_keys, *policy.lowdim_keys)
    }
    return policy.encode(batch)


def disc_frames(images: list[torch.Tensor], size: int) -> torch.Tensor:
    """D's view of a batch (`disc.input=image`): each camera's uint8 (B, H, W, 3) frames,
    area-downsampled to (size, size) and stacked along channels, uint8 (B, 3 * cameras,
    size, size). Demos and rollouts both go through here, so D cannot tell them apart by
    how their frames were prepared."""
    planes = [
        F.interpolate(frames.permute(0, 3, 1, 2).float(), size=(size, size), mode="area")
        for frames in images
    ]
    return torch.cat(planes, dim=1).round().clamp(0, 255).to(torch.uint8)


# What the replay may keep as each step's action (`GailConfig.record_action`).
RECORDED_ACTIONS: dict[str, Callable[[Episode], list[np.ndarray]]] = {
    "commanded": lambda episode: episode.actions,
    "executed": lambda episode: episode.executed_actions,
    "noisy": lambda episode: episode.noisy_actions,
}


@dataclass
class Transitions:
    """One episode's steps as arrays; `success` marks the step that reached the goal
    (the learner sends it to the absorbing state)."""

    features: np.ndarray  # (T + 1, F): obs 0..T
    states: np.ndarray  # (T + 1, S)
    actions: np.ndarray  # (T, 7)
    success_step: np.ndarray  # (T,) bool
    rewards: np.ndarray  # (T,) the task's sparse reward
    seed: int
    success: bool
    frames: np.ndarray | None = None  # (T + 1, C, S, S) uint8: D's frames (`disc.input=image`)
    # {key: (T + 1, ...)}: the policy's camera images and proprio (`learner.end_to_end`)
    policy_obs: dict[str, np.ndarray] | None = None
    # (T, 7): the draws before the tanh (exploring before it: PPO's ratio is taken there)
    pre_tanh_actions: np.ndarray | None = None
    target: str = ""  # the scene's target object, in object scenes (`--object-set`)

    def __len__(self) -> int:
        return len(self.actions)


@dataclass
class GailEpisode:
    """Runner task: one episode with the worker's policy; `std` = 0 acts deterministically.

    The noise goes before the tanh (SAC's own TanhNormal) or, with `after_tanh`, onto the
    action itself, clipped to [-1, 1]: a BC policy's actions sit at ±1 on many steps (the
    scripted expert saturates), where noise before the tanh moves nothing. With
    `gripper_flip_prob`, exploration also reverses the gripper command now and then for
    `gripper_flip_steps` steps (`LearnerConfig.gripper_flip_prob`). Each noise draw is held
    for `noise_hold_steps` steps (`LearnerConfig.noise_hold_steps`).
    """

    seed: int
    scene: Scene
    std: np.ndarray  # (7,) exploration std
    noise_seed: int
    after_tanh: bool = False
    perturbation_strength: float = 1.0  # times the task's own (`explore_perturbation`)
    record: str = "commanded"  # which action the replay keeps (`GailConfig.record_action`)
    gripper_flip_prob: float = 0.0  # per-step chance that a gripper reversal starts
    gripper_flip_steps: int = 10
    noise_hold_steps: int = 1
    frame_size: int = 0  # > 0: also send D's frames at this size (`disc.input=image`)
    policy_inputs: bool = False  # also send the policy's own inputs (`learner.end_to_end`)

    def __call__(self, worker: RolloutWorker) -> Transitions:
        policy: ImagePolicy = worker.policy
        env = worker.env(self.scene)
        object_key = env.spec.object_key
        noise = np.random.default_rng(self.noise_seed)
        flip_steps_left = 0
        draw = np.zeros_like(self.std)
        hold_steps_left = 0

        def act(obs: dict) -> ActionWithExtras:
            nonlocal flip_steps_left, draw, hold_steps_left
            encoding = encode_obs(policy, obs)
            with torch.no_grad():
                mean = policy.action_mean(encoding)[0].numpy().astype(np.float64)
            if hold_steps_left == 0:
                draw = self.std * noise.standard_normal(mean.shape)
                hold_steps_left = self.noise_hold_steps
            hold_steps_left -= 1
            if self.after_tanh:
                action = np.clip(np.tanh(mean) + draw, -1.0, 1.0)
            else:
                action = np.tanh(mean + draw)
            flip_now = self.gripper_flip_prob > 0 and noise.random() < self.gripper_flip_prob
            if flip_steps_left == 0 and flip_now:
                flip_steps_left = self.gripper_flip_steps
            if flip_steps_left > 0:  # the opposite of what the policy commands, fully
                action[GRIPPER_DIM] = GRIPPER_OPEN if mean[GRIPPER_DIM] > 0 else GRIPPER_CLOSE
                flip_steps_left -= 1
            extras: dict[str, Any] = {
                "features": encoding[0].numpy(),
                "state": privileged_state(obs, object_key),
            }
            if not self.after_tanh:
                extras["pre_tanh"] = mean + draw
            if self.frame_size:
                extras["frames"] = self._frames(policy, obs)
            if self.policy_inputs:
                extras["policy_obs"] = _policy_obs(policy, obs)
            return ActionWithExtras(action, extras)

        policy.reset()
        env.perturbation_strength = self.perturbation_strength
        try:
            episode: Episode = rollout(env, act, self.seed, record=False)
        finally:  # the worker's env also runs evaluations, at the task's own strength
            env.perturbation_strength = 1.0
        features = np.stack([*episode.extras["features"], encode_obs(policy, episode.last_obs)[0]])
        states = np.stack(
            [*episode.extras["state"], privileged_state(episode.last_obs, object_key)]
        )
        frames = None
        if self.frame_size:
            frames = np.stack([*episode.extras["frames"], self._frames(policy, episode.last_obs)])
        policy_obs = None
        if self.policy_inputs:
            steps = [*episode.extras["policy_obs"], _policy_obs(policy, episode.last_obs)]
            policy_obs = {key: np.stack([step[key] for step in steps]) for key in steps[0]}
        success_step = np.zeros(len(episode), dtype=bool)
        success_step[-1] = episode.success
        return Transitions(
            features.astype(np.float32),
            states.astype(np.float32),
            np.asarray(RECORDED_ACTIONS[self.record](episode), dtype=np.float32),
            success_step,
            np.asarray(episode.rewards, dtype=np.float32),
            self.seed,
            episode.success,
            frames,
            policy_obs,
            None if self.after_tanh else np.asarray(episode.extras["pre_tanh"], np.float32),
            env.target_object or "",
        )

    def _frames(self, policy: ImagePolicy, obs: dict) -> np.ndarray:
        images = [torch.as_tensor(np.asarray(obs[key])[None]) for key in policy.image_keys]
        return disc_frames(images, self.frame_size)[0].numpy()
