"""Scripted pick-and-place oracle: grasp the object, carry it over its target bin, release.

Like the Lift oracle it acts from the current observation only, so a dropped object, a
missed grasp or a displaced arm just leads back into the right phase.
"""

from __future__ import annotations

import numpy as np

from vismanip.envs.actions import GRIPPER_CLOSE, GRIPPER_OPEN
from vismanip.experts.base import (
    aligned_yaw,
    fingers_moving,
    gripper_gap,
    gripper_yaw,
    move_toward,
)

HOVER_HEIGHT_M = 0.10  # eef above the object centre before descending
CARRY_CLEARANCE_M = 0.08  # object centre above the bin rim while carrying (higher is out of reach)
RELEASE_HEIGHT_M = 0.04  # object centre above its resting height when released
OPEN_GAP_M = 0.07
EMPTY_GAP_M = 0.015


class PickPlaceExpert:
    """`object_key` names the object pose in obs (e.g. "Can"); the target is a bin spot.

    rim_height: the grasp point clears this while carrying (plus CARRY_CLEARANCE_M).
    rest_height: the grasp point's height when the object stands where it is put down.
    release_clearance: let go this far above `rest_height`.
    grasp_offset_z, yaw_symmetry, yaw_offset: the object's grasp, as in LiftExpert;
        yaw_symmetry None keeps the gripper square to the table edges (robosuite's bins).
    """

    def __init__(
        self,
        object_key: str,
        target_xy: np.ndarray,
        target_bounds: tuple[np.ndarray, np.ndarray],
        rim_height: float,
        rest_height: float,
        release_clearance: float = RELEASE_HEIGHT_M,
        grasp_offset_z: float = 0.0,
        yaw_symmetry: float | None = None,
        yaw_offset: float = 0.0,
    ) -> None:
        self.object_key = object_key
        self.target_xy = np.asarray(target_xy, dtype=np.float64)
        self.target_low, self.target_high = (np.asarray(b, dtype=np.float64) for b in target_bounds)
        self.carry_height = rim_height + CARRY_CLEARANCE_M
        self.release_height = rest_height + release_clearance
        self.grasp_offset = np.array([0.0, 0.0, grasp_offset_z])
        self.yaw_symmetry = yaw_symmetry
        self.yaw_offset = yaw_offset
        self.yaw = 0.0  # this step's gripper yaw

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        obj = obs[f"{self.object_key}_pos"] + self.grasp_offset
        eef, eef_quat = obs["robot0_eef_pos"], obs["robot0_eef_quat"]
        if self.yaw_symmetry is None:
            self.yaw = 0.0
        elif self.yaw_symmetry > 0:
            quat = obs[f"{self.object_key}_quat"]
            self.yaw = aligned_yaw(eef_quat, quat, self.yaw_symmetry) + self.yaw_offset
        else:  # round: any yaw grasps it
            self.yaw = gripper_yaw(eef_quat)
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
        return self._approach(obj, eef, eef_quat, gap, float(xy_error))

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
