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
