"""VisionEnv: the one environment wrapper every stage uses.

`make_env(EnvConfig)` builds a robosuite env (Panda, OSC_POSE deltas in [-1, 1]) and wraps
it so that observations use robomimic's key names, camera images come from our lean
`CameraRenderer`, episodes are seeded, and the env can describe itself for the HDF5 file
(`env_args`, model XML, flattened sim state). This package is the only one that touches
robosuite and MuJoCo internals; others use VisionEnv's accessors.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from vismanip.envs.actions import ACTION_DIM
from vismanip.envs.rendering import (
    LEAN_PREFIXES,
    VISUAL_GROUP,
    CameraRenderer,
    check_not_noise,
    ensure_gl_backend,
    load_triton_before_gl,
)
from vismanip.envs.tasks import (
    FALLEN_HEIGHT_M,
    OBJECT_SET_ENVS,
    EnvConfig,
    Perturbation,
    task_spec,
)
from vismanip.errors import VismanipError

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
        # Multiplies the task's perturbation (GAIL's exploring episodes draw it per episode).
        self.perturbation_strength = 1.0
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

    # ------------------------------------------------------------------ this episode's layout
    # What scripted experts need to know about the scene after reset, read from robosuite
    # here so that no other package does.
    def table_height(self) -> float:
        """Height of the table top (Lift family)."""
        return float(self.env.table_offset[2])

    def robot_base_xy(self) -> np.ndarray:
        return np.asarray(self.env.robots[0].base_pos, dtype=np.float64)[:2]

    def object_extent(self) -> tuple[float, float]:
        """Object-set scenes: the target's lowest and highest point relative to its origin."""
        scene = self.env
        bottom, top = scene.extents[scene.cube.name]
        return float(bottom), float(top)

    def grasp_offset(self) -> float:
        """Object-set scenes: grasp this far above the target's origin (0 in plain scenes)."""
        return float(self.env.grasp_offset()) if self.config.object_scene() else 0.0

    def rest_height(self) -> float:
        """Object-set scenes: the target's origin height when it rests on the table."""
        return float(self.env.rest_height())

    def goal_object_key(self) -> str:
        """The obs key prefix of the object to carry (PickPlaceCan: this episode's object)."""
        if self.spec.env_name == "PickPlaceCan":
            return str(self.env.objects[self.env.object_id].name)
        return self.spec.object_key

    def goal_area(self) -> tuple[np.ndarray, np.ndarray]:
        """Pick-and-place: the x-y centre and half-size of where the object must end."""
        scene = self.env
        if self.spec.env_name == "PickPlaceCan":  # the object's quarter of bin 2
            centre = np.asarray(scene.target_bin_placements[scene.object_id])[:2]
            return centre, np.asarray(scene.bin_size[:2]) / 4.0
        from vismanip.envs.objects import PLACE_HALF_M

        return np.asarray(scene.place_target_xy()), np.full(2, PLACE_HALF_M)  # green square

    def goal_surface_height(self) -> float:
        """Pick-and-place: height of the surface the object is put down on."""
        if self.spec.env_name == "PickPlaceCan":
            return float(self.env.bin2_pos[2])
        return self.table_height()

    def rest_height_at_goal(self) -> float:
        """Pick-and-place: the object's origin height once it rests in the goal area."""
        scene = self.env
        if self.spec.env_name == "PickPlaceCan":
            # Objects start at rest in bin 1; bin 2's floor is level with it plus the offset.
            start_z = scene.sim.data.body_xpos[scene.obj_body_id[self.goal_object_key()]][2]
            return float(start_z - scene.bin1_pos[2] + scene.bin2_pos[2])
        return self.rest_height()

    def peg(self) -> tuple[np.ndarray, float]:
        """Square: the square peg's axis (x, y) and the height of its top."""
        scene = self.env
        body = scene.peg1_body_id  # robosuite: peg1 takes the square nut, peg2 the round
        centre = np.asarray(scene.sim.data.body_xpos[body], dtype=np.float64)
        model = self.model
        half_height = max(
            float(model.geom_size[g][2]) for g in range(model.ngeom) if model.geom_bodyid[g] == body
        )
        return centre[:2], float(centre[2] + half_height)

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
        noisy = action
        if self.spec.perturbation is not None and self.perturbation_strength > 0:
            noisy, action = self._perturb(
                action, self.spec.perturbation.scaled(self.perturbation_strength)
            )
        executed = np.clip(action, -1.0, 1.0)
        raw, reward, _, _ = self.env.step(executed)
        self.steps += 1
        every = self.randomizer.every_steps if self.randomizer else 0
        if self.randomizer is not None and every and self.steps % every == 0:
            self._randomize(self.randomizer.sample(self._randomization_rng, looks_only=True))
        success = self.is_success()
        done = success or self.steps >= self.horizon
        info = {
            "success": success,
            # The action the simulator ran: the caller's, plus this task's noise and pushes.
            "executed": executed,
            # The caller's plus the noise only: the robot's own imprecise motion, without the
            # pushes (the world's) that replace it for a few steps.
            "noisy": np.clip(noisy, -1.0, 1.0),
        }
        return self._observe(raw), float(reward), done, info

    def _perturb(
        self, action: np.ndarray, perturbation: Perturbation
    ) -> tuple[np.ndarray, np.ndarray]:
        """(the action plus noise, that with a push in progress replacing its motion)."""
        rng = self._disturbance_rng
        noisy = action.copy()
        noisy[:6] += perturbation.action_noise * rng.standard_normal(6)  # PERTURBED_DIMS
        action = noisy.copy()
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
        return noisy, action

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
    load_triton_before_gl()
    logger = logging.getLogger("robosuite_logs")
    if _errors_only not in logger.filters:
        logger.addFilter(_errors_only)
    import robosuite

    return robosuite


def make_env(config: EnvConfig) -> VisionEnv:
    return VisionEnv(config)


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
