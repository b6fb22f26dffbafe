"""Scripted pick-and-place oracle: grasp the object, carry it over its target bin, release.

Like the Lift oracle it acts from the current observation only, so a dropped object, a
missed grasp or a displaced arm just leads back into the right phase.
"""

from __future__ import annotations

import numpy as np

from vismanip.experts.base import (
    GRIPPER_CLOSE,
    GRIPPER_OPEN,
    fingers_moving,
    gripper_gap,
    move_toward,
)

HOVER_HEIGHT_M = 0.10  # eef above the object centre before descending
CARRY_CLEARANCE_M = 0.08  # object centre above the bin rim while carrying (higher is out of reach)
RELEASE_HEIGHT_M = 0.04  # object centre above its resting height when released
OPEN_GAP_M = 0.07
EMPTY_GAP_M = 0.015


class PickPlaceExpert:
    """`object_key` names the object pose in obs (e.g. "Can"); the target is a bin spot."""

    def __init__(
        self,
        object_key: str,
        target_xy: np.ndarray,
        target_bounds: tuple[np.ndarray, np.ndarray],
        rim_height: float,
        rest_height: float,
    ) -> None:
        self.object_key = object_key
        self.target_xy = np.asarray(target_xy, dtype=np.float64)
        self.target_low, self.target_high = (np.asarray(b, dtype=np.float64) for b in target_bounds)
        self.carry_height = rim_height + CARRY_CLEARANCE_M
        self.release_height = rest_height + RELEASE_HEIGHT_M
        self.yaw = 0.0  # cylinders and boxes grasped square to the table edges

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        obj, eef = obs[f"{self.object_key}_pos"], obs["robot0_eef_pos"]
        eef_quat = obs["robot0_eef_quat"]
        gap = gripper_gap(obs)
        offset = obj - eef
        xy_error = np.linalg.norm(offset[:2])
        in_hand = xy_error < 0.025 and abs(offset[2]) < 0.03
        at_grasp_pose = xy_error < 0.015 and abs(offset[2]) < 0.012

        if in_hand and EMPTY_GAP_M < gap < OPEN_GAP_M:
            if fingers_moving(obs) and not self._in_target(obj):
                return move_toward(eef, eef, eef_quat, self.yaw, GRIPPER_CLOSE)  # firm grip first
            return self._carry(obj, eef, eef_quat)
        if at_grasp_pose and gap >= OPEN_GAP_M:
            if self._in_target(obj):
                return self._retreat(eef, eef_quat)
            return move_toward(eef, obj, eef_quat, self.yaw, GRIPPER_CLOSE)
        if self._in_target(obj):
            return self._retreat(eef, eef_quat)
        if gap <= EMPTY_GAP_M:
            target = np.array([eef[0], eef[1], max(eef[2], obj[2] + HOVER_HEIGHT_M)])
            return move_toward(eef, target, eef_quat, self.yaw, GRIPPER_OPEN)
        return self._approach(obj, eef, eef_quat, gap, xy_error)

    def _carry(self, obj: np.ndarray, eef: np.ndarray, eef_quat: np.ndarray) -> np.ndarray:
        hold_offset = eef - obj
        to_target = np.linalg.norm(self.target_xy - obj[:2])
        if to_target > 0.03:
            if obj[2] < self.carry_height - 0.03:
                target_obj = np.array([obj[0], obj[1], self.carry_height])  # rise clear of walls
            else:
                target_obj = np.array([*self.target_xy, self.carry_height])
            return move_toward(eef, target_obj + hold_offset, eef_quat, self.yaw, GRIPPER_CLOSE)
        target_obj = np.array([*self.target_xy, self.release_height])
        if obj[2] > self.release_height + 0.015:
            return move_toward(eef, target_obj + hold_offset, eef_quat, self.yaw, GRIPPER_CLOSE)
        return move_toward(eef, eef, eef_quat, self.yaw, GRIPPER_OPEN)  # low enough: let go

    def _retreat(self, eef: np.ndarray, eef_quat: np.ndarray) -> np.ndarray:
        target = np.array([eef[0], eef[1], self.carry_height])
        return move_toward(eef, target, eef_quat, self.yaw, GRIPPER_OPEN)

    def _approach(
        self, obj: np.ndarray, eef: np.ndarray, eef_quat: np.ndarray, gap: float, xy_error: float
    ) -> np.ndarray:
        hover_z = obj[2] + HOVER_HEIGHT_M
        if xy_error > 0.02 and eef[2] < obj[2] + 0.05:
            target = np.array([eef[0], eef[1], hover_z])
        elif xy_error > 0.01 or gap < OPEN_GAP_M:
            target = np.array([obj[0], obj[1], max(eef[2], obj[2] + 0.02)])
        else:
            target = obj
        return move_toward(eef, target, eef_quat, self.yaw, GRIPPER_OPEN)

    def _in_target(self, obj: np.ndarray) -> bool:
        return bool(np.all(obj[:2] > self.target_low) and np.all(obj[:2] < self.target_high))
