"""Scripted Lift oracle: align over the cube, descend, close, lift; recovers from any state."""

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

HOVER_HEIGHT_M = 0.08  # above the cube centre before descending
LIFT_HEIGHT_M = 0.12  # cube centre above the table when done (success needs 0.04)
OPEN_GAP_M = 0.065  # fingers this far apart count as open
EMPTY_GAP_M = 0.015  # closed this far means nothing is between the fingers


class LiftExpert:
    """Decides from the current object pose, eef pose and finger gap alone.

    The object is robosuite Lift's `cube_*` observation (in object-set scenes, whatever the
    episode's target is). Its geometry sets the grasp:
    grasp_offset_z: grasp this far above the object's origin (near the top of tall ones).
    lift_to_z: raise the grasp point to this height (default: table + LIFT_HEIGHT_M).
    yaw_symmetry: yaw period of the graspable faces (pi/2 square box, pi long box, 0 round:
        keep the gripper's yaw); yaw_offset: added to close across a long box's narrow side.
    """

    def __init__(
        self,
        table_height: float,
        grasp_offset_z: float = 0.0,
        lift_to_z: float | None = None,
        yaw_symmetry: float = np.pi / 2,
        yaw_offset: float = 0.0,
    ) -> None:
        self.table_height = table_height
        self.grasp_offset = np.array([0.0, 0.0, grasp_offset_z])
        self.lift_to_z = table_height + LIFT_HEIGHT_M if lift_to_z is None else lift_to_z
        self.yaw_symmetry = yaw_symmetry
        self.yaw_offset = yaw_offset

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        cube, eef = obs["cube_pos"] + self.grasp_offset, obs["robot0_eef_pos"]
        eef_quat = obs["robot0_eef_quat"]
        if self.yaw_symmetry > 0:
            yaw = aligned_yaw(eef_quat, obs["cube_quat"], self.yaw_symmetry) + self.yaw_offset
        else:  # round: any yaw grasps it
            yaw = gripper_yaw(eef_quat)
        gap = gripper_gap(obs)
        offset = cube - eef
        xy_error = np.linalg.norm(offset[:2])
        cube_between_fingers = xy_error < 0.02 and abs(offset[2]) < 0.025

        if cube_between_fingers and EMPTY_GAP_M < gap < OPEN_GAP_M and fingers_moving(obs):
            # Still closing on the cube: keep still until the grip is firm.
            return move_toward(eef, eef, eef_quat, yaw, GRIPPER_CLOSE)
        if cube_between_fingers and EMPTY_GAP_M < gap < OPEN_GAP_M:
            # Holding the cube: lift it straight up.
            target = np.array([eef[0], eef[1], self.lift_to_z - offset[2]])
            return move_toward(eef, target, eef_quat, yaw, GRIPPER_CLOSE)
        if cube_between_fingers and gap >= OPEN_GAP_M:
            # At the grasp pose with the fingers open: close without moving.
            return move_toward(eef, cube, eef_quat, yaw, GRIPPER_CLOSE)
        if gap <= EMPTY_GAP_M:
            # Closed on nothing (missed grasp or dropped cube): open and back off upward.
            target = np.array([eef[0], eef[1], max(eef[2], cube[2] + HOVER_HEIGHT_M)])
            return move_toward(eef, target, eef_quat, yaw, GRIPPER_OPEN)

        hover = np.array([cube[0], cube[1], cube[2] + HOVER_HEIGHT_M])
        if xy_error > 0.02 and eef[2] < cube[2] + 0.04:
            # Low and off to the side: rise first so the fingers do not sweep the cube away.
            target = np.array([eef[0], eef[1], hover[2]])
        elif xy_error > 0.01 or gap < OPEN_GAP_M:
            target = np.array([hover[0], hover[1], max(eef[2], cube[2] + 0.02)])
        else:
            target = cube  # aligned and open: descend onto the cube
        return move_toward(eef, target, eef_quat, yaw, GRIPPER_OPEN)
