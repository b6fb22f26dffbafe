"""Simulated tasks: the robosuite env wrapper, task registry and headless rendering."""

from vismanip.envs.rendering import RenderConfig
from vismanip.envs.tasks import ACTION_DIM, TASKS, EnvConfig, VisionEnv, make_env, register_task

__all__ = [
    "ACTION_DIM",
    "TASKS",
    "EnvConfig",
    "RenderConfig",
    "VisionEnv",
    "make_env",
    "register_task",
]
