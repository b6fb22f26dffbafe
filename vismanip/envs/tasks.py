"""Task registry and the one environment wrapper every stage uses.

`make_env(EnvConfig)` builds a robosuite env (Panda, OSC_POSE deltas in [-1, 1]) and wraps
it so that observations use robomimic's key names, camera images come from our lean
`CameraRenderer`, episodes are seeded, and the env can describe itself for the HDF5 file
(`env_args`, model XML, flattened sim state).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from vismanip.envs.rendering import (
    LEAN_PREFIXES,
    VISUAL_GROUP,
    CameraRenderer,
    RenderConfig,
    check_not_noise,
    ensure_gl_backend,
)
from vismanip.errors import VismanipError

ACTION_DIM = 7  # OSC_POSE delta position (3) + delta axis-angle (3) + gripper (1)
ROBOSUITE_ENV_TYPE = 1  # robomimic's EnvType.ROBOSUITE_TYPE
MODEL_SEED = 0
PERTURBATION_STREAM = 7  # seeds perturbations apart from the scene's own randomness
RANDOMIZATION_STREAM = 11  # seeds randomization apart from the scene's own randomness


class Randomizer(Protocol):
    """Changes a scene's looks, lights, cameras and dynamics per episode; attached from
    outside (vismanip.sim2real.randomize_scene), so envs never imports sim2real."""

    every_steps: int  # also redraw the looks every N steps (0: only at reset)

    def sample(self, rng: np.random.Generator, looks_only: bool = False) -> dict[str, Any]: ...

    def apply(self, params: dict[str, Any]) -> None: ...


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
TASKS: dict[str, TaskSpec] = {
    "lift": TaskSpec(env_name="Lift", horizon=200, object_key="cube"),
    "pick_place_can": TaskSpec(env_name="PickPlaceCan", horizon=400, object_key="Can"),
    "lift_perturbed": TaskSpec(
        env_name="Lift", horizon=200, object_key="cube", expert="lift", perturbation=PERTURBED
    ),
    # Our own table-top pick-and-place: any object (--object / --object-set) onto a green square.
    "pick_place": TaskSpec(env_name="ObjectSetPickPlace", horizon=300, object_key="cube"),
    "pick_place_can_perturbed": TaskSpec(
        env_name="PickPlaceCan",
        horizon=400,
        object_key="Can",
        expert="pick_place_can",
        perturbation=PERTURBED,
    ),
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

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EnvConfig:
        """Rebuild from `asdict(EnvConfig)` (as stored in datasets and checkpoints)."""
        fields = {key: value for key, value in values.items() if key != "render"}
        return cls(**fields, render=RenderConfig(**values.get("render", {})))


# Keys robosuite reports that duplicate others (concatenations) and are not stored.
_DROPPED_KEYS = ("robot0_proprio-state",)


class VisionEnv:
    """A seeded robosuite env with robomimic observation keys and lean camera images.

    With a randomizer attached (`attach_randomizer`, e.g. by sim2real's `randomize_scene`)
    each episode's scene is drawn from the episode seed; `randomization_events` lists what
    was applied and when.
    """

    def __init__(self, config: EnvConfig) -> None:
        self.config = config
        self.spec = task_spec(config.task)
        if config.image_size < 8:
            raise VismanipError(f"image_size must be at least 8 pixels, not {config.image_size}")
        robosuite = import_robosuite(config.render.backend)
        self.horizon = config.horizon or self.spec.horizon
        self.robosuite_kwargs = robosuite_kwargs(config)
        self.env = robosuite.make(
            robosuite_env_name(config),
            has_renderer=False,
            has_offscreen_renderer=False,
            use_camera_obs=False,
            ignore_done=True,  # we count steps ourselves (self.horizon)
            hard_reset=False,  # keep one MjModel: the renderer and randomizers hold it
            horizon=self.horizon,
            # The model is built once, from env.rng (e.g. Lift's cube size): a fixed seed
            # makes every env instance, in every worker, the same scene.
            seed=MODEL_SEED,
            **self.robosuite_kwargs,
        )
        self.renderer = CameraRenderer(
            self.env.sim.model._model, config.cameras, config.image_size, config.render
        )
        self._frames_checked = False
        self.steps = 0
        self.randomizer: Randomizer | None = None
        self.randomization_events: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ the scene, for others
    @property
    def model(self) -> Any:
        """The MjModel (mujoco.MjModel) that the simulation and the renderer share."""
        return self.env.sim.model._model

    @property
    def cameras(self) -> list[str]:
        return list(self.config.cameras)

    def surface_geoms(self) -> dict[str, list[int]]:
        """Visible geoms of each surface (table, floor, walls, robot, object), found by
        robosuite's naming of the arena, robot and object bodies."""
        model = self.model
        object_prefix = "target_" if self.config.object_scene() else self.spec.object_key
        surfaces: dict[str, list[int]] = {
            name: [] for name in ("table", "floor", "walls", "robot", "object")
        }
        for geom in range(model.ngeom):
            name = model.geom(geom).name
            if model.geom_group[geom] != VISUAL_GROUP and name != "floor":
                continue
            body = model.body(model.geom_bodyid[geom]).name
            if name == "floor":
                surfaces["floor"].append(geom)
            elif name.startswith("wall_"):
                surfaces["walls"].append(geom)
            elif body == "table" or body.startswith("bin"):
                surfaces["table"].append(geom)
            elif body.startswith(LEAN_PREFIXES) or body.startswith("gripper0_"):
                surfaces["robot"].append(geom)
            elif body.startswith(object_prefix):
                surfaces["object"].append(geom)
        return surfaces

    def attach_randomizer(self, randomizer: Randomizer) -> None:
        self.randomizer = randomizer

    # ------------------------------------------------------------------ episode
    def reset(
        self, seed: int, randomization: dict[str, Any] | None = None
    ) -> dict[str, np.ndarray]:
        """Start an episode whose initial scene depends only on `seed`.

        `randomization` replays stored params (a demo's) instead of drawing them.
        """
        fresh = np.random.default_rng(seed)
        # robosuite's placement samplers share env.rng: reseed it in place.
        self.env.rng.bit_generator.state = fresh.bit_generator.state
        self.steps = 0
        # Perturbations draw from their own stream: they never change the initial scene.
        self._disturbance_rng = np.random.default_rng([seed, PERTURBATION_STREAM])
        self._push: tuple[int, np.ndarray] = (0, np.zeros(3))
        self.randomization_events = []
        if self.randomizer is not None:
            self._randomization_rng = np.random.default_rng([seed, RANDOMIZATION_STREAM])
            drawn = self.randomizer.sample(self._randomization_rng)  # advances the stream
            self._randomize(randomization or drawn)
        return self._observe(self.env.reset())

    def _randomize(self, params: dict[str, Any]) -> None:
        assert self.randomizer is not None
        self.randomizer.apply(params)
        self.randomization_events.append({"step": self.steps, "params": params})

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, dict]:
        """Apply one 7-D action in [-1, 1]; `done` is success or the horizon."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (ACTION_DIM,):
            raise VismanipError(f"action must have shape ({ACTION_DIM},), not {action.shape}")
        if not np.all(np.isfinite(action)):
            raise VismanipError(f"action contains NaN or inf: {action}")
        if self.spec.perturbation is not None:
            action = self._perturb(action, self.spec.perturbation)
        raw, reward, _, _ = self.env.step(np.clip(action, -1.0, 1.0))
        self.steps += 1
        every = self.randomizer.every_steps if self.randomizer else 0
        if self.randomizer is not None and every and self.steps % every == 0:
            self._randomize(self.randomizer.sample(self._randomization_rng, looks_only=True))
        success = self.is_success()
        done = success or self.steps >= self.horizon
        return self._observe(raw), float(reward), done, {"success": success}

    def _perturb(self, action: np.ndarray, perturbation: Perturbation) -> np.ndarray:
        rng = self._disturbance_rng
        action = action.copy()
        action[:6] += perturbation.action_noise * rng.standard_normal(6)
        steps_left, direction = self._push
        if steps_left == 0 and rng.random() < perturbation.push_prob:
            angle = rng.uniform(0.0, 2.0 * np.pi)
            direction = np.array([np.cos(angle), np.sin(angle), rng.uniform(-0.3, 0.3)])
            steps_left = perturbation.push_steps
        if steps_left > 0:
            action[:3] = perturbation.push_speed * direction
            action[3:6] = 0.0
            steps_left -= 1
        self._push = (steps_left, direction)
        return action

    def is_success(self) -> bool:
        return bool(self.env._check_success())

    @property
    def target_object(self) -> str | None:
        """The object this episode must handle, in object-set scenes (drawn at reset)."""
        return self.env.target_name if self.config.object_scene() else None

    def is_unrecoverable(self, obs: dict[str, np.ndarray]) -> bool:
        """The object fell off the work surface: no policy can still succeed."""
        return bool(obs[f"{self.spec.object_key}_pos"][2] < FALLEN_HEIGHT_M)

    def _observe(self, raw: dict[str, Any]) -> dict[str, np.ndarray]:
        obs = {}
        for key, value in raw.items():
            if key in _DROPPED_KEYS or key.endswith("_image"):
                continue
            # robomimic names robosuite's "object-state" simply "object".
            obs["object" if key == "object-state" else key] = np.asarray(value, dtype=np.float64)
        images = self.renderer.render(self.env.sim.data._data)
        if not self._frames_checked:
            for key, image in images.items():
                problem = check_not_noise(image)
                if problem:
                    raise VismanipError(f"{key}: {problem}; set MUJOCO_GL=osmesa or egl to switch")
            self._frames_checked = True
        obs.update(images)
        return obs

    # ------------------------------------------------------------------ description
    def sim_state(self) -> np.ndarray:
        """Flattened MuJoCo state (time, qpos, qvel), robomimic's `states` row."""
        return np.asarray(self.env.sim.get_state().flatten())

    def model_xml(self) -> str:
        return self.env.sim.model.get_xml()

    def close(self) -> None:
        self.renderer.close()
        self.env.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in env_args")


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def import_robosuite(gl_backend: str = "auto") -> ModuleType:
    """Import robosuite after choosing the GL backend (mujoco binds it at import), quietly.

    robosuite logs INFO/WARNING lines on import and env creation (macro files, optional
    robot packages, unused controller parts) that say nothing to our users; errors pass.
    """
    ensure_gl_backend(gl_backend)
    logger = logging.getLogger("robosuite_logs")
    if _errors_only not in logger.filters:
        logger.addFilter(_errors_only)
    import robosuite

    return robosuite


