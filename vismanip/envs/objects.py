"""Object sets and clutter for the table-top tasks (lift, pick_place): which object, among what.

Every target object and every distractor of a scene is built into the MuJoCo model once;
each reset picks this episode's target (and `clutter` distractors) from the env's seeded
rng, places them, and parks the rest under the floor with contacts off. One model per env
keeps the renderer, the randomizer and the dataset's `model_file` valid for all episodes.

Target identity reaches the policy only through the image: targets are coloured objects at
least 4 cm tall, distractors are dark grey and at most 1.6 cm tall (a fixed look per role).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vismanip.errors import VismanipError

OBJECT_SETS_FILE = Path(__file__).resolve().parents[2] / "configs" / "objects" / "default.yaml"
DISTRACTOR_RGBA = (0.22, 0.22, 0.24, 1.0)
GRASP_DEPTH_M = 0.025  # fingertips this far below the top of a tall object
GRASP_FLOOR_M = 0.015  # and never lower than this above its bottom (fingers hit the table)
TARGET_RANGE_M = 0.03  # the target's centre, around the table centre (as robosuite's Lift)
CLUTTER_RANGE_M = 0.16  # distractors, around the table centre
CLEARANCE_M = 0.035  # free space between a distractor and the target (room for a finger)
PARKED_Z_M = -1.0  # unused objects wait here, under the floor, without contacts
PLACE_TARGET_XY = np.array([0.0, 0.15])  # pick_place: centre of the green square (table frame)
PLACE_HALF_M = 0.05  # its half-width; the object's centre must end inside it
PLACE_RGBA = (0.2, 0.75, 0.3, 1.0)


@dataclass(frozen=True)
class ObjectSpec:
    """One graspable object.

    shape: box | cylinder | ball | capsule (robosuite primitives, sized by `size`) or the
        name of a robosuite object class (CanObject, BottleObject, ...).
    size: robosuite's primitive size: box half-extents (x, y, z); cylinder/capsule
        (radius, half-length); ball (radius,).
    grasp_symmetry: yaw period of the object's graspable faces (pi/2 for a square box, pi
        for a long box, 0 for round ones: any yaw).
    grasp_yaw: added yaw, to close across a long box's narrow side.
    """

    name: str
    shape: str
    size: tuple[float, ...] = ()
    rgba: tuple[float, float, float, float] = (0.8, 0.2, 0.2, 1.0)
    density: float = 500.0
    grasp_symmetry: float = 0.0
    grasp_yaw: float = 0.0


def _box(
    name: str, size: tuple[float, ...], rgba: tuple, symmetry: float = np.pi / 2, yaw: float = 0.0
) -> ObjectSpec:
    return ObjectSpec(name, "box", size, rgba, grasp_symmetry=symmetry, grasp_yaw=yaw)


OBJECTS: dict[str, ObjectSpec] = {
    spec.name: spec
    for spec in (
        _box("cube", (0.02, 0.02, 0.02), (0.85, 0.15, 0.15, 1)),
        _box("long_box", (0.018, 0.032, 0.02), (0.15, 0.3, 0.85, 1), symmetry=np.pi),
        _box("tall_box", (0.018, 0.018, 0.032), (0.2, 0.7, 0.25, 1)),
        ObjectSpec("cylinder", "cylinder", (0.02, 0.022), (0.95, 0.8, 0.1, 1)),
        ObjectSpec("tall_cylinder", "cylinder", (0.018, 0.035), (0.95, 0.5, 0.1, 1)),
        ObjectSpec("wide_cylinder", "cylinder", (0.03, 0.02), (0.6, 0.2, 0.7, 1)),
        ObjectSpec("ball", "ball", (0.026,), (0.1, 0.75, 0.8, 1), density=300.0),
        ObjectSpec("small_ball", "ball", (0.021,), (0.95, 0.45, 0.7, 1), density=300.0),
        ObjectSpec("capsule", "capsule", (0.018, 0.02), (0.9, 0.9, 0.85, 1)),
        ObjectSpec("can", "CanObject"),
        ObjectSpec("bread", "BreadObject", grasp_symmetry=np.pi / 2),
        ObjectSpec("milk", "MilkObject", grasp_symmetry=np.pi / 2),
        ObjectSpec("bottle", "BottleObject"),
        ObjectSpec("lemon", "LemonObject"),
    )
}
DISTRACTORS: dict[str, ObjectSpec] = {
    spec.name: spec
    for spec in (
        ObjectSpec("disc", "cylinder", (0.03, 0.006), DISTRACTOR_RGBA),
        ObjectSpec("small_disc", "cylinder", (0.022, 0.008), DISTRACTOR_RGBA),
        ObjectSpec("puck", "cylinder", (0.026, 0.008), DISTRACTOR_RGBA),
        _box("slab", (0.035, 0.02, 0.006), DISTRACTOR_RGBA),
        _box("tile", (0.025, 0.025, 0.005), DISTRACTOR_RGBA),
        _box("bar", (0.04, 0.012, 0.008), DISTRACTOR_RGBA),
    )
}


def _object_sets(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        raise VismanipError(f"object sets file not found: {path}")
    sets = yaml.safe_load(path.read_text()) or {}
    for name, members in sets.items():
        _check_objects(members, f"object set {name!r} in {path}")
    return sets


def object_set(name: str) -> list[str]:
    """The object names of a named set: `train`, `novel`, `all` from
    configs/objects/default.yaml, or `path/to/sets.yaml:NAME` from a file of your own."""
    path, _, set_name = name.rpartition(":")
    sets = _object_sets(Path(path) if path else OBJECT_SETS_FILE)
    if set_name not in sets:
        raise VismanipError(f"unknown object set {set_name!r}; valid: {', '.join(sets)}")
    return list(sets[set_name])


def _check_objects(names: list[str], where: str = "objects") -> None:
    for name in names:
        if name not in OBJECTS:
            raise VismanipError(f"unknown object {name!r} ({where}); valid: {', '.join(OBJECTS)}")


def check_scene(objects: list[str], clutter: int) -> None:
    """One clear error for unknown objects or impossible clutter."""
    _check_objects(objects)
    if not 0 <= clutter <= len(DISTRACTORS):
        raise VismanipError(f"clutter must be between 0 and {len(DISTRACTORS)}, not {clutter}")


# --------------------------------------------------------------------------- robosuite env


def _build_object(spec: ObjectSpec, name: str) -> Any:
    from robosuite.models import objects as robosuite_objects

    primitives = {
        "box": robosuite_objects.BoxObject,
        "cylinder": robosuite_objects.CylinderObject,
        "ball": robosuite_objects.BallObject,
        "capsule": robosuite_objects.CapsuleObject,
    }
    if spec.shape in primitives:
        return primitives[spec.shape](
            name=name,
            size=list(spec.size),
            rgba=list(spec.rgba),
            density=spec.density,
            friction=[1.0, 0.005, 0.0001],
        )
    return getattr(robosuite_objects, spec.shape)(name=name)


def vertical_extent(model: Any, geoms: list[int]) -> tuple[float, float]:
    """(bottom, top) of the collision geoms, in metres above the body origin.

    Measured from MuJoCo's bounding boxes: robosuite's bottom/top offsets of its mesh
    objects are a few centimetres off (the milk carton would be dropped from 2.6 cm).
    """
    import mujoco

    low, high = np.inf, -np.inf
    corners = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
    for geom in geoms:
        if model.geom_contype[geom] == 0 and model.geom_conaffinity[geom] == 0:
            continue  # visual only
        centre, half = model.geom_aabb[geom][:3], model.geom_aabb[geom][3:]
        rotation = np.zeros(9)
        mujoco.mju_quat2Mat(rotation, model.geom_quat[geom])
        heights = (corners * half + centre) @ rotation.reshape(3, 3).T[:, 2]
        low = min(low, float(heights.min() + model.geom_pos[geom][2]))
        high = max(high, float(heights.max() + model.geom_pos[geom][2]))
    return low, high


def grasp_offset_z(bottom: float, top: float) -> float:
    """Where to grasp, above the object's origin: near the top of tall objects (the hand
    would hit their top otherwise), at least GRASP_FLOOR_M above their bottom."""
    return max(top - GRASP_DEPTH_M, bottom + GRASP_FLOOR_M)


@lru_cache(maxsize=1)
def register_object_envs() -> None:
    """Define (once) the robosuite envs `ObjectSetLift` and `ObjectSetPickPlace`; robosuite
    registers env classes by name when they are defined, so `robosuite.make` finds them."""
    from robosuite.environments.manipulation.lift import Lift
    from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
    from robosuite.models.arenas import TableArena
    from robosuite.models.tasks import ManipulationTask
    from robosuite.utils.mjcf_utils import new_geom

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


def place_without_overlap(
    objects: list[Any],
    extents: dict[str, tuple[float, float]],
    rng: np.random.Generator,
    table_offset: np.ndarray,
    keep_free: Sequence[tuple[np.ndarray, float]] = (),
    tries: int = 200,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (position, wxyz quat): the first object (the target) near the table centre,
    the others around it, with CLEARANCE_M of free table between any two.

    Hand-written because robosuite's samplers check overlap without a margin, and a finger
    needs room beside the target.
    """
    placed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    footprints = list(keep_free)  # (xy from the table centre, radius)
    for index, obj in enumerate(objects):
        reach = TARGET_RANGE_M if index == 0 else CLUTTER_RANGE_M
        radius = float(obj.horizontal_radius)
        for _ in range(tries):
            xy = rng.uniform(-reach, reach, size=2)
            if all(
                np.linalg.norm(xy - other) >= radius + r + CLEARANCE_M for other, r in footprints
            ):
                break
        else:
            raise VismanipError(f"could not place {obj.name} without overlap in {tries} tries")
        footprints.append((xy, radius))
        yaw = rng.uniform(0, 2 * np.pi)
        z = table_offset[2] - extents[obj.name][0] + 0.002
        position = np.array([table_offset[0] + xy[0], table_offset[1] + xy[1], z])
        placed[obj.name] = (position, np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]))
    return placed
