"""vismanip: vision-based robot manipulation learned from demonstrations."""

__version__ = "0.1.0"

# Gymnasium ids for every task ("vismanip/Lift-v0", ...): registering is cheap (no simulator
# import); the env is built only by gymnasium.make.
from vismanip.interop.gymnasium_env import register_envs as _register_envs  # noqa: E402

_register_envs()
