"""The action space every stage shares: robosuite's OSC_POSE delta command + gripper.

An action is 7 numbers in [-1, 1]: end-effector translation (3) and axis-angle rotation (3)
per control step, scaled by the Panda BASIC controller's output limits below, and the
gripper (-1 opens, +1 closes). Experts, datasets, policies, GAIL and exported artifacts
all read these constants from here.
"""

from __future__ import annotations

ACTION_DIM = 7
# What one unit of an OSC_POSE action means in robosuite's BASIC Panda controller:
# metres (x, y, z) and radians (axis-angle) per control step. Exported policies carry it.
OSC_OUTPUT_MAX = (0.05, 0.05, 0.05, 0.5, 0.5, 0.5)
ROTATION_STEP_RAD = OSC_OUTPUT_MAX[3]  # the rotation a unit rotation action asks for
ROTATION_DIMS = [3, 4, 5]  # the axis-angle rotation command's dimensions
GRIPPER_DIM = 6
GRIPPER_OPEN, GRIPPER_CLOSE = -1.0, 1.0
