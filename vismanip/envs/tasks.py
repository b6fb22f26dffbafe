"""The task registry and the scene config: which robosuite env a task runs, its horizon,
its object, its disturbances, and the `EnvConfig` every stage passes around.

The env itself (robosuite wrapped with robomimic keys and lean images) is `VisionEnv` in
`envs/vision_env.py`; experts register beside this registry (`experts.register_expert`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from vismanip.envs.rendering import RenderConfig
from vismanip.errors import VismanipError

PERTURBED_DIMS = (0, 1, 2, 3, 4, 5)  # the motion command; the gripper (6) is never perturbed


@dataclass(frozen=True)
class Perturbation:
    """Disturbances while an episode runs, drawn from the episode seed (so reproducible).

    They push the robot into states the demonstrations never showed: where behavioural
    cloning's covariate shift bites and DAgger's relabelling helps.
    action_noise: std of Gaussian noise added to the executed motion command (dims 0-5).
    push_prob: per-step chance that a push starts.
    push_steps, push_speed: a push replaces the motion command for that many steps with a
        random direction at that speed (in action units, [-1, 1]); the gripper is untouched.
    """

    action_noise: float = 0.0
    push_prob: float = 0.0
    push_steps: int = 4
    push_speed: float = 0.8

    def scaled(self, strength: float) -> Perturbation:
        """The same disturbances `strength` times as often and as noisy (0: none)."""
        return replace(
            self, action_noise=self.action_noise * strength, push_prob=self.push_prob * strength
        )


@dataclass
class TaskSpec:
    """What differs between tasks: the robosuite env, its default horizon, extra kwargs.

    expert: which scripted expert answers (default: the task's own name).
    perturbation: disturbances during execution (the `*_perturbed` variants).
    """

    env_name: str
    horizon: int
    object_key: str  # obs key prefix of the manipulated object's pose ("<key>_pos")
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    expert: str = ""
    perturbation: Perturbation | None = None


PERTURBED = Perturbation(action_noise=0.1, push_prob=0.04)
_SCENES: dict[str, TaskSpec] = {
    "lift": TaskSpec(env_name="Lift", horizon=200, object_key="cube"),
    "pick_place_can": TaskSpec(env_name="PickPlaceCan", horizon=400, object_key="Can"),
    # Our own table-top pick-and-place: any object (--object / --object-set) onto a green square.
    "pick_place": TaskSpec(env_name="ObjectSetPickPlace", horizon=300, object_key="cube"),
    # robosuite's NutAssemblySquare: the square nut onto its peg (robomimic's "Square").
    "square": TaskSpec(env_name="NutAssemblySquare", horizon=400, object_key="SquareNut"),
}
# Every `<task>_perturbed`: the same scene and expert, with noise and pushes while it runs.
TASKS: dict[str, TaskSpec] = {
    **_SCENES,
    **{
        f"{name}_perturbed": replace(_SCENES[name], expert=name, perturbation=PERTURBED)
        for name in ("lift", "pick_place_can", "square")
    },
}
# robosuite env -> the env that draws its object from a set and adds clutter (envs/objects.py).
OBJECT_SET_ENVS = {"Lift": "ObjectSetLift", "ObjectSetPickPlace": "ObjectSetPickPlace"}
# Below this height (m) the object has fallen off the table/bins: the episode cannot recover.
FALLEN_HEIGHT_M = 0.7


def register_task(name: str, spec: TaskSpec) -> None:
    """Add a task to the registry (e.g. from a plug-in); experts register separately."""
    TASKS[name] = spec


def task_spec(name: str) -> TaskSpec:
    if name not in TASKS:
        raise VismanipError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


@dataclass
class EnvConfig:
    """The simulated scene a policy sees.

    task: registry name ("lift", "pick_place_can").
    cameras: camera names; each gives an observation "<camera>_image".
    image_size: square image side in pixels.
    control_freq: policy steps per second (robosuite's control_freq).
    horizon: steps before an episode times out; 0 means the task's default.
    render: how images are drawn (see RenderConfig).
    objects: Lift family only: each episode's object is drawn from these names
        (vismanip.envs.objects.OBJECTS; sets in configs/objects/); [] keeps the task's own.
    clutter: Lift family only: this many distractor objects around the target.
    """

    task: str = "lift"
    cameras: list[str] = field(default_factory=lambda: ["agentview"])
    image_size: int = 84
    control_freq: int = 20
    horizon: int = 0
    render: RenderConfig = field(default_factory=RenderConfig)
    objects: list[str] = field(default_factory=list)
    clutter: int = 0

    def object_scene(self) -> bool:
        """True when the scene draws its object from a set (envs/objects.py): always for
        pick_place, for Lift when objects or clutter are given."""
        own_env = task_spec(self.task).env_name
        return bool(self.objects or self.clutter) or own_env.startswith("ObjectSet")

    def check(self) -> None:
        """One clear error for an unknown task, object or impossible clutter."""
        spec = task_spec(self.task)
        if self.object_scene():
            if spec.env_name not in OBJECT_SET_ENVS:
                valid = sorted(n for n, s in TASKS.items() if s.env_name in OBJECT_SET_ENVS)
                raise VismanipError(
                    f"object sets and clutter are available for {', '.join(valid)}, "
                    f"not {self.task!r}"
                )
            from vismanip.envs.objects import check_scene

            check_scene(self.objects, self.clutter)

    def with_scene(self, objects: list[str], clutter: int) -> EnvConfig:
        """This env with another object set ([] keeps this one's) and number of distractors
        (-1 keeps this one's), checked: where GAIL and DAgger interact, when that is not
        where their demos were collected."""
        scene = replace(
            self,
            objects=list(objects) if objects else self.objects,
            clutter=clutter if clutter >= 0 else self.clutter,
        )
        scene.check()
        return scene

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EnvConfig:
        """Rebuild from `asdict(EnvConfig)` (as stored in datasets and checkpoints)."""
        fields = {key: value for key, value in values.items() if key != "render"}
        return cls(**fields, render=RenderConfig(**values.get("render", {})))
