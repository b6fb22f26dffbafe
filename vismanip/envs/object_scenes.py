"""The robosuite envs behind object sets and clutter: `ObjectSetLift` and `ObjectSetPickPlace`.

robosuite registers an env class by name when the class is defined, so importing this
module is what lets `robosuite.make("ObjectSetLift", ...)` find them. It imports robosuite
at the top, so import it only after `import_robosuite()` chose the GL backend (mujoco binds
it at import): `robosuite_env_name()` in vision_env.py does that.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from robosuite.environments.manipulation.lift import Lift
from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
from robosuite.models.arenas import TableArena
from robosuite.models.tasks import ManipulationTask
from robosuite.utils.mjcf_utils import new_geom

from vismanip.envs.objects import (
    DISTRACTORS,
    OBJECTS,
    PARKED_Z_M,
    PLACE_HALF_M,
    PLACE_RGBA,
    PLACE_TARGET_XY,
    _build_object,
    check_scene,
    grasp_offset_z,
    place_without_overlap,
    vertical_extent,
)


class ObjectSetLift(Lift):
    """Lift, with the object drawn per episode from `objects`, among `clutter` distractors.

    Lift's observations keep their names (`cube_pos`, `cube_quat`, ...) and follow the
    current target, so policies, experts and datasets see one interface.
    """

    def __init__(self, objects: list[str], clutter: int = 0, **kwargs: Any) -> None:
        check_scene(objects, clutter)
        self.object_names = list(objects)
        self.clutter = clutter
        self.target_name = self.object_names[0]
        super().__init__(**kwargs)

    def _load_model(self) -> None:
        ManipulationEnv._load_model(self)
        xpos = self.robots[0].robot_model.base_xpos_offset["table"](self.table_full_size[0])
        self.robots[0].robot_model.set_base_xpos(xpos)
        arena = TableArena(
            table_full_size=self.table_full_size,
            table_friction=self.table_friction,
            table_offset=self.table_offset,
        )
        arena.set_origin([0, 0, 0])
        self._decorate_arena(arena)
        self.targets = {n: _build_object(OBJECTS[n], f"target_{n}") for n in self.object_names}
        self.distractors = {
            n: _build_object(spec, f"distractor_{n}") for n, spec in DISTRACTORS.items()
        }
        self.cube = self.targets[self.target_name]
        self.model = ManipulationTask(
            mujoco_arena=arena,
            mujoco_robots=[robot.robot_model for robot in self.robots],
            mujoco_objects=[*self.targets.values(), *self.distractors.values()],
        )

    def _decorate_arena(self, arena: TableArena) -> None:
        """Add task-specific marks to the table (pick_place: the target square)."""

    def _keep_free(self) -> list[tuple[np.ndarray, float]]:
        """Table areas (xy from the centre, radius) that distractors must leave free."""
        return []

    def _setup_references(self) -> None:
        super()._setup_references()
        model = self.sim.model
        self.object_bodies = {
            obj.name: model.body_name2id(obj.root_body)
            for obj in [*self.targets.values(), *self.distractors.values()]
        }
        raw = model._model
        self.object_geoms = {
            name: [g for g in range(raw.ngeom) if raw.geom_bodyid[g] == body]
            for name, body in self.object_bodies.items()
        }
        if not hasattr(self, "nominal_contype"):  # robosuite calls this again on resets
            self.nominal_contype = raw.geom_contype.copy()
            self.nominal_conaffinity = raw.geom_conaffinity.copy()
            self.extents = {
                name: vertical_extent(raw, geoms) for name, geoms in self.object_geoms.items()
            }

    def _reset_internal(self) -> None:
        ManipulationEnv._reset_internal(self)  # robot and sim; Lift's own placement skipped
        rng = self.rng
        self.target_name = self.object_names[int(rng.integers(len(self.object_names)))]
        self.cube = self.targets[self.target_name]
        self.cube_body_id = self.object_bodies[self.cube.name]
        chosen = rng.choice(sorted(self.distractors), size=self.clutter, replace=False)
        active = [self.cube, *(self.distractors[n] for n in chosen)]
        placements = place_without_overlap(
            active, self.extents, rng, self.table_offset, self._keep_free()
        )
        raw = self.sim.model._model
        parked = 0
        for obj in [*self.targets.values(), *self.distractors.values()]:
            geoms = self.object_geoms[obj.name]
            body = self.object_bodies[obj.name]
            if obj.name in placements:
                position, quat = placements[obj.name]
                raw.geom_contype[geoms] = self.nominal_contype[geoms]
                raw.geom_conaffinity[geoms] = self.nominal_conaffinity[geoms]
                raw.body_gravcomp[body] = 0.0
            else:
                position = np.array([0.0, 0.3 * parked, PARKED_Z_M])
                quat = np.array([1.0, 0.0, 0.0, 0.0])
                raw.geom_contype[geoms] = 0
                raw.geom_conaffinity[geoms] = 0
                raw.body_gravcomp[body] = 1.0
                parked += 1
            self.sim.data.set_joint_qpos(obj.joints[0], np.concatenate([position, quat]))

    def _check_success(self) -> bool:
        """The target's origin is 4 cm above where it rests (objects differ in height)."""
        height = self.sim.data.body_xpos[self.cube_body_id][2]
        return bool(height > self.rest_height() + 0.04)

    def rest_height(self) -> float:
        """z of the target's origin when it stands on the table."""
        return float(self.table_offset[2] - self.extents[self.cube.name][0])

    def grasp_offset(self) -> float:
        return grasp_offset_z(*self.extents[self.cube.name])


class ObjectSetPickPlace(ObjectSetLift):
    """Pick the object up and put it down inside the green square on the table."""

    def _decorate_arena(self, arena: TableArena) -> None:
        arena.table_body.append(
            new_geom(
                name="place_target",
                type="box",
                size=[PLACE_HALF_M, PLACE_HALF_M, 0.0005],
                pos=[*PLACE_TARGET_XY, arena.table_half_size[2] + 0.0005],
                rgba=list(PLACE_RGBA),
                group=1,
                contype=0,
                conaffinity=0,
            )
        )

    def _keep_free(self) -> list[tuple[np.ndarray, float]]:
        return [(PLACE_TARGET_XY, PLACE_HALF_M * np.sqrt(2))]

    def place_target_xy(self) -> np.ndarray:
        """World xy of the square's centre."""
        return np.asarray(self.table_offset[:2]) + PLACE_TARGET_XY

    def _check_success(self) -> bool:
        """Inside the square, standing on the table, and let go (hand above its top)."""
        position = self.sim.data.body_xpos[self.cube_body_id]
        inside = np.all(np.abs(position[:2] - self.place_target_xy()) < PLACE_HALF_M)
        on_table = position[2] < self.rest_height() + 0.01
        top = position[2] + self.extents[self.cube.name][1]
        eef = self.sim.data.site_xpos[self.robots[0].eef_site_id["right"]]
        released = eef[2] > top + 0.02
        return bool(inside and on_table and released)
