"""Scripted Square oracle (robosuite NutAssemblySquare): grasp the nut by its handle, lift it
above the peg, turn it square to the peg, lower it over the peg, let go.

Like the other oracles it acts from the current observation only: a nut dropped on the way
or knocked out of the fingers by a push is grasped again from wherever it lies.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from vismanip.envs.actions import GRIPPER_CLOSE, GRIPPER_OPEN
from vismanip.experts.base import (
    fingers_moving,
    gripper_gap,
    gripper_yaw,
    move_toward,
    wrap,
    yaw_of,
)

HANDLE_OFFSET_M = 0.054  # the handle's centre along the nut's x axis (robosuite's SquareNut)
HOVER_HEIGHT_M = 0.08  # above the handle before descending onto it
CARRY_CLEARANCE_M = 0.04  # nut's centre above the peg's top while carrying
CLEAR_M = 0.025  # above this the nut (20 mm thick, maybe tilted) passes over the peg
FAR_FROM_PEG_M = 0.08  # farther than this the nut rises and travels at once
OPEN_GAP_M = 0.065
EMPTY_GAP_M = 0.012  # the handle is 32 mm thick: a gap below this holds nothing
ALIGNED_XY_M = 0.004  # nut centre this close to the peg's axis before lowering (6.8 mm play)
CARRY_GAIN = 20.0  # small position errors need firm commands: the OSC arm sags under the nut
MIN_CARRY_COMMAND = 0.15  # below this a horizontal command does not move the loaded arm
ALIGNED_YAW_RAD = 0.06  # and this square to it
LOWER_STEP_M = 0.03  # lowering: aim this far below the nut each step (slow, guided)
RELEASE_ABOVE_TABLE_M = 0.03  # open once the nut's centre is this low (success: < 0.05)


class SquareExpert:
    """peg_xy: the square peg's axis; peg_top: its top's height; table_height: the table's."""

    def __init__(self, peg_xy: np.ndarray, peg_top: float, table_height: float) -> None:
        self.peg_xy = np.asarray(peg_xy, dtype=np.float64)
        self.peg_top = peg_top
        self.carry_z = peg_top + CARRY_CLEARANCE_M
        self.release_z = table_height + RELEASE_ABOVE_TABLE_M

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        nut, eef = obs["SquareNut_pos"], obs["robot0_eef_pos"]
        eef_quat = obs["robot0_eef_quat"]
        nut_rotation = Rotation.from_quat(obs["SquareNut_quat"])
        nut_yaw = yaw_of(nut_rotation)
        handle = nut + nut_rotation.apply([HANDLE_OFFSET_M, 0.0, 0.0])
        gap = gripper_gap(obs)
        to_handle = handle - eef
        xy_error = np.linalg.norm(to_handle[:2])
        handle_between_fingers = xy_error < 0.02 and abs(to_handle[2]) < 0.02
        # Fingers close across the handle's narrow side, which (measured) is gripper yaw =
        # nut yaw, either way round (the nearer one). At +90° they squeeze the handle
        # lengthwise and the inner finger lands on the peg's top.
        current = gripper_yaw(eef_quat)
        grasp_yaw = current + wrap(nut_yaw - current, np.pi)

        if handle_between_fingers and EMPTY_GAP_M < gap < OPEN_GAP_M:
            if fingers_moving(obs) and gap > 0.04:  # still closing: keep still
                return move_toward(eef, eef, eef_quat, current, GRIPPER_CLOSE)
            return self._carry(nut, eef, eef_quat, nut_yaw)
        if handle_between_fingers and gap >= OPEN_GAP_M:
            return move_toward(eef, handle, eef_quat, grasp_yaw, GRIPPER_CLOSE)
        if gap <= EMPTY_GAP_M:
            # Closed on nothing (missed or dropped): open and back off upward.
            target = np.array([eef[0], eef[1], max(eef[2], handle[2] + HOVER_HEIGHT_M)])
            return move_toward(eef, target, eef_quat, grasp_yaw, GRIPPER_OPEN)

        yaw_error = abs(grasp_yaw - current)  # already the nearer way round
        if xy_error > 0.02 and eef[2] < handle[2] + 0.04:
            # Low and off to the side: rise first so the fingers do not sweep the nut away.
            target = np.array([eef[0], eef[1], handle[2] + HOVER_HEIGHT_M])
        elif xy_error > 0.008 or yaw_error > 0.1 or gap < OPEN_GAP_M:
            target = np.array([handle[0], handle[1], max(eef[2], handle[2] + 0.02)])
        else:
            target = handle  # aligned and open: descend onto the handle
        return move_toward(eef, target, eef_quat, grasp_yaw, GRIPPER_OPEN)

    def _carry(
        self, nut: np.ndarray, eef: np.ndarray, eef_quat: np.ndarray, nut_yaw: float
    ) -> np.ndarray:
        """Holding the nut: the gripper moves so that the nut's centre goes where it should
        (the grasp is rigid, so eef + (goal - nut) puts it there)."""
        current = gripper_yaw(eef_quat)
        turn = _turn_onto_peg(nut_yaw)
        target_yaw = current + turn
        xy_error = np.linalg.norm(self.peg_xy - nut[:2])
        over_peg = xy_error < ALIGNED_XY_M and abs(turn) < ALIGNED_YAW_RAD
        # Around the peg already (its top inside the hole): the peg guides the nut down.
        on_peg = nut[2] < self.peg_top and xy_error < 0.015
        if over_peg or on_peg:
            if nut[2] <= self.release_z:
                return move_toward(eef, eef, eef_quat, target_yaw, GRIPPER_OPEN)
            goal = np.array([*self.peg_xy, max(nut[2] - LOWER_STEP_M, self.release_z - 0.01)])
        elif nut[2] < self.peg_top + CLEAR_M and xy_error < FAR_FROM_PEG_M:
            # Near the peg and too low to pass over it: rise straight up first.
            goal = np.array([nut[0], nut[1], self.carry_z])
        else:
            goal = np.array([*self.peg_xy, self.carry_z])
        action = move_toward(
            eef, eef + (goal - nut), eef_quat, target_yaw, GRIPPER_CLOSE, gain=CARRY_GAIN
        )
        error = goal[:2] - nut[:2]
        weak = (np.abs(error) > 0.001) & (np.abs(action[:2]) < MIN_CARRY_COMMAND)
        action[:2] = np.where(weak, MIN_CARRY_COMMAND * np.sign(error), action[:2])
        return action


def _turn_onto_peg(nut_yaw: float) -> float:
    """The smallest turn that squares the nut to the (axis-aligned) peg, with its handle
    not pointing away from the robot (+x): held there, the peg is out of the arm's reach."""
    nearest = wrap(-nut_yaw, np.pi / 2)
    turns = sorted((nearest + k * np.pi / 2 for k in (-1, 0, 1)), key=abs)
    return next(turn for turn in turns if np.cos(nut_yaw + turn) < 0.5)
