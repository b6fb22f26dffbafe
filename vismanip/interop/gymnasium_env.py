"""Every vismanip task as a Gymnasium env: `gymnasium.make("vismanip/Lift-v0", ...)`.

RL libraries (Stable-Baselines3, torchrl, skrl) take Gymnasium envs; this wraps the same
`VisionEnv` that collection, evaluation, DAgger and GAIL step, so scenes, object sets,
clutter and domain randomization behave identically. `import vismanip` registers one id per
task ("lift" -> "vismanip/Lift-v0", "pick_place_can" -> "vismanip/PickPlaceCan-v0", ...);
a task added later with `register_task` is registered by calling `register_envs()` again.

Observations keep robomimic's names: uint8 camera frames `<camera>_image` (H, W, 3) and
float32 proprio (`robot0_eef_pos`, `robot0_eef_quat`, `robot0_gripper_qpos`). Actions are
our 7-D OSC command in [-1, 1]. `terminated` is success, `truncated` the task's horizon.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from vismanip.envs.actions import ACTION_DIM
from vismanip.envs.tasks import TASKS, EnvConfig
from vismanip.errors import VismanipError

# Proprio keys and their bounds: metres around the robot base, unit quaternion, finger joints.
PROPRIO = {
    "robot0_eef_pos": (3, 5.0),
    "robot0_eef_quat": (4, 1.0),
    "robot0_gripper_qpos": (2, 0.1),
}
NAMESPACE = "vismanip"


def env_id(task: str) -> str:
    """ "pick_place_can" -> "vismanip/PickPlaceCan-v0"."""
    return f"{NAMESPACE}/{''.join(part.title() for part in task.split('_'))}-v0"


def register_envs() -> None:
    """Register (or re-register) one Gymnasium id per task in the registry."""
    for task in TASKS:
        gymnasium.register(
            env_id(task),
            entry_point="vismanip.interop.gymnasium_env:VismanipEnv",
            kwargs={"task": task},
            disable_env_checker=False,
        )


def _randomization(value: Any) -> Any:
    """None, a RandomizationConfig, its dict, an evaluation shift name ("lighting",
    "all", ...) or a preset YAML path (configs/randomization/default.yaml)."""
    from omegaconf import OmegaConf

    from vismanip.evaluation.suites import SHIFT_NAMES, shift_config
    from vismanip.sim2real.randomization import RandomizationConfig

    if value is None or isinstance(value, RandomizationConfig):
        return value
    if isinstance(value, str) and value in SHIFT_NAMES:
        return shift_config(value)
    if isinstance(value, str | Path):
        if not Path(value).is_file():
            raise VismanipError(
                f"randomization={value!r}: not a shift ({', '.join(SHIFT_NAMES)}) nor a YAML file"
            )
        value = OmegaConf.to_container(OmegaConf.load(value))
    if not isinstance(value, dict):
        raise VismanipError(f"randomization must be a name, a path or a dict, not {value!r}")
    merged = OmegaConf.merge(OmegaConf.structured(RandomizationConfig), value)
    return OmegaConf.to_object(merged)


class VismanipEnv(gymnasium.Env):
    """One vismanip task as a Gymnasium env (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        task: str = "lift",
        cameras: list[str] | tuple[str, ...] = ("agentview",),
        image_size: int = 84,
        object_set: list[str] | tuple[str, ...] = (),
        clutter: int = 0,
        randomization: Any = None,
        horizon: int = 0,
        render_mode: str | None = "rgb_array",
    ) -> None:
        from vismanip.envs.vision_env import VisionEnv

        if render_mode not in (None, "rgb_array"):
            raise VismanipError(f"render_mode must be 'rgb_array' or None, not {render_mode!r}")
        config = EnvConfig(
            task=task,
            cameras=list(cameras),
            image_size=image_size,
            horizon=horizon,
            objects=list(object_set),
            clutter=clutter,
        )
        config.check()
        self.config = config
        self.render_mode = render_mode
        self._env = VisionEnv(config)
        scene = _randomization(randomization)
        if scene is not None:
            from vismanip.sim2real.randomization import randomize_scene

            randomize_scene(self._env, scene)
        frame = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self._keys = [
            *(f"{camera}_image" for camera in config.cameras),
            *PROPRIO,
        ]
        self.observation_space = spaces.Dict(
            {
                **{f"{camera}_image": frame for camera in config.cameras},
                **{
                    key: spaces.Box(-bound, bound, (size,), np.float32)
                    for key, (size, bound) in PROPRIO.items()
                },
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self._last: dict[str, np.ndarray] = {}

    def _observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._last = obs
        return {
            key: obs[key] if key.endswith("_image") else obs[key].astype(np.float32)
            for key in self._keys
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """A seeded episode: the same seed gives the same scene (and the same looks)."""
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(2**31 - 1))
        obs = self._env.reset(episode_seed)
        return self._observation(obs), {"episode_seed": episode_seed, "success": False}

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        obs, reward, _, info = self._env.step(np.asarray(action, dtype=np.float64))
        success = bool(info["success"])
        truncated = not success and self._env.steps >= self._env.horizon
        return self._observation(obs), float(reward), success, truncated, {"success": success}

    def render(self) -> np.ndarray | None:
        """The first camera's last frame (what the policy saw)."""
        if self.render_mode is None:
            return None
        return self._last[f"{self.config.cameras[0]}_image"]

    def close(self) -> None:
        self._env.close()
