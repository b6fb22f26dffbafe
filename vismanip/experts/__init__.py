"""Scripted oracles that read privileged sim state; they make demos and answer DAgger."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vismanip.errors import VismanipError
from vismanip.experts.base import Expert, NoisyExpert
from vismanip.experts.lift import LiftExpert
from vismanip.experts.pick_place import PickPlaceExpert

if TYPE_CHECKING:
    from vismanip.envs import VisionEnv
    from vismanip.rollout.episode import Actor


PLACE_INSET_M = 0.05  # keep the placed object this far inside its target area
LIFT_CLEARANCE_M = 0.10  # object-set Lift: raise the grasp point this far above its rest


def _lift_expert(env: VisionEnv) -> Expert:
    table_height = float(env.env.table_offset[2])
    if not env.config.object_scene():
        return LiftExpert(table_height)
    from vismanip.envs.objects import OBJECTS

    scene = env.env  # ObjectSetLift: this episode's target and its measured geometry
    spec = OBJECTS[scene.target_name]
    grasp = scene.grasp_offset()
    return LiftExpert(
        table_height,
        grasp_offset_z=grasp,
        lift_to_z=scene.rest_height() + grasp + LIFT_CLEARANCE_M,
        yaw_symmetry=spec.grasp_symmetry,
        yaw_offset=spec.grasp_yaw,
    )


def _pick_place_expert(env: VisionEnv) -> Expert:
    """Reads the target bin of the single object robosuite placed this episode."""
    suite_env = env.env
    object_id = suite_env.object_id
    target = suite_env.target_bin_placements[object_id]
    half = np.asarray(suite_env.bin_size[:2]) / 4.0  # each target is a quarter of bin 2
    low, high = target[:2] - half, target[:2] + half
    # robosuite's nominal spot (the quarter's centre) is at the edge of the Panda's reach;
    # any point inside the quarter succeeds, so aim at the reachable one nearest the base.
    base_xy = np.asarray(suite_env.robots[0].base_pos)[:2]
    place_xy = np.clip(base_xy, low + PLACE_INSET_M, high - PLACE_INSET_M)
    name = suite_env.objects[object_id].name
    # Objects start at rest in bin 1; bin 2's floor is level with it plus the bins' offset.
    start_z = suite_env.sim.data.body_xpos[suite_env.obj_body_id[name]][2]
    rest_height = float(start_z - suite_env.bin1_pos[2] + suite_env.bin2_pos[2])
    return PickPlaceExpert(
        object_key=name,
        target_xy=place_xy,
        target_bounds=(low, high),
        rim_height=float(suite_env.bin2_pos[2]) + 0.1,
        rest_height=rest_height,
    )


def _object_pick_place_expert(env: VisionEnv) -> Expert:
    """Carries this episode's object (any of the set) onto the green square."""
    from vismanip.envs.objects import OBJECTS, PLACE_HALF_M

    scene = env.env  # ObjectSetPickPlace
    spec = OBJECTS[scene.target_name]
    grasp = scene.grasp_offset()
    bottom, _ = scene.extents[scene.cube.name]
    target = scene.place_target_xy()
    inset = PLACE_HALF_M - PLACE_INSET_M / 2
    return PickPlaceExpert(
        object_key="cube",
        target_xy=target,
        target_bounds=(target - inset, target + inset),
        rim_height=float(scene.table_offset[2]) + grasp - bottom,
        rest_height=scene.rest_height() + grasp,
        release_clearance=0.01,
        grasp_offset_z=grasp,
        yaw_symmetry=spec.grasp_symmetry,
        yaw_offset=spec.grasp_yaw,
    )


EXPERTS = {
    "lift": _lift_expert,
    "pick_place_can": _pick_place_expert,
    "pick_place": _object_pick_place_expert,
}


def expert_name(task: str) -> str:
    """The scripted expert that answers for `task` (perturbed variants share their base's)."""
    from vismanip.envs.tasks import task_spec

    name = task_spec(task).expert or task
    if name not in EXPERTS:
        raise VismanipError(
            f"no scripted expert for task {task!r}; available: {', '.join(EXPERTS)}"
        )
    return name


def make_expert(task: str, env: VisionEnv, noise_std: float = 0.0, seed: int = 0) -> Expert:
    """The scripted oracle for `task`, built for the episode `env` was just reset to."""
    expert = EXPERTS[expert_name(task)](env)
    return NoisyExpert(expert, noise_std, seed) if noise_std > 0 else expert


def expert_actor(task: str, env: VisionEnv, noise_std: float = 0.0, seed: int = 0) -> Actor:
    """An obs -> action callable for `rollout`: the expert is built on the first call.

    `rollout` resets the env itself, and an expert must be built after that reset because
    it reads the episode's scene (target bin, resting height) from the env.
    """
    expert: Expert | None = None

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        nonlocal expert
        if expert is None:
            expert = make_expert(task, env, noise_std, seed)
        return expert.act(obs)

    return act


__all__ = ["EXPERTS", "Expert", "NoisyExpert", "expert_actor", "expert_name", "make_expert"]
