"""The expert interface and the geometry every scripted oracle shares.

An expert is anything with `act(obs) -> action` (7-D, in [-1, 1]): the scripted oracles
here, a person at a teleoperation device, or another policy. The scripted ones read the
privileged low-dim keys robosuite puts in the observation (object poses), and they decide
from the current observation alone: no phase counter, so they answer sensibly from any
state a learner drives the robot into (DAgger asks them exactly there).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy.spatial.transform import Rotation

from vismanip.envs.actions import ROTATION_STEP_RAD

# A gripper pointing straight down (robosuite's eef frame, quaternion xyzw).
DOWN = Rotation.from_quat([1.0, 0.0, 0.0, 0.0])


class Expert(Protocol):
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


def gripper_gap(obs: dict[str, np.ndarray]) -> float:
    """Distance between the two Panda fingers in metres (0 closed, ~0.08 open)."""
    finger_left, finger_right = obs["robot0_gripper_qpos"]
    return float(finger_left - finger_right)


def fingers_moving(obs: dict[str, np.ndarray]) -> bool:
    """True while the fingers are still opening or closing (not yet resting on an object)."""
    return bool(np.abs(obs["robot0_gripper_qvel"]).max() > 0.01)


def yaw_of(rotation: Rotation) -> float:
    matrix = rotation.as_matrix()
    return float(np.arctan2(matrix[1, 0], matrix[0, 0]))


def wrap(angle: float, period: float) -> float:
    """`angle` folded into [-period/2, period/2)."""
    return (angle + period / 2) % period - period / 2


def move_toward(
    eef_pos: np.ndarray,
    target_pos: np.ndarray,
    eef_quat: np.ndarray,
    target_yaw: float,
    gripper: float,
    gain: float = 10.0,
) -> np.ndarray:
    """Proportional OSC delta action toward a position and a downward pose at `target_yaw`."""
    # gain 10: a 10 cm error asks for a full step (5 cm), so the arm closes half the gap a step.
    position = np.clip(gain * (target_pos - eef_pos), -1, 1)
    target_rotation = Rotation.from_euler("z", target_yaw) * DOWN
    error = (target_rotation * Rotation.from_quat(eef_quat).inv()).as_rotvec()
    rotation = np.clip(error / ROTATION_STEP_RAD * 2.0, -1, 1)
    return np.concatenate([position, rotation, [gripper]])


def gripper_yaw(eef_quat: np.ndarray) -> float:
    """The yaw of a downward-pointing gripper."""
    return yaw_of(Rotation.from_quat(eef_quat) * DOWN.inv())


def aligned_yaw(eef_quat: np.ndarray, object_quat: np.ndarray, symmetry: float) -> float:
    """The yaw nearest the gripper's that lines its fingers up with the object's faces."""
    current = gripper_yaw(eef_quat)
    return current + wrap(yaw_of(Rotation.from_quat(object_quat)) - current, symmetry)


class NoisyExpert:
    """Adds seeded Gaussian noise to an expert's motion (not its gripper) for demo diversity."""

    def __init__(self, expert: Expert, noise_std: float, seed: int) -> None:
        self.expert = expert
        self.noise_std = noise_std
        self.rng = np.random.default_rng(seed)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        action = np.array(self.expert.act(obs), dtype=np.float64)
        if self.noise_std > 0:
            action[:6] += self.rng.normal(0.0, self.noise_std, size=6)
        return np.clip(action, -1.0, 1.0)