def make_env(config: EnvConfig) -> VisionEnv:
    return VisionEnv(config)


# What one unit of an OSC_POSE action means in robosuite's BASIC Panda controller:
# metres (x, y, z) and radians (axis-angle) per control step. Exported policies carry it.
OSC_OUTPUT_MAX = (0.05, 0.05, 0.05, 0.5, 0.5, 0.5)


def robosuite_env_name(config: EnvConfig) -> str:
    """The robosuite env class: the task's own, or its object-set version (ObjectSetLift)."""
    config.check()
    own_env = task_spec(config.task).env_name
    if not config.object_scene():
        return own_env
    import_robosuite(config.render.backend)
    import vismanip.envs.object_scenes  # noqa: F401  (defining the classes registers them)

    return OBJECT_SET_ENVS[own_env]


def robosuite_kwargs(config: EnvConfig) -> dict[str, Any]:
    """The robosuite.make arguments that define the task (not how we render it)."""
    import_robosuite(config.render.backend)
    from robosuite.controllers import load_composite_controller_config

    scene = {}
    if config.object_scene():
        scene = {"objects": list(config.objects) or ["cube"], "clutter": config.clutter}
    return dict(
        robots="Panda",
        controller_configs=load_composite_controller_config(controller="BASIC", robot="Panda"),
        control_freq=config.control_freq,
        reward_shaping=False,
        use_object_obs=True,
        **task_spec(config.task).env_kwargs,
        **scene,
    )


def env_args(config: EnvConfig) -> dict[str, Any]:
    """robomimic's `env_args`: enough for robomimic to rebuild this env with cameras."""
    size = config.image_size
    env_kwargs = dict(
        robosuite_kwargs(config),
        has_renderer=False,
        has_offscreen_renderer=True,
        use_camera_obs=True,
        camera_names=list(config.cameras),
        camera_heights=size,
        camera_widths=size,
        ignore_done=True,
        hard_reset=False,
        horizon=config.horizon or task_spec(config.task).horizon,
    )
    return {
        "env_name": robosuite_env_name(config),
        "env_type": ROBOSUITE_ENV_TYPE,
        "env_kwargs": env_kwargs,
        "vismanip": {"env_config": asdict(config)},
    }


def env_args_json(config: EnvConfig) -> str:
    return json.dumps(env_args(config), default=_json_default)
