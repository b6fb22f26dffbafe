"""Scripted oracles that read privileged sim state; they make demos and answer DAgger."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from vismanip.errors import VismanipError
from vismanip.experts.base import Expert, NoisyExpert
from vismanip.experts.lift import LiftExpert
from vismanip.experts.pick_place import PickPlaceExpert
from vismanip.experts.square import SquareExpert

if TYPE_CHECKING:
    from vismanip.envs import VisionEnv


PLACE_INSET_M = 0.05  # keep the placed object this far inside its target area
LIFT_CLEARANCE_M = 0.10  # object-set Lift: raise the grasp point this far above its rest


def _lift_expert(env: VisionEnv) -> Expert:
    table_height = env.table_height()
    target = env.target_object
    if target is None:
        return LiftExpert(table_height)
    from vismanip.envs.objects import OBJECTS

    spec = OBJECTS[target]  # this episode's target and its measured geometry
    grasp = env.grasp_offset()
    return LiftExpert(
        table_height,
        grasp_offset_z=grasp,
        lift_to_z=env.rest_height() + grasp + LIFT_CLEARANCE_M,
        yaw_symmetry=spec.grasp_symmetry,
        yaw_offset=spec.grasp_yaw,
    )


def _pick_place_expert(env: VisionEnv) -> Expert:
    """Carries the single object robosuite placed this episode into its bin quarter."""
    centre, half = env.goal_area()
    low, high = centre - half, centre + half
    # robosuite's nominal spot (the quarter's centre) is at the edge of the Panda's reach;
    # any point inside the quarter succeeds, so aim at the reachable one nearest the base.
    place_xy = np.clip(env.robot_base_xy(), low + PLACE_INSET_M, high - PLACE_INSET_M)
    return PickPlaceExpert(
        object_key=env.goal_object_key(),
        target_xy=place_xy,
        target_bounds=(low, high),
        rim_height=env.goal_surface_height() + 0.1,
        rest_height=env.rest_height_at_goal(),
    )


def _object_pick_place_expert(env: VisionEnv) -> Expert:
    """Carries this episode's object (any of the set) onto the green square."""
    from vismanip.envs.objects import OBJECTS

    assert env.target_object is not None  # pick_place always draws from a set
    spec = OBJECTS[env.target_object]
    grasp = env.grasp_offset()
    bottom, _ = env.object_extent()
    target, half = env.goal_area()
    inset = half[0] - PLACE_INSET_M / 2
    return PickPlaceExpert(
        object_key="cube",
        target_xy=target,
        target_bounds=(target - inset, target + inset),
        rim_height=env.goal_surface_height() + grasp - bottom,
        rest_height=env.rest_height_at_goal() + grasp,
        release_clearance=0.01,
        grasp_offset_z=grasp,
        yaw_symmetry=spec.grasp_symmetry,
        yaw_offset=spec.grasp_yaw,
    )


def _square_expert(env: VisionEnv) -> Expert:
    peg_xy, peg_top = env.peg()
    return SquareExpert(peg_xy, peg_top, env.table_height())


EXPERTS: dict[str, Callable[[VisionEnv], Expert]] = {
    "lift": _lift_expert,
    "pick_place_can": _pick_place_expert,
    "pick_place": _object_pick_place_expert,
    "square": _square_expert,
}


def register_expert(name: str, factory: Callable[[VisionEnv], Expert]) -> None:
    """Add a scripted expert beside `envs.register_task`: a task uses the expert its
    TaskSpec names (`expert=`), or the one registered under its own name. `factory(env)`
    is called after each reset and reads the scene through VisionEnv's accessors."""
    EXPERTS[name] = factory


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


def expert_actor(
    task: str, env: VisionEnv, noise_std: float = 0.0, seed: int = 0
) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
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


__all__ = [
    "EXPERTS",
    "Expert",
    "NoisyExpert",
    "expert_actor",
    "expert_name",
    "make_expert",
    "register_expert",
]
