"""Simulated tasks: the robosuite env wrapper, task registry and headless rendering."""

from vismanip.envs.actions import ACTION_DIM
from vismanip.envs.rendering import RenderConfig
from vismanip.envs.tasks import TASKS, EnvConfig, register_task
from vismanip.envs.vision_env import VisionEnv, make_env

__all__ = [
    "ACTION_DIM",
    "TASKS",
    "EnvConfig",
    "RenderConfig",
    "VisionEnv",
    "make_env",
    "register_task",
]
